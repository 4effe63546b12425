//! The tracing subscriber: human-readable lines on stderr filtered by `--log`/`RUST_LOG`, plus
//! an optional daily log file when a command's configuration asks for one, plus, for a Windows
//! service, the event log.

use std::path::PathBuf;

use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, prelude::*};

/// Logging options shared by every subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter, e.g. `info`, `debug`, `relay_server=debug,info`.
    #[arg(long = "log", global = true, env = "RUST_LOG", default_value = "info")]
    pub filter: String,
}

/// A daily log file: `{dir}/{prefix}YYYY-MM-DD.log`.
#[derive(Debug, Clone)]
pub struct FileLog {
    /// Folder of the files.
    pub dir: PathBuf,
    /// File name prefix (the license server uses `mxnet`).
    pub prefix: String,
    /// Filter for the file, independent of the stderr filter.
    pub filter: String,
}

/// Keeps background log writers alive; drop it last.
pub struct LogGuard {
    _guards: Vec<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber.
///
/// # Errors
/// A malformed filter, or a log folder that cannot be created.
pub fn init(args: &LogArgs, file: Option<FileLog>) -> anyhow::Result<LogGuard> {
    init_with(args, file, None)
}

/// A further destination with its own filter (the Windows service's event log).
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// [`init`] with a further destination.
///
/// # Errors
/// As [`init`].
pub fn init_with(
    args: &LogArgs,
    file: Option<FileLog>,
    extra: Option<ExtraLayer>,
) -> anyhow::Result<LogGuard> {
    let stderr_filter = EnvFilter::try_new(&args.filter)
        .map_err(|e| anyhow::anyhow!("bad --log filter {:?}: {e}", args.filter))?;
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(stderr_filter);
    let mut guards = Vec::new();
    let file_layer = match file {
        Some(file) => {
            let filter = EnvFilter::try_new(&file.filter)
                .map_err(|e| anyhow::anyhow!("bad log file filter {:?}: {e}", file.filter))?;
            std::fs::create_dir_all(&file.dir).map_err(|e| {
                anyhow::anyhow!("cannot create log folder {}: {e}", file.dir.display())
            })?;
            // The manual's names are `mxnetYYYY-MM-DD.log`; tracing-appender's rolling writer
            // would write `mxnet.YYYY-MM-DD.log`, so license-core's daily writer is used.
            let appender = license_server::logs::DailyFile::new(&file.dir, &file.prefix)
                .map_err(|e| anyhow::anyhow!("cannot open log file: {e}"))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            guards.push(guard);
            Some(
                fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_filter(filter),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(extra)
        .with(stderr)
        .with(file_layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))?;
    Ok(LogGuard { _guards: guards })
}
