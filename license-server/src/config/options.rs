//! The server's `[Option]` settings, each defined once in [`OPTIONS`]: its `mxnet2.ini` key,
//! its TOML key, its command-line flag (if it has one), how its value is written, its parser
//! and its one-line description. The INI reader, the TOML reader and the command line
//! ([`super::ServerFlags`]) all read this table; `tests/options_docs.rs` checks it against `--help`
//! and `docs/license-server.md`.
//!
//! Why a table and not one serde struct, as the other components have: the INI format is the
//! vendor's (`KeyFile=`, `SessionBaseLicense=1`, case-insensitive keys, `[dongleN]` sections
//! numbered until the first gap, `LimitN=`/`N=` keys, comments after blanks, literal
//! backslashes), and no well-kept crate deserialises it. `serde_ini` (0.2.0, 2018, unmaintained)
//! has case-sensitive keys, no numbered sections and no dynamic keys; `rust-ini`, the parser
//! used here, has no serde support; `config` lowercases keys but reads INI with backslash
//! escapes (Windows paths break). Hand-rolling an INI deserialiser is what the project rules
//! out. So the options are data: one row each, parsed from the text both files give (INI
//! values as written; TOML values turned into the same text after their type is checked), so
//! both formats and the flags share one parser per option.

use std::path::PathBuf;
use std::time::Duration;

use license_core::engine::LicenseMode;

use super::{BackendChoice, LogLevel, ServerConfig, TrustedProxies};

/// How an option's value is written: in `mxnet2.ini` always as text; in TOML as this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string (TOML `"…"`).
    Text,
    /// A whole number (TOML integer).
    Number,
    /// `0` or `1` in the INI file, `false` or `true` in TOML.
    Switch,
    /// Comma-separated in the INI file (and on the command line), a list of strings in TOML.
    List,
}

/// The command-line flag of an option.
#[derive(Debug)]
pub struct Flag {
    /// The long name, without `--`.
    pub long: &'static str,
    /// A short name.
    pub short: Option<char>,
    /// The value's name in `--help`.
    pub value_name: &'static str,
    /// The value a bare flag stands for (the flag's value is then optional).
    pub bare: Option<&'static str>,
}

/// One server option.
#[derive(Debug)]
pub struct ServerOption {
    /// Its key in `mxnet2.ini`'s `[Option]` section (matched case-insensitively).
    pub ini: &'static str,
    /// Older or alternative INI spellings, read alike.
    pub ini_aliases: &'static [&'static str],
    /// Its key in the TOML file.
    pub toml: &'static str,
    /// Its command-line flag, if it has one.
    pub flag: Option<Flag>,
    /// How its value is written.
    pub kind: Kind,
    /// What it means (the flag's `--help` line).
    pub doc: &'static str,
    /// Sets it from its text; the error says what is expected.
    set: fn(&mut ServerConfig, &str) -> Result<(), &'static str>,
}

impl ServerOption {
    /// Sets this option of `config` from its text.
    ///
    /// # Errors
    /// What the value should be.
    pub fn set(&self, config: &mut ServerConfig, value: &str) -> Result<(), &'static str> {
        (self.set)(config, value)
    }

    /// Whether `key` is this option's INI key (any case, aliases included).
    fn is_ini(&self, key: &str) -> bool {
        std::iter::once(&self.ini)
            .chain(self.ini_aliases)
            .any(|k| k.eq_ignore_ascii_case(key))
    }
}

/// The option with this INI key (any case).
pub fn by_ini(key: &str) -> Option<&'static ServerOption> {
    OPTIONS.iter().find(|o| o.is_ini(key))
}

/// The option with this TOML key.
pub fn by_toml(key: &str) -> Option<&'static ServerOption> {
    OPTIONS.iter().find(|o| o.toml == key)
}

fn seconds(value: &str) -> Result<Duration, &'static str> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| "a whole number of seconds")
}

fn count(value: &str) -> Result<usize, &'static str> {
    value.parse().map_err(|_| "a whole number")
}

fn days(value: &str) -> Result<u32, &'static str> {
    value
        .parse::<u32>()
        .ok()
        .filter(|d| *d > 0)
        .ok_or("a whole number of days, at least 1")
}

fn switch(value: &str) -> Result<bool, &'static str> {
    match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err("0 or 1"),
    }
}

/// A path; empty means none.
fn path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

const fn flag(long: &'static str, value_name: &'static str) -> Option<Flag> {
    Some(Flag {
        long,
        short: None,
        value_name,
        bare: None,
    })
}

/// Every `[Option]` setting, in the order of the manual and then of our extensions.
pub static OPTIONS: &[ServerOption] = &[
    ServerOption {
        ini: "Lang",
        ini_aliases: &[],
        toml: "lang",
        flag: None,
        kind: Kind::Text,
        doc: "Language of messages (accepted, not used: messages are English).",
        set: |c, v| {
            c.lang = v.to_owned();
            Ok(())
        },
    },
    ServerOption {
        ini: "Port",
        ini_aliases: &[],
        toml: "port",
        flag: Some(Flag {
            long: "port",
            short: Some('p'),
            value_name: "PORT",
            bare: None,
        }),
        kind: Kind::Number,
        doc: "TCP port [default: 12300].",
        set: |c, v| {
            c.port = v.parse().map_err(|_| "a port number (0-65535)")?;
            Ok(())
        },
    },
    ServerOption {
        ini: "LoginTimeOut",
        ini_aliases: &[],
        toml: "login_timeout",
        flag: None,
        kind: Kind::Number,
        doc: "Seconds a login holds its seat without a refresh [default: 300].",
        set: |c, v| {
            c.login_timeout = seconds(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "SessionTimeOut",
        ini_aliases: &[],
        toml: "session_timeout",
        flag: None,
        kind: Kind::Number,
        doc: "Seconds a session lives without any call [default: 3600].",
        set: |c, v| {
            c.session_timeout = seconds(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "SessionBaseLicense",
        ini_aliases: &[],
        toml: "session_base_license",
        flag: None,
        kind: Kind::Switch,
        doc: "1: one seat per session (the default); 0: one seat per client IP.",
        set: |c, v| {
            c.license_mode = if switch(v)? {
                LicenseMode::Session
            } else {
                LicenseMode::Ip
            };
            Ok(())
        },
    },
    ServerOption {
        ini: "CmdIssueTimeInterval",
        ini_aliases: &[],
        toml: "cmd_issue_time_interval",
        flag: None,
        kind: Kind::Number,
        doc: "Allowed clock difference of a request's time stamp, seconds [default: 60].",
        set: |c, v| {
            c.cmd_issue_time_interval = seconds(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "CheckCmdIssueTime",
        ini_aliases: &[],
        toml: "check_cmd_issue_time",
        flag: None,
        kind: Kind::Switch,
        doc: "0 turns the time-stamp check off [default: 1].",
        set: |c, v| {
            c.check_cmd_issue_time = switch(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "LogFileFolder",
        ini_aliases: &[],
        toml: "log_file_folder",
        flag: None,
        kind: Kind::Text,
        doc: "Folder of the daily log files mxnetYYYY-MM-DD.log.",
        set: |c, v| {
            c.log_file_folder = path(v);
            Ok(())
        },
    },
    ServerOption {
        ini: "LogLevel",
        ini_aliases: &[],
        toml: "log_level",
        flag: None,
        kind: Kind::Number,
        doc: "0 errors (the default), 1 information, 2 debug.",
        set: |c, v| {
            c.log_level = v
                .parse()
                .ok()
                .and_then(LogLevel::from_number)
                .ok_or("0 (errors), 1 (information) or 2 (debug)")?;
            Ok(())
        },
    },
    ServerOption {
        ini: "Bind",
        ini_aliases: &[],
        toml: "bind",
        flag: flag("bind", "IP"),
        kind: Kind::Text,
        doc: "Address to listen on [default: 127.0.0.1].",
        set: |c, v| {
            c.bind = v.parse().map_err(|_| "an IP address")?;
            Ok(())
        },
    },
    ServerOption {
        ini: "KeyFile",
        ini_aliases: &[],
        toml: "key_file",
        flag: flag("key-file", "FILE"),
        kind: Kind::Text,
        doc: "Identity key file [default: mxnet2-server.key beside the configuration; \
              Windows: in %ProgramData%\\dongle-relay].",
        set: |c, v| {
            c.key_file = path(v);
            Ok(())
        },
    },
    ServerOption {
        ini: "DongleBackend",
        ini_aliases: &[],
        toml: "dongle_backend",
        flag: flag("dongle", "simulated|usb|none"),
        kind: Kind::Text,
        doc: "Where dongles come from [default: simulated].",
        set: |c, v| {
            c.backend = BackendChoice::parse(v).ok_or(BackendChoice::EXPECTED)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "TrustedProxy",
        ini_aliases: &["TrustedProxies"],
        toml: "trusted_proxies",
        flag: flag("trusted-proxy", "CIDR"),
        kind: Kind::List,
        doc: "Addresses or networks allowed to send PROXY v2 headers (the relay-listener's), \
              comma separated or repeated; `none` refuses every header \
              [default: 127.0.0.0/8 and ::1].",
        set: |c, v| {
            c.trusted_proxies = TrustedProxies::parse_list(v).map_err(
                |_| "IP addresses or networks separated by commas (127.0.0.0/8, ::1), or none",
            )?;
            Ok(())
        },
    },
    ServerOption {
        ini: "StateDb",
        ini_aliases: &[],
        toml: "state_db",
        flag: flag("state-db", "FILE"),
        kind: Kind::Text,
        doc: "Persist sessions and logins in this SQLite file (created mode 0600; it holds \
              session keys) so seats survive a restart [default: not persisted].",
        set: |c, v| {
            c.state_db = path(v);
            Ok(())
        },
    },
    ServerOption {
        ini: "AdminBind",
        ini_aliases: &[],
        toml: "admin_bind",
        flag: Some(Flag {
            long: "admin",
            short: None,
            value_name: "ADDR",
            bare: Some("127.0.0.1:12380"),
        }),
        kind: Kind::Text,
        doc: "Serve the admin endpoint (status page, /api/status, actions, /metrics) on this \
              address [default: none; without a value: 127.0.0.1:12380].",
        set: |c, v| {
            c.admin_bind = if v.trim().is_empty() {
                None
            } else {
                Some(
                    super::parse_admin_bind(v)
                        .map_err(|_| "an address such as 127.0.0.1:12380, or empty")?,
                )
            };
            Ok(())
        },
    },
    ServerOption {
        ini: "AdminTokenFile",
        ini_aliases: &[],
        toml: "admin_token_file",
        flag: flag("admin-token-file", "FILE"),
        kind: Kind::Text,
        doc: "File holding the admin endpoint's bearer token (at least 16 characters; required \
              for a non-loopback admin address; $DONGLE_RELAY_ADMIN_TOKEN wins).",
        set: |c, v| {
            c.admin_token_file = path(v);
            Ok(())
        },
    },
    ServerOption {
        ini: "RelayListener",
        ini_aliases: &[],
        toml: "relay_listener",
        flag: flag("relay-listener", "FILE"),
        kind: Kind::Text,
        doc: "Also run the relay-listener in this process, configured by this file (the \
              format of `dongle-relay listen --config`); it bridges to this server.",
        set: |c, v| {
            c.relay_listener = path(v);
            Ok(())
        },
    },
    ServerOption {
        ini: "HistoryDays",
        ini_aliases: &[],
        toml: "history_days",
        flag: None,
        kind: Kind::Number,
        doc: "Days the usage history's per-minute figures are kept [default: 400].",
        set: |c, v| {
            c.history_days = days(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "HistoryEventDays",
        ini_aliases: &[],
        toml: "history_event_days",
        flag: None,
        kind: Kind::Number,
        doc: "Days the usage history's raw events are kept [default: 90].",
        set: |c, v| {
            c.history_event_days = days(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "MaxSessions",
        ini_aliases: &[],
        toml: "max_sessions",
        flag: None,
        kind: Kind::Number,
        doc: "Sessions held at most [default: 10000].",
        set: |c, v| {
            c.max_sessions = count(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "MaxSessionsPerAddress",
        ini_aliases: &[],
        toml: "max_sessions_per_address",
        flag: None,
        kind: Kind::Number,
        doc: "Sessions of one client address (IPv6: one /64) [default: 1000].",
        set: |c, v| {
            c.max_sessions_per_address = count(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "MaxSessionsPerSite",
        ini_aliases: &[],
        toml: "max_sessions_per_site",
        flag: None,
        kind: Kind::Number,
        doc: "Sessions of one site [default: 5000].",
        set: |c, v| {
            c.max_sessions_per_site = count(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "MaxConnections",
        ini_aliases: &[],
        toml: "max_connections",
        flag: None,
        kind: Kind::Number,
        doc: "Connections served at once [default: 4096].",
        set: |c, v| {
            c.max_connections = count(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "MaxConnectionsPerAddress",
        ini_aliases: &[],
        toml: "max_connections_per_address",
        flag: None,
        kind: Kind::Number,
        doc: "Connections of one client address served at once [default: 256].",
        set: |c, v| {
            c.max_connections_per_address = count(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "PreLoginTimeOut",
        ini_aliases: &[],
        toml: "prelogin_timeout",
        flag: None,
        kind: Kind::Number,
        doc: "Seconds a session that never logged in lives without any call [default: 300].",
        set: |c, v| {
            c.prelogin_timeout = seconds(v)?;
            Ok(())
        },
    },
    ServerOption {
        ini: "ConnectionIdleTimeOut",
        ini_aliases: &[],
        toml: "connection_idle_timeout",
        flag: None,
        kind: Kind::Number,
        doc: "Seconds a connection may stay without a complete request [default: 60].",
        set: |c, v| {
            c.connection_idle_timeout = seconds(v)?;
            Ok(())
        },
    },
];
