//! The license server's configuration: one validated [`ServerConfig`], read from `mxnet2.ini`
//! as the manual writes it (section 3.1 keys, `[dongleN]` naming sections, section 6.7) or from
//! an equivalent TOML file, with our extensions (bind address, key file, dongle backend,
//! simulated dongles, seat limits, trusted PROXY header senders) under documented keys. Unknown
//! keys and bad values are errors naming the key.
//!
//! Each `[Option]` setting is defined once, as a row of [`options::OPTIONS`] (INI key, TOML key,
//! flag, parser, help line): the INI and TOML readers and the command line
//! ([`ServerFlags`], [`ServerConfig::apply_flags`]) all read it. [`ServerConfig`] is the
//! validated result the server runs with.

mod flags;
mod ini;
pub mod options;
mod toml;
mod trusted;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use license_core::DEFAULT_PORT;
pub use license_core::config_file::ConfigError;
use license_core::config_file::{bad, load_file};
pub use license_core::dongle::DongleSection;
use license_core::engine::{EngineSettings, LicenseMode};

pub use flags::ServerFlags;
pub use trusted::TrustedProxies;

/// Default `CmdIssueTimeInterval` (section 6.8).
pub const DEFAULT_CMD_ISSUE_TIME_INTERVAL: Duration = Duration::from_secs(60);

/// `LogLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// 0: errors only (the default): failures of the server and every refused request (-31,
    /// -102, -104, ...), which this server logs as warnings.
    #[default]
    Errors,
    /// 1: information.
    Information,
    /// 2: debug.
    Debug,
}

impl LogLevel {
    /// From the manual's number.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            0 => Some(Self::Errors),
            1 => Some(Self::Information),
            2 => Some(Self::Debug),
            _ => None,
        }
    }

    /// A tracing filter directive for this level.
    pub fn filter(self) -> &'static str {
        match self {
            Self::Errors => "warn",
            Self::Information => "info",
            Self::Debug => "debug",
        }
    }
}

/// Where dongles come from (`DongleBackend=`, our extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Simulated dongles from the `[dongleN]` sections (the default).
    #[default]
    Simulated,
    /// Matrix keys on USB (rusb); `[dongleN]` sections name them and give seat limits.
    Usb,
    /// No dongle: every dongle call answers -102.
    None,
}

impl BackendChoice {
    /// What a `DongleBackend=` value, a TOML `dongle_backend` or `--dongle` may say.
    pub const EXPECTED: &'static str = "simulated (or sim), usb or none";

    /// Parses a backend name, case-insensitively: the one spelling shared by the INI key, the
    /// TOML key and the command line.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "simulated" | "sim" => Some(Self::Simulated),
            "usb" => Some(Self::Usb),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// The license server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `Lang=` (accepted, not used: messages are English).
    pub lang: String,
    /// `Port=` (default 12300).
    pub port: u16,
    /// `Bind=` (extension): the address to listen on (default 127.0.0.1).
    pub bind: IpAddr,
    /// `LoginTimeOut=` (seconds, default 300).
    pub login_timeout: Duration,
    /// `SessionTimeOut=` (seconds, default 3600).
    pub session_timeout: Duration,
    /// `SessionBaseLicense=` (1 = per session, the default; 0 = per IP).
    pub license_mode: LicenseMode,
    /// `CmdIssueTimeInterval=` (seconds, default 60).
    pub cmd_issue_time_interval: Duration,
    /// `CheckCmdIssueTime=` (1 = check, the default; 0 = do not).
    pub check_cmd_issue_time: bool,
    /// `LogFileFolder=`: daily files `mxnetYYYY-MM-DD.log` there.
    pub log_file_folder: Option<PathBuf>,
    /// `LogLevel=` (0, 1, 2).
    pub log_level: LogLevel,
    /// `DongleBackend=` (extension).
    pub backend: BackendChoice,
    /// `[dongleN]` sections, numbered from 1 without gaps.
    pub dongles: Vec<DongleSection>,
    /// `KeyFile=` (extension): the server's Ed25519 identity, created (mode 0600) if absent.
    /// `None`: a new identity at every start (clients cannot pin it).
    pub key_file: Option<PathBuf>,
    /// `MaxSessions=` (extension, default 10000).
    pub max_sessions: usize,
    /// `PreLoginTimeOut=` (extension, seconds, default 300): a session that never logged in
    /// ends after this long without calls.
    pub prelogin_timeout: Duration,
    /// `MaxSessionsPerAddress=` (extension, default 1000; IPv6 counted per /64).
    pub max_sessions_per_address: usize,
    /// `MaxSessionsPerSite=` (extension, default 5000).
    pub max_sessions_per_site: usize,
    /// `ConnectionIdleTimeOut=` (extension, seconds, default 60): a connection with no
    /// complete request for this long is closed.
    pub connection_idle_timeout: Duration,
    /// `MaxConnections=` (extension, default 4096): connections served at once.
    pub max_connections: usize,
    /// `MaxConnectionsPerAddress=` (extension, default 256): connections of one client
    /// address served at once.
    pub max_connections_per_address: usize,
    /// `TrustedProxy=` (extension): peers whose PROXY protocol v2 headers name the real client
    /// and site (default loopback, where the relay-listener runs). Headers from other peers
    /// are refused.
    pub trusted_proxies: TrustedProxies,
    /// `StateDb=` (extension): the SQLite file where sessions and logins are persisted so seats
    /// survive a restart (`docs/operations.md`); `None` (the default): nothing is persisted.
    pub state_db: Option<PathBuf>,
    /// `HistoryDays=` (extension, default 400): days the usage history's per-minute figures
    /// are kept in the state database (`docs/usage-reports.md`).
    pub history_days: u32,
    /// `HistoryEventDays=` (extension, default 90): days its raw events are kept.
    pub history_event_days: u32,
    /// `AdminBind=` (extension): where the admin endpoint (status page, JSON, actions,
    /// metrics) listens; `None` (the default): no admin endpoint.
    pub admin_bind: Option<SocketAddr>,
    /// `AdminTokenFile=` (extension): the file holding the admin endpoint's bearer token.
    pub admin_token_file: Option<PathBuf>,
    /// `RelayListener=` (extension): a relay-listener configuration file (the format of
    /// `dongle-relay listen --config`); the `dongle-relay server` command then runs the
    /// relay-listener in the same process, bridging to this server.
    pub relay_listener: Option<PathBuf>,
    /// Things worth a warning that are not errors (e.g. `[dongle4]` after a gap).
    pub warnings: Vec<String>,
}

impl Default for ServerConfig {
    /// The out-of-the-box configuration: port 12300 on 127.0.0.1, one simulated dongle
    /// (serial 1234567890) with AppSlot 1 "Demo Application" (3 seats) and AppSlot 2 (10).
    fn default() -> Self {
        Self {
            lang: "eng".to_owned(),
            port: DEFAULT_PORT,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            login_timeout: license_core::engine::DEFAULT_LOGIN_TIMEOUT,
            session_timeout: license_core::engine::DEFAULT_SESSION_TIMEOUT,
            license_mode: LicenseMode::Session,
            cmd_issue_time_interval: DEFAULT_CMD_ISSUE_TIME_INTERVAL,
            check_cmd_issue_time: true,
            log_file_folder: None,
            log_level: LogLevel::Errors,
            backend: BackendChoice::Simulated,
            dongles: vec![default_dongle()],
            key_file: None,
            max_sessions: license_core::engine::DEFAULT_MAX_SESSIONS,
            prelogin_timeout: license_core::engine::DEFAULT_PRELOGIN_TIMEOUT,
            max_sessions_per_address: license_core::engine::DEFAULT_MAX_SESSIONS_PER_ADDRESS,
            max_sessions_per_site: license_core::engine::DEFAULT_MAX_SESSIONS_PER_SITE,
            connection_idle_timeout: crate::server::DEFAULT_CONNECTION_IDLE_TIMEOUT,
            max_connections: crate::server::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: crate::server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            trusted_proxies: TrustedProxies::loopback(),
            state_db: None,
            history_days: crate::store::DEFAULT_HISTORY_DAYS,
            history_event_days: crate::store::DEFAULT_EVENT_DAYS,
            admin_bind: None,
            admin_token_file: None,
            relay_listener: None,
            warnings: Vec::new(),
        }
    }
}

/// The simulated dongle used when the configuration defines none.
pub fn default_dongle() -> DongleSection {
    DongleSection {
        number: 1,
        sernr: Some(1_234_567_890),
        name: Some("SimDongle".to_owned()),
        slot_names: BTreeMap::from([(1, "Demo Application".to_owned())]),
        limits: BTreeMap::from([(1, 3), (2, 10)]),
        model: None,
        user_code: None,
        data: vec![1, 2, 3, 4],
    }
}

impl ServerConfig {
    /// Parses an `mxnet2.ini`.
    ///
    /// # Errors
    /// Syntax errors, unknown keys, bad values.
    pub fn from_ini_str(text: &str) -> Result<Self, ConfigError> {
        ini::parse(text)
    }

    /// Parses the TOML equivalent.
    ///
    /// # Errors
    /// Syntax errors, unknown keys, bad values.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::parse(text)
    }

    /// Reads a file: TOML when its name ends in `.toml`, INI otherwise. Relative
    /// `LogFileFolder`, `KeyFile`, `StateDb`, `AdminTokenFile` and `RelayListener` paths are
    /// taken relative to the file's folder.
    ///
    /// # Errors
    /// As for the parsers, plus read errors.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let mut config = load_file(path, |text| {
            if is_toml {
                Self::from_toml_str(text)
            } else {
                Self::from_ini_str(text)
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.log_file_folder,
            &mut config.key_file,
            &mut config.state_db,
            &mut config.admin_token_file,
            &mut config.relay_listener,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// How long the state database keeps usage history.
    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention {
            history_days: self.history_days,
            event_days: self.history_event_days,
        }
    }

    /// The engine settings of this configuration.
    pub fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            login_timeout: self.login_timeout,
            session_timeout: self.session_timeout,
            mode: self.license_mode,
            max_sessions: self.max_sessions,
            prelogin_timeout: self.prelogin_timeout,
            max_sessions_per_address: self.max_sessions_per_address,
            max_sessions_per_site: self.max_sessions_per_site,
        }
    }

    /// Checks ranges that both formats share, and fills the default dongle in.
    fn finish(mut self, dongles_given: bool) -> Result<Self, ConfigError> {
        let option = |key: &str, value: String, expected| ConfigError::BadValue {
            section: "Option".to_owned(),
            key: key.to_owned(),
            value,
            expected,
        };
        if self.login_timeout.is_zero() {
            return Err(option("LoginTimeOut", "0".into(), "at least 1 second"));
        }
        if self.session_timeout.is_zero() {
            return Err(option("SessionTimeOut", "0".into(), "at least 1 second"));
        }
        for (key, zero) in [
            ("MaxSessions", self.max_sessions == 0),
            ("MaxSessionsPerAddress", self.max_sessions_per_address == 0),
            ("MaxSessionsPerSite", self.max_sessions_per_site == 0),
            ("MaxConnections", self.max_connections == 0),
            (
                "MaxConnectionsPerAddress",
                self.max_connections_per_address == 0,
            ),
        ] {
            if zero {
                return Err(option(key, "0".into(), "at least 1"));
            }
        }
        for (key, zero) in [
            ("PreLoginTimeOut", self.prelogin_timeout.is_zero()),
            (
                "ConnectionIdleTimeOut",
                self.connection_idle_timeout.is_zero(),
            ),
        ] {
            if zero {
                return Err(option(key, "0".into(), "at least 1 second"));
            }
        }
        if !dongles_given && self.backend == BackendChoice::Simulated {
            self.dongles = vec![default_dongle()];
        }
        Ok(self)
    }
}

/// Parses the admin endpoint's address: `IP:port`, `[IPv6]:port`, or an address alone (port
/// [`ops_http::DEFAULT_ADMIN_PORT`]).
///
/// # Errors
/// Neither form.
pub fn parse_admin_bind(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    value
        .parse::<SocketAddr>()
        .or_else(|_| {
            value
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, ops_http::DEFAULT_ADMIN_PORT))
        })
        .map_err(|_| format!("{value:?} is not an address such as 127.0.0.1:12380"))
}

#[cfg(test)]
mod tests;
