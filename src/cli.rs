//! The command line of `dongle-relay`.

use clap::{Parser, Subcommand};

use crate::commands::{self, Loaded};
use crate::telemetry::LogArgs;

/// Reach a USB license dongle at one site from license clients at other sites, through an
/// Azure Relay Hybrid Connections relay (Azure's, or the self-hosted one built in), with no
/// inbound port anywhere.
#[derive(Parser, Debug)]
#[command(name = "dongle-relay", version, about, long_about = None)]
pub struct Cli {
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run everything on this machine (relay, license server with a simulated dongle,
    /// relay-listener, local-proxy) and walk a legacy client through a license session.
    Demo(commands::demo::Args),
    /// Run the self-hosted Hybrid Connections relay.
    Relay(commands::relay::Args),
    /// Run the relay-listener on the dongle host: bridge relay connections to the license
    /// server.
    Listen(commands::listen::Args),
    /// Run the local-proxy at a client site: forward local TCP connections over the relay.
    Proxy(commands::proxy::Args),
    /// Print a SAS token for a resource URI.
    Token(commands::token::Args),
    /// Run the license server (MxNet2 remote-API semantics).
    Server(commands::server::Args),
    /// Talk to a license server: init, login, refresh, logout, status.
    Client(commands::client::Args),
}

impl Command {
    /// Reads and validates the configuration of the chosen subcommand, before any socket is
    /// bound.
    ///
    /// # Errors
    /// Any configuration error, with the file and key it concerns.
    pub fn load(self) -> anyhow::Result<Loaded> {
        Ok(match self {
            Self::Demo(a) => Loaded::Demo(commands::demo::load(a)?),
            Self::Relay(a) => Loaded::Relay(commands::relay::load(a)?),
            Self::Listen(a) => Loaded::Listen(commands::listen::load(a)?),
            Self::Proxy(a) => Loaded::Proxy(commands::proxy::load(a)?),
            Self::Token(a) => Loaded::Token(commands::token::load(a)?),
            Self::Server(a) => Loaded::Server(commands::server::load(a)?),
            Self::Client(a) => Loaded::Client(commands::client::load(a)?),
        })
    }
}
