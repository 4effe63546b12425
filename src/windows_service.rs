//! Windows services (Windows only): `dongle-relay service install|uninstall|query|run`, through
//! the `windows-service` crate. Each component instance is its own service, whose command line
//! is `dongle-relay service run --name <service> -- <component command line>`; `run` is the
//! Service Control Manager's entry point. The SCM's stop (and system shutdown) request cancels
//! the same token SIGTERM cancels on Linux ([`crate::shutdown`]), so the component drains the
//! same way; a component that ends with an error reports a service-specific exit code, which
//! the failure actions set at install turn into a restart (after 5 s, 5 s, then 60 s). A hung
//! component (no watchdog heartbeat for 30 s, [`crate::hang_watchdog`]) ends the process,
//! which the SCM restarts the same way.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::cli::{Cli, Command};
use crate::event_log::{self, SERVICE_EVENTS};
use crate::hang_watchdog::{self, Heartbeat, HeartbeatNotifier};
use crate::telemetry::{self, FileLog};

/// `service`: manage the Windows services of dongle-relay's components.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// The `service` subcommands.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// Register a component as a service that starts with Windows, runs as LocalSystem and is
    /// restarted after a failure or a hang (5 s, 5 s, then 60 s), e.g. `service install --name
    /// dongle-relay-server -- server` (mxnet2.ini beside dongle-relay.exe). Also registers the
    /// event log source `dongle-relay` (Application log: start, stop, errors).
    Install {
        /// The service name, one per component and instance.
        #[arg(long)]
        name: String,
        /// The component's command line (`relay`, `listen`, `proxy` or `server` and its
        /// options, with global options such as `--log` first), after `--`.
        #[arg(last = true, required = true)]
        component: Vec<String>,
    },
    /// Stop a service if it runs, and remove it and the event log source `dongle-relay`.
    Uninstall {
        /// The service name.
        #[arg(long)]
        name: String,
    },
    /// Print a service's state and command line.
    Query {
        /// The service name.
        #[arg(long)]
        name: String,
    },
    /// The Service Control Manager's entry point (what `install` registers); not for a
    /// console. Logs to daily files and the event log; a component whose liveness heartbeat
    /// stops for 30 s ends the process (exit code 70) so the SCM restarts it.
    Run {
        /// The service name.
        #[arg(long)]
        name: String,
        /// The component's command line, after `--`.
        #[arg(last = true, required = true)]
        component: Vec<String>,
    },
}

/// How long the SCM is told a stop may take before it considers the service hung: the
/// components' drains end well within it.
const STOP_WAIT_HINT: Duration = Duration::from_secs(30);

/// The hang watchdog's limit: the component's supervision ticks it every half of it while
/// live (as it pings systemd's `WatchdogSec=`); no tick for this long ends the process.
const WATCHDOG: Duration = Duration::from_secs(30);

/// The service-specific exit code of a component that ended with an error.
const EXIT_FAILED: u32 = 1;

/// Runs a `service` subcommand.
pub fn main(args: Args) -> ExitCode {
    let result = match args.action {
        Action::Install { name, component } => install(&name, &component),
        Action::Uninstall { name } => uninstall(&name),
        Action::Query { name } => query(&name),
        Action::Run { name, component } => run(name, &component),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dongle-relay: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses a component's command line as `dongle-relay` would; `service` itself is refused.
fn component_cli(component: &[String]) -> anyhow::Result<Cli> {
    let cli = Cli::try_parse_from(
        std::iter::once("dongle-relay").chain(component.iter().map(String::as_str)),
    )
    .context("the component's command line")?;
    if matches!(cli.command, Command::Service(_)) {
        anyhow::bail!("a service runs a component (relay, listen, proxy, server), not `service`");
    }
    Ok(cli)
}

/// The arguments the SCM starts the service's executable with.
fn launch_arguments(name: &str, component: &[String]) -> Vec<OsString> {
    ["service", "run", "--name", name, "--"]
        .into_iter()
        .map(OsString::from)
        .chain(component.iter().map(OsString::from))
        .collect()
}

/// Restart after 5 s, 5 s, then 60 s; the count resets after a day without failures.
fn failure_actions() -> ServiceFailureActions {
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 60 * 60)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart(5), restart(5), restart(60)]),
    }
}

fn install(name: &str, component: &[String]) -> anyhow::Result<()> {
    component_cli(component)?;
    let executable_path = std::env::current_exe().context("the path of this executable")?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("cannot open the Service Control Manager (run as administrator)")?;
    let info = ServiceInfo {
        name: name.into(),
        display_name: format!("dongle-relay ({name})").into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path,
        launch_arguments: launch_arguments(name, component),
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS,
        )
        .with_context(|| format!("cannot create the service {name}"))?;
    service
        .set_description(format!("dongle-relay {}", component.join(" ")))
        .context("cannot set the description")?;
    service
        .update_failure_actions(failure_actions())
        .context("cannot set the failure actions")?;
    // A component that exits with an error (not only a crash) is restarted too. Wine's SCM
    // lacks this setting; there, and should Windows refuse it, the service is still usable.
    if let Err(e) = service.set_failure_actions_on_non_crash_failures(true) {
        eprintln!(
            "dongle-relay: warning: the failure actions apply to crashes only, not to exits \
             with an error: {e}"
        );
    }
    // Without the source the entries are still written, but Event Viewer shows them with
    // "the description cannot be found".
    if let Err(e) = event_log::register() {
        eprintln!("dongle-relay: warning: {e:#}");
    }
    println!("installed service {name}; start it with: sc start {name}");
    Ok(())
}

fn open(name: &str, access: ServiceAccess) -> anyhow::Result<windows_service::service::Service> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("cannot open the Service Control Manager")?;
    manager
        .open_service(name, access)
        .with_context(|| format!("cannot open the service {name}"))
}

fn uninstall(name: &str) -> anyhow::Result<()> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
    )?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop().context("cannot stop the service")?;
        let deadline = std::time::Instant::now() + STOP_WAIT_HINT;
        while service.query_status()?.current_state != ServiceState::Stopped {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the service {name} did not stop within {STOP_WAIT_HINT:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    service.delete().context("cannot delete the service")?;
    // Another dongle-relay service's entries lose their text until it is installed again.
    if let Err(e) = event_log::deregister() {
        eprintln!("dongle-relay: warning: {e:#}");
    }
    println!("removed service {name}");
    Ok(())
}

fn query(name: &str) -> anyhow::Result<()> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
    )?;
    let status = service.query_status()?;
    let config = service.query_config()?;
    println!("service  {name}");
    println!("state    {:?}", status.current_state);
    if let Some(pid) = status.process_id {
        println!("pid      {pid}");
    }
    println!("exit     {:?}", status.exit_code);
    println!("start    {:?}", config.start_type);
    println!("command  {}", config.executable_path.display());
    Ok(())
}

/// What the SCM's control request does: stop and shutdown cancel `shutdown` (the drain then
/// runs as after SIGTERM), interrogate is answered, anything else is not implemented.
pub fn handle_control(
    control: ServiceControl,
    shutdown: &CancellationToken,
) -> ServiceControlHandlerResult {
    match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            tracing::info!(control = ?control, "service stop requested: shutting down");
            shutdown.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    }
}

/// The component `run` hands to the SCM's service thread (the dispatcher calls a plain
/// function, which cannot capture it), and what that thread reports back.
static PENDING: Mutex<Option<(String, Cli)>> = Mutex::new(None);
static RESULT: Mutex<Option<anyhow::Result<()>>> = Mutex::new(None);

fn run(name: String, component: &[String]) -> anyhow::Result<()> {
    let cli = component_cli(component)?;
    *lock(&PENDING) = Some((name.clone(), cli));
    // Blocks until the service stops; fails at once when not started by the SCM.
    service_dispatcher::start(&name, ffi_service_main).with_context(|| {
        format!("not started by the Service Control Manager (start it with `sc start {name}`)")
    })?;
    lock(&RESULT)
        .take()
        .unwrap_or_else(|| Err(anyhow::anyhow!("the service thread did not run")))
}

/// The statics hold plain data, so a panic elsewhere cannot leave them inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

windows_service::define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let Some((name, cli)) = lock(&PENDING).take() else {
        return;
    };
    *lock(&RESULT) = Some(serve(&name, cli));
}

/// The status reported to the SCM in `state`.
fn status(state: ServiceState, exit_code: ServiceExitCode) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code,
        checkpoint: 0,
        wait_hint: if state == ServiceState::StopPending {
            STOP_WAIT_HINT
        } else {
            Duration::ZERO
        },
        process_id: None,
    }
}

/// The daily log files of a service whose configuration names no log folder:
/// `%ProgramData%\dongle-relay\logs\<service>-YYYY-MM-DD.log` (a service has no console).
fn default_file_log(name: &str, filter: &str) -> FileLog {
    let places = crate::default_paths::Places::current();
    FileLog {
        dir: places
            .log_dir()
            .unwrap_or_else(|| std::path::PathBuf::from("logs")),
        prefix: format!("{name}-"),
        filter: filter.to_owned(),
    }
}

/// The service thread: registers the control handler, runs the component until it ends or
/// the SCM stops it, and reports each state; an error ends in a service-specific exit code
/// (so the failure actions restart it).
fn serve(name: &str, cli: Cli) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let handler_token = shutdown.clone();
    let handle = service_control_handler::register(name, move |control| {
        handle_control(control, &handler_token)
    })
    .context("cannot register the service control handler")?;
    let report = move |state: ServiceState, exit_code| {
        if let Err(e) = handle.set_service_status(status(state, exit_code)) {
            tracing::warn!("cannot report {state:?} to the Service Control Manager: {e}");
        }
    };
    let result = run_component(name, cli, shutdown, report);
    let exit = match &result {
        Ok(()) => ServiceExitCode::NO_ERROR,
        Err(_) => ServiceExitCode::ServiceSpecific(EXIT_FAILED),
    };
    report(ServiceState::Stopped, exit);
    result
}

/// Loads and runs the component as `main` does, with `shutdown` as its stop signal.
fn run_component(
    name: &str,
    cli: Cli,
    shutdown: CancellationToken,
    report: impl Fn(ServiceState, ServiceExitCode) + Copy + Send + 'static,
) -> anyhow::Result<()> {
    let started = cli.command.load().and_then(|loaded| {
        let file_log = loaded
            .file_log()
            .unwrap_or_else(|| default_file_log(name, &cli.log.filter));
        let guard = telemetry::init_with(&cli.log, Some(file_log), event_log_layer())?;
        Ok((loaded, guard))
    });
    // Without logs yet, the event log is the one place a service's start failure shows.
    let (loaded, _log_guard) = started.inspect_err(|err| {
        event_log::error_now(&format!("service {name} cannot start: {err:#}"));
    })?;
    hc_client::install_crypto_provider();
    // The watchdog pings systemd would get tick the hang watchdog instead.
    let heartbeat = Arc::new(Heartbeat::default());
    crate::service::report_to(Arc::new(HeartbeatNotifier(heartbeat.clone())), WATCHDOG);
    hang_watchdog::spawn(heartbeat, WATCHDOG).context("cannot start the hang watchdog")?;
    let runtime = crate::cli::runtime(cli.threads).context("cannot start the runtime")?;
    let owned_name = name.to_owned();
    let result = runtime.block_on(async move {
        report(ServiceState::Running, ServiceExitCode::NO_ERROR);
        tracing::info!(target: SERVICE_EVENTS, "service {owned_name} started");
        let stopping = shutdown.clone();
        let name = owned_name;
        tokio::spawn(async move {
            stopping.cancelled().await;
            tracing::info!(target: SERVICE_EVENTS, "service {name} stopping: draining");
            report(ServiceState::StopPending, ServiceExitCode::NO_ERROR);
        });
        loaded.run(shutdown).await
    });
    // Logged here, while the log file is still open.
    match &result {
        Ok(()) => tracing::info!(target: SERVICE_EVENTS, "service {name} stopped"),
        Err(err) => tracing::error!("service {name} failed: {err:#}"),
    }
    result
}

/// The event log as a further log destination, for [`event_log::wanted`] events; without it
/// (the event log refused) the service still runs, logging to its files.
fn event_log_layer() -> Option<telemetry::ExtraLayer> {
    use tracing_subscriber::Layer as _;
    match event_log::EventLogLayer::open() {
        Ok(layer) => Some(layer.boxed()),
        Err(e) => {
            eprintln!("dongle-relay: the event log is not available: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_and_shutdown_cancel_the_token_like_sigterm() {
        for control in [ServiceControl::Stop, ServiceControl::Shutdown] {
            let token = CancellationToken::new();
            let answer = handle_control(control, &token);
            assert!(matches!(answer, ServiceControlHandlerResult::NoError));
            assert!(token.is_cancelled(), "{control:?}");
        }
    }

    #[test]
    fn interrogate_is_answered_and_others_are_not_implemented() {
        let token = CancellationToken::new();
        assert!(matches!(
            handle_control(ServiceControl::Interrogate, &token),
            ServiceControlHandlerResult::NoError
        ));
        for control in [
            ServiceControl::Pause,
            ServiceControl::Continue,
            ServiceControl::ParamChange,
        ] {
            assert!(matches!(
                handle_control(control, &token),
                ServiceControlHandlerResult::NotImplemented
            ));
        }
        assert!(!token.is_cancelled());
    }

    #[test]
    fn failure_actions_restart_after_5_5_and_60_seconds() {
        let actions = failure_actions().actions.expect("actions");
        let delays: Vec<u64> = actions.iter().map(|a| a.delay.as_secs()).collect();
        assert_eq!(delays, [5, 5, 60]);
        assert!(
            actions
                .iter()
                .all(|a| a.action_type == ServiceActionType::Restart)
        );
    }

    #[test]
    fn the_service_runs_the_component_command_line() {
        let component = ["--log".to_owned(), "info".to_owned(), "server".to_owned()];
        let args = launch_arguments("dr-server", &component);
        assert_eq!(
            args,
            [
                "service",
                "run",
                "--name",
                "dr-server",
                "--",
                "--log",
                "info",
                "server"
            ]
            .map(OsString::from)
        );
        // What the SCM starts parses back to `service run` with the same component.
        let cli = Cli::try_parse_from(std::iter::once(OsString::from("dongle-relay")).chain(args))
            .expect("parses");
        let Command::Service(Args {
            action:
                Action::Run {
                    name,
                    component: back,
                },
        }) = cli.command
        else {
            panic!("not `service run`");
        };
        assert_eq!(name, "dr-server");
        assert_eq!(back, component);
        assert!(component_cli(&back).is_ok());
    }

    #[test]
    fn a_service_cannot_run_service_itself() {
        let nested = ["service", "query", "--name", "x"].map(str::to_owned);
        assert!(component_cli(&nested).is_err());
        assert!(component_cli(&["bogus".to_owned()]).is_err());
    }

    #[test]
    fn the_stop_status_gives_the_drain_time_and_running_accepts_stop() {
        let running = status(ServiceState::Running, ServiceExitCode::NO_ERROR);
        assert!(
            running
                .controls_accepted
                .contains(ServiceControlAccept::STOP)
        );
        let stopping = status(ServiceState::StopPending, ServiceExitCode::NO_ERROR);
        assert_eq!(stopping.wait_hint, STOP_WAIT_HINT);
        assert!(stopping.controls_accepted.is_empty());
    }
}
