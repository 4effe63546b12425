//! The `server` subcommand: loads `mxnet2.ini` (or its TOML equivalent), binds the license
//! port and serves it until shutdown — with, when configured, persisted seats (`StateDb=`),
//! the admin endpoint (`AdminBind=`: status page, JSON, actions, metrics) and a relay-listener
//! in the same process ([`ops`]).

pub mod ops;
mod serve;

pub use serve::run;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hc_client::settings::TlsSection;
use hc_protocol::Secret;
#[cfg(test)]
use license_server::config::{BackendChoice, TrustedProxies};
use license_server::config::{ServerConfig, ServerFlags};
use ops_http::BearerToken;
use relay_listener::{IdentityMode, ListenerConfig, ListenerFile};

use super::access::{RelayArgs, read_file, secret};
use super::listen;
use crate::default_paths::{self, Places};

/// The identity key file used when the configuration names none.
const DEFAULT_KEY_FILE: &str = "mxnet2-server.key";
/// Environment variable holding the admin endpoint's bearer token.
pub const ADMIN_TOKEN_ENV: &str = "DONGLE_RELAY_ADMIN_TOKEN";
/// Environment variable holding the in-process relay-listener's connection string.
pub const LISTENER_CONNECTION_STRING_ENV: &str = "DONGLE_RELAY_LISTENER_CONNECTION_STRING";
/// How long stopping waits for the admin endpoint and the relay-listener.
const STOP_LIMIT: Duration = Duration::from_secs(10);

const SERVER_HELP: &str = "\
Run the license server: MxNet2 remote-API semantics (sessions, AppSlot seats, login and\n\
session timeouts, per-session or per-IP licences) over dongle-relay's authenticated TCP\n\
protocol, on port 12300 of 127.0.0.1 by default.\n\
\n\
Configuration: --config FILE (mxnet2.ini as the MxNet2 manual writes it, or a .toml\n\
equivalent); without it, ./mxnet2.ini when present (Windows: first mxnet2.ini in the\n\
executable's folder, as MxNet2), else built-in defaults: one simulated dongle (serial\n\
1234567890) with AppSlot 1 \"Demo Application\" (3 seats) and AppSlot 2 (10).\n\
Seat limits are LimitN= keys of the [dongleN] sections. LogFileFolder writes daily\n\
mxnetYYYY-MM-DD.log files (LogLevel 0 errors, 1 information, 2 debug); on Windows it\n\
defaults to %ProgramData%\\dongle-relay\\logs.\n\
\n\
Identity: the server signs every session's key exchange with an Ed25519 key kept in\n\
KeyFile (default mxnet2-server.key next to the configuration, created mode 0600; on\n\
Windows in %ProgramData%\\dongle-relay, readable by SYSTEM, Administrators and its owner\n\
only). Its public key is printed at start; clients pin it with serverkey= (mxnetapi.ini)\n\
or --pin-key.\n\
\n\
Dongles: simulated (default), usb (TDi Matrix keys 0e50:0001/0002 via libusb, polled every\n\
2 s; seat limits still come from the configuration) or none. See docs/license-server.md.\n\
\n\
Client identity: a relay-listener on a trusted address (TrustedProxy=, --trusted-proxy;\n\
default loopback) may start each connection with a PROXY protocol v2 header naming the\n\
real client and its site; seats, per-IP licences, logs and status then use them. A header\n\
from any other address is refused and logged. See docs/identity.md.\n\
\n\
Operations (docs/operations.md): --state-db FILE (StateDb=) persists sessions and logins so\n\
seats survive a restart; --admin [ADDR] (AdminBind=, default 127.0.0.1:12380) serves the\n\
status page with Disconnect/Logout, GET /api/status and /metrics, protected by the bearer\n\
token in $DONGLE_RELAY_ADMIN_TOKEN or --admin-token-file (AdminTokenFile=), required off\n\
loopback; --relay-listener FILE (RelayListener=) or --relay-connection-string also runs the\n\
relay-listener in this process, bridging to this server with PROXY v2 headers.";

/// Options of `dongle-relay server`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = SERVER_HELP)]
pub struct Args {
    /// Server configuration: mxnet2.ini, or a .toml file [default: ./mxnet2.ini if present;
    /// Windows: first the one in the executable's folder].
    #[arg(
        long,
        short = 'c',
        env = "DONGLE_RELAY_LICENSE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// The options that are also keys of the configuration file (`--bind`, `--port`,
    /// `--dongle`, `--key-file`, `--trusted-proxy`, `--state-db`, `--admin`,
    /// `--admin-token-file`, `--relay-listener`), defined once in
    /// `license_server::config::options`.
    #[command(flatten)]
    pub options: ServerFlags,
    /// Use a new identity key at every start, written nowhere (clients cannot pin it).
    #[arg(long, conflicts_with = "key-file")]
    pub ephemeral_key: bool,
    /// Print the server's public key (base64, for clients to pin) and exit.
    #[arg(long)]
    pub print_key: bool,
    /// The in-process relay-listener's connection string (Listen right); enables it. Prefer
    /// the environment variable: command lines are visible to other users.
    #[arg(long, env = LISTENER_CONNECTION_STRING_ENV, hide_env_values = true, value_name = "STRING",
        value_parser = secret)]
    pub relay_connection_string: Option<Secret>,
    /// The in-process relay-listener trusts exactly the relay certificate with this SHA-256
    /// fingerprint (repeatable).
    #[arg(long = "relay-pin-sha256", value_name = "FINGERPRINT")]
    pub relay_pins: Vec<String>,
    /// The in-process relay-listener also trusts the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub relay_ca_file: Option<PathBuf>,
    /// Expose the admin endpoint through the relay too: the in-process relay-listener
    /// forwards HTTP-mode requests (`https://RELAY/HC/api/status` with a Send token) to it.
    /// Needs the in-process relay-listener and an admin endpoint with a token, which such
    /// requests must still carry (`Authorization: Bearer …`).
    #[arg(long)]
    pub relay_admin: bool,
}

/// The admin endpoint's settings.
pub struct AdminSettings {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its token, if any.
    pub token: Option<BearerToken>,
}

/// The validated configuration of `server`.
pub struct Loaded {
    config: ServerConfig,
    print_key: bool,
    admin: Option<AdminSettings>,
    /// Whether the in-process relay-listener forwards HTTP-mode requests to the admin endpoint.
    relay_admin: bool,
    /// The in-process relay-listener (its target is set once the license port is bound);
    /// boxed: it is large and rarely there.
    listener: Option<Box<ListenerConfig>>,
}

/// Reads and validates the configuration.
///
/// # Errors
/// Configuration errors, naming the file and key.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    load_in(args, &Places::current())
}

/// [`load`] with the default places given ([`crate::default_paths`]).
fn load_in(args: Args, places: &Places) -> anyhow::Result<Loaded> {
    let path = args.config.clone().or_else(|| places.config(Path::exists));
    let mut config = match &path {
        Some(p) => ServerConfig::load(p)?,
        None => ServerConfig::default(),
    };
    config.apply_flags(&args.options)?;
    let admin = admin_settings(&config)?;
    let listener = listener_config(&args, &mut config)?;
    if args.relay_admin {
        anyhow::ensure!(
            listener.is_some(),
            "--relay-admin needs the in-process relay-listener (--relay-listener or \
             --relay-connection-string)"
        );
        anyhow::ensure!(
            admin.as_ref().is_some_and(|a| a.token.is_some()),
            "--relay-admin needs an admin endpoint with a bearer token (--admin and \
             $DONGLE_RELAY_ADMIN_TOKEN or --admin-token-file)"
        );
    }
    if args.ephemeral_key {
        config.key_file = None;
    } else if config.key_file.is_none() {
        // Windows: the data folder (a service cannot write to Program Files); elsewhere
        // beside the configuration.
        let dir = match places.data_dir() {
            Some(data) => {
                default_paths::create(&data)?;
                data
            }
            None => path
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new(""))
                .to_path_buf(),
        };
        config.key_file = Some(dir.join(DEFAULT_KEY_FILE));
    }
    if config.log_file_folder.is_none()
        && let Some(logs) = places.log_dir()
    {
        default_paths::create(&logs)?;
        config.log_file_folder = Some(logs);
    }
    Ok(Loaded {
        config,
        print_key: args.print_key,
        admin,
        relay_admin: args.relay_admin,
        listener,
    })
}

/// The admin endpoint (`--admin`/`AdminBind=`); the token from the environment, else
/// `--admin-token-file`/`AdminTokenFile=`. A non-loopback address needs a token.
fn admin_settings(config: &ServerConfig) -> anyhow::Result<Option<AdminSettings>> {
    let Some(addr) = config.admin_bind else {
        return Ok(None);
    };
    let token = ops::bearer_token(ADMIN_TOKEN_ENV, config.admin_token_file.as_deref())?;
    ops_http::check_bind(addr, token.as_ref())?;
    Ok(Some(AdminSettings { addr, token }))
}

/// The in-process relay-listener: from `--relay-listener`/`RelayListener=` (a listener TOML
/// file, merged as `listen` merges it) and the `--relay-*` options; none unless one of them is
/// given. Its identity mode defaults to PROXY v2 (this server reads the headers); its target is
/// this server, whatever the file says.
fn listener_config(
    args: &Args,
    config: &mut ServerConfig,
) -> anyhow::Result<Option<Box<ListenerConfig>>> {
    let path = config.relay_listener.clone();
    if path.is_none() && args.relay_connection_string.is_none() {
        return Ok(None);
    }
    let mut file = read_file(path.as_ref(), ListenerFile::parse)?.unwrap_or_default();
    if let Some(target) = file.target.take() {
        config.warnings.push(format!(
            "relay-listener: target = {target:?} is not used: the in-process relay-listener \
             bridges to this server"
        ));
    }
    file.identity.get_or_insert(IdentityMode::ProxyV2);
    let flags = listen::Args {
        relay: RelayArgs {
            connection_string: args.relay_connection_string.clone(),
            tls: TlsSection {
                ca_file: args.relay_ca_file.clone(),
                pin_sha256: args.relay_pins.clone(),
                ..TlsSection::default()
            },
            ..RelayArgs::default()
        },
        ..listen::Args::default()
    };
    let listener = listen::listener_config(&flags, file).context("relay-listener")?;
    Ok(Some(Box::new(listener)))
}

/// The daily log file the server configuration asks for (`LogFileFolder`, `LogLevel`).
pub fn file_log(loaded: &Loaded) -> Option<crate::telemetry::FileLog> {
    let dir = loaded.config.log_file_folder.clone()?;
    Some(crate::telemetry::FileLog {
        dir,
        prefix: license_server::logs::PREFIX.to_owned(),
        filter: loaded.config.log_level.filter().to_owned(),
    })
}

#[cfg(test)]
mod tests;
