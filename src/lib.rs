//! The `dongle-relay` command: one binary whose subcommands are thin shells over the
//! libraries of the workspace.
//!
//! - [`cli`]: the command line (`--help` text lives here and in each command's `Args`).
//! - [`commands`]: one module per subcommand; each loads its configuration, binds its
//!   listener and calls its library's `run(config, listener, shutdown)`.
//! - [`telemetry`]: the tracing subscriber.
//! - [`event_log`]: which events go to the Windows event log, and (Windows) the layer and
//!   source registration writing them.
//! - [`default_paths`]: where the configuration, keys and logs are when not named (the
//!   Windows layout: beside the executable and under `%ProgramData%`).
//! - [`shutdown`]: SIGINT/SIGTERM turned into a cancellation token.
//! - [`service`]: systemd readiness, watchdog pings while the component is live, stopping.
//! - [`hang_watchdog`]: those pings as a heartbeat a plain thread watches, exiting a hung
//!   process so the Windows SCM restarts it.
//! - `windows_service` (Windows only): `service install|uninstall|query|run`, the SCM's stop
//!   request cancelling the same token as SIGTERM.
//! - [`metrics_endpoint`]: `--metrics` (`/metrics`, `/healthz`) of the tunnel commands.

pub mod cli;
pub mod commands;
pub mod default_paths;
pub mod event_log;
pub mod hang_watchdog;
pub mod metrics_endpoint;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(windows)]
pub mod windows_service;
