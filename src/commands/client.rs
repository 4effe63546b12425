//! The `client` subcommand.

use tokio_util::sync::CancellationToken;

/// Options of `dongle-relay client`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// The validated configuration of `client`.
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
    anyhow::bail!("'client' is not implemented yet")
}
