//! Entry point: parse the command line, load the configuration, initialise tracing, install
//! the TLS crypto provider, and hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use dongle_relay::cli::{self, Cli};
use dongle_relay::{shutdown, telemetry};

/// `EX_USAGE`: the configuration or command line is invalid.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `service` manages or runs a service; the component it runs is loaded there.
    #[cfg(windows)]
    let cli = match cli {
        Cli {
            command: cli::Command::Service(args),
            ..
        } => return dongle_relay::windows_service::main(args),
        other => other,
    };
    let loaded = match cli.command.load() {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("dongle-relay: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let _log_guard = match telemetry::init(&cli.log, loaded.file_log()) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("dongle-relay: cannot initialise logging: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    hc_client::install_crypto_provider();
    let runtime = match cli::runtime(cli.threads) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("dongle-relay: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown::on_signal();
        loaded.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("dongle-relay: {err:#}");
            ExitCode::FAILURE
        }
    }
}
