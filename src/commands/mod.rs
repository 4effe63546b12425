//! One module per subcommand. Each has `Args` (its command line), `load` (read and validate
//! configuration, no sockets) and `run` (bind, then call the library). Beside them, what
//! several subcommands share: [`access`] (relay-access options and files), [`supervised`]
//! (metrics endpoint and service notifications around a tunnel component) and [`tasks`]
//! (components run beside the main one, stopped within a deadline).

use tokio_util::sync::CancellationToken;

use crate::telemetry::FileLog;

pub mod access;
pub mod client;
pub mod demo;
pub mod hq;
pub mod listen;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod supervised;
pub mod tasks;
pub mod token;
pub mod usage;

/// A subcommand with its configuration loaded and validated.
pub enum Loaded {
    /// `demo`
    Demo(demo::Loaded),
    /// `relay`
    Relay(relay::Loaded),
    /// `listen`
    Listen(listen::Loaded),
    /// `proxy`
    Proxy(proxy::Loaded),
    /// `token`
    Token(token::Loaded),
    /// `server`
    Server(server::Loaded),
    /// `client`
    Client(client::Loaded),
    /// `usage`
    Usage(usage::Loaded),
    /// `hq`
    Hq(hq::Loaded),
}

impl Loaded {
    /// The log file the command's configuration asks for (the license server's
    /// `LogFileFolder`), if any.
    pub fn file_log(&self) -> Option<FileLog> {
        match self {
            Self::Server(s) => server::file_log(s),
            _ => None,
        }
    }

    /// Runs the command until it finishes or `shutdown` is cancelled, returning the heap its
    /// ended tunnels freed to the OS meanwhile (`heap_trim`).
    ///
    /// # Errors
    /// Whatever stopped the command.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tokio::spawn(heap_trim::trim_loop(
            heap_trim::DEFAULT_PERIOD,
            shutdown.clone(),
        ));
        match self {
            Self::Demo(l) => demo::run(l, shutdown).await,
            Self::Relay(l) => relay::run(l, shutdown).await,
            Self::Listen(l) => listen::run(l, shutdown).await,
            Self::Proxy(l) => proxy::run(l, shutdown).await,
            Self::Token(l) => token::run(l, shutdown).await,
            Self::Server(l) => server::run(l, shutdown).await,
            Self::Client(l) => client::run(l, shutdown).await,
            Self::Usage(l) => usage::run(l, shutdown).await,
            Self::Hq(l) => hq::run(l, shutdown).await,
        }
    }
}

/// Parses `argv` (the options after the subcommand's name) into a subcommand's `Args`, as the
/// command line would: what each subcommand's tests load from.
///
/// # Errors
/// Clap's error for an unknown, missing or invalid option.
#[cfg(test)]
pub(crate) fn parse_args<A: clap::Args>(argv: &[&str]) -> Result<A, clap::Error> {
    let command = A::augment_args(clap::Command::new("dongle-relay"));
    let matches = command
        .try_get_matches_from(std::iter::once("dongle-relay").chain(argv.iter().copied()))?;
    A::from_arg_matches(&matches)
}
