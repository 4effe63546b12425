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
    /// Runtime threads. `1` runs the whole process on one thread (Tokio's current-thread
    /// runtime: no work stealing, no wake-ups across threads), which suits the site proxy and
    /// the listener, whose traffic is small, and any process on a machine with few cores.
    /// `0` (the default): one worker per core, or `TOKIO_WORKER_THREADS`.
    #[arg(long, global = true, env = "DONGLE_RELAY_THREADS", default_value_t = 0)]
    pub threads: usize,
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
    #[command(mut_args = env_names("listen"), after_help = ENV_HELP_LISTEN)]
    Listen(commands::listen::Args),
    /// Run the local-proxy at a client site: forward local TCP connections over the relay.
    #[command(mut_args = env_names("proxy"), after_help = ENV_HELP_PROXY)]
    Proxy(commands::proxy::Args),
    /// Print a SAS token for a resource URI.
    Token(commands::token::Args),
    /// Run the license server (MxNet2 remote-API semantics).
    Server(commands::server::Args),
    /// Talk to a license server: init, login, refresh, logout, status.
    Client(commands::client::Args),
    /// Report seat usage and refusals per AppSlot and site from a state database.
    Usage(commands::usage::Args),
    /// Serve one page with the status and usage of every dongle host (directly or through
    /// the relay).
    Hq(commands::hq::Args),
    /// Run a component as a Windows service: install, uninstall, query (and `run`, the
    /// Service Control Manager's entry point).
    #[cfg(windows)]
    Service(crate::windows_service::Args),
}

/// The environment layer of `listen` and `proxy` (see `config_syntax::layers`): every option
/// that takes a value and has no variable of its own can be set with
/// `DONGLE_RELAY_<COMMAND>_<FLAG>`, the long flag upper-cased with `-` as `_`; a flag on the
/// command line wins over its variable, and the variable over the `--config` file. One rule
/// instead of a name per option; `--help` states it (see [`ENV_HELP_LISTEN`]) rather than
/// listing every variable.
pub fn env_names(command: &'static str) -> impl FnMut(clap::Arg) -> clap::Arg {
    move |arg| {
        let Some(long) = arg.get_long() else {
            return arg;
        };
        let takes_value = arg.get_action().takes_values()
            && arg.get_num_args().is_none_or(|n| n.max_values() > 0);
        if !takes_value || arg.get_env().is_some() {
            return arg;
        }
        let name = format!(
            "DONGLE_RELAY_{}_{}",
            command.to_ascii_uppercase(),
            long.to_ascii_uppercase().replace('-', "_")
        );
        arg.env(name).hide_env(true)
    }
}

/// `listen --help`'s note on environment variables.
const ENV_HELP_LISTEN: &str = "Every option that takes a value can also be set in the \
environment as DONGLE_RELAY_LISTEN_<OPTION> (`--idle-timeout 90s` is \
DONGLE_RELAY_LISTEN_IDLE_TIMEOUT=90s); flags win over variables, variables over the --config file.";

/// `proxy --help`'s note on environment variables.
const ENV_HELP_PROXY: &str = "Every option that takes a value can also be set in the \
environment as DONGLE_RELAY_PROXY_<OPTION> (`--idle-timeout 90s` is \
DONGLE_RELAY_PROXY_IDLE_TIMEOUT=90s); flags win over variables, variables over the --config file.";

/// The Tokio runtime `--threads` asks for (see [`Cli::threads`]).
///
/// # Errors
/// The runtime could not be created (threads, I/O driver).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b
        }
    };
    builder.enable_all().build()
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
            Self::Usage(a) => Loaded::Usage(commands::usage::load(a)?),
            Self::Hq(a) => Loaded::Hq(commands::hq::load(a)?),
            // `main` hands `service` to `windows_service::main` before loading anything.
            #[cfg(windows)]
            Self::Service(_) => anyhow::bail!("`service` has no configuration to load"),
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn threads_choose_the_runtime_flavor() {
        let flavor = |n| {
            super::runtime(n)
                .expect("runtime")
                .handle()
                .runtime_flavor()
        };
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(0), RuntimeFlavor::MultiThread);
        assert_eq!(flavor(2), RuntimeFlavor::MultiThread);
    }
}
