//! The `server` subcommand.

use tokio_util::sync::CancellationToken;

/// Options of `dongle-relay server`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// The validated configuration of `server`.
pub struct Loaded;

/// Reads and validates the configuration.
///
/// # Errors
/// Configuration errors.
pub fn load(_args: Args) -> anyhow::Result<Loaded> {
    Ok(Loaded)
}

/// Runs the command.
///
/// # Errors
/// Whatever stopped it.
pub async fn run(_loaded: Loaded, _shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::bail!("'server' is not implemented yet")
}

/// The daily log file the server configuration asks for.
pub fn file_log(_loaded: &Loaded) -> Option<crate::telemetry::FileLog> {
    None
}
