//! One module per subcommand. Each has `Args` (its command line), `load` (read and validate
//! configuration, no sockets) and `run` (bind, then call the library).

use tokio_util::sync::CancellationToken;

use crate::telemetry::FileLog;

pub mod client;
pub mod demo;
pub mod listen;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod token;

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

    /// Runs the command until it finishes or `shutdown` is cancelled.
    ///
    /// # Errors
    /// Whatever stopped the command.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            Self::Demo(l) => demo::run(l, shutdown).await,
            Self::Relay(l) => relay::run(l, shutdown).await,
            Self::Listen(l) => listen::run(l, shutdown).await,
            Self::Proxy(l) => proxy::run(l, shutdown).await,
            Self::Token(l) => token::run(l, shutdown).await,
            Self::Server(l) => server::run(l, shutdown).await,
            Self::Client(l) => client::run(l, shutdown).await,
        }
    }
}
