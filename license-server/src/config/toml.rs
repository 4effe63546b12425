//! The TOML equivalent of `mxnet2.ini`: the `[Option]` keys at top level in snake case, and one
//! `[[dongle]]` table per `[dongleN]` section (in order, so DngNr = position), with AppSlots
//! under `slots`.
//!
//! ```toml
//! port = 12300
//! login_timeout = 300
//! session_base_license = true
//! [[dongle]]
//! sernr = 1234567890
//! name = "MyDongle"
//! slots = { 5 = { name = "Foo Application", limit = 3 } }
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use config_syntax::parse_net;

use super::{
    BackendChoice, ConfigError, DongleSection, LogLevel, ServerConfig, TrustedProxies, bad,
};
use license_core::engine::LicenseMode;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    lang: Option<String>,
    port: Option<u16>,
    bind: Option<IpAddr>,
    login_timeout: Option<u64>,
    session_timeout: Option<u64>,
    session_base_license: Option<bool>,
    cmd_issue_time_interval: Option<u64>,
    check_cmd_issue_time: Option<bool>,
    log_file_folder: Option<PathBuf>,
    log_level: Option<u8>,
    dongle_backend: Option<String>,
    key_file: Option<PathBuf>,
    max_sessions: Option<usize>,
    max_sessions_per_address: Option<usize>,
    max_sessions_per_site: Option<usize>,
    prelogin_timeout: Option<u64>,
    connection_idle_timeout: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    state_db: Option<PathBuf>,
    history_days: Option<u32>,
    history_event_days: Option<u32>,
    admin_bind: Option<String>,
    admin_token_file: Option<PathBuf>,
    relay_listener: Option<PathBuf>,
    #[serde(default)]
    dongle: Vec<Dongle>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dongle {
    sernr: Option<i64>,
    name: Option<String>,
    model: Option<String>,
    user_code: Option<i32>,
    #[serde(default)]
    data: Vec<i32>,
    #[serde(default)]
    slots: BTreeMap<String, Slot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slot {
    name: Option<String>,
    limit: Option<u32>,
}

// Long: one field per TOML key, a flat table that reads best whole (issue #12 item 2
// replaces it with one definition per option).
pub(super) fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
    let file: File = ::toml::from_str(text)
        .map_err(|e| ConfigError::Syntax(format!("TOML configuration: {e}")))?;
    let d = ServerConfig::default();
    let log_level = match file.log_level {
        None => d.log_level,
        Some(n) => LogLevel::from_number(n).ok_or_else(|| {
            bad(
                "",
                "log_level",
                &n.to_string(),
                "0 (errors), 1 (information) or 2 (debug)",
            )
        })?,
    };
    let backend = match file.dongle_backend {
        None => d.backend,
        Some(s) => BackendChoice::parse(&s)
            .ok_or_else(|| bad("", "dongle_backend", &s, BackendChoice::EXPECTED))?,
    };
    let trusted_proxies = match file.trusted_proxies {
        None => d.trusted_proxies.clone(),
        Some(list) => TrustedProxies::new(
            list.iter()
                .map(|s| {
                    parse_net(s).map_err(|_| {
                        bad(
                            "",
                            "trusted_proxies",
                            s,
                            "IP addresses or networks (\"127.0.0.0/8\", \"::1\")",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let admin_bind = match file.admin_bind.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(super::parse_admin_bind(text).map_err(|_| {
            bad(
                "",
                "admin_bind",
                text,
                "an address such as \"127.0.0.1:12380\"",
            )
        })?),
    };
    let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let given = !file.dongle.is_empty();
    let mut dongles = Vec::new();
    for (i, dongle) in file.dongle.into_iter().enumerate() {
        dongles.push(dongle_section(
            u32::try_from(i + 1).unwrap_or(u32::MAX),
            dongle,
        )?);
    }
    let config = ServerConfig {
        lang: file.lang.unwrap_or(d.lang),
        port: file.port.unwrap_or(d.port),
        bind: file.bind.unwrap_or(d.bind),
        login_timeout: file
            .login_timeout
            .map_or(d.login_timeout, Duration::from_secs),
        session_timeout: file
            .session_timeout
            .map_or(d.session_timeout, Duration::from_secs),
        license_mode: match file.session_base_license {
            Some(false) => LicenseMode::Ip,
            _ => LicenseMode::Session,
        },
        cmd_issue_time_interval: file
            .cmd_issue_time_interval
            .map_or(d.cmd_issue_time_interval, Duration::from_secs),
        check_cmd_issue_time: file.check_cmd_issue_time.unwrap_or(true),
        log_file_folder: file.log_file_folder.filter(|p| !p.as_os_str().is_empty()),
        log_level,
        backend,
        dongles,
        key_file: file.key_file.filter(|p| !p.as_os_str().is_empty()),
        max_sessions: file.max_sessions.unwrap_or(d.max_sessions),
        max_sessions_per_address: file
            .max_sessions_per_address
            .unwrap_or(d.max_sessions_per_address),
        max_sessions_per_site: file
            .max_sessions_per_site
            .unwrap_or(d.max_sessions_per_site),
        prelogin_timeout: file
            .prelogin_timeout
            .map_or(d.prelogin_timeout, Duration::from_secs),
        connection_idle_timeout: file
            .connection_idle_timeout
            .map_or(d.connection_idle_timeout, Duration::from_secs),
        max_connections: file.max_connections.unwrap_or(d.max_connections),
        max_connections_per_address: file
            .max_connections_per_address
            .unwrap_or(d.max_connections_per_address),
        trusted_proxies,
        state_db: nonempty(file.state_db),
        history_days: positive_days("history_days", file.history_days, d.history_days)?,
        history_event_days: positive_days(
            "history_event_days",
            file.history_event_days,
            d.history_event_days,
        )?,
        admin_bind,
        admin_token_file: nonempty(file.admin_token_file),
        relay_listener: nonempty(file.relay_listener),
        warnings: Vec::new(),
    };
    config.finish(given)
}

fn dongle_section(number: u32, d: Dongle) -> Result<DongleSection, ConfigError> {
    let section = format!("dongle {number}");
    let sernr = d
        .sernr
        .map(|s| super::ini::serial(&section, "sernr", &s.to_string()))
        .transpose()?;
    let mut out = DongleSection {
        number,
        sernr,
        name: d.name,
        model: d.model,
        user_code: d.user_code,
        data: d.data,
        ..DongleSection::default()
    };
    for (key, slot) in d.slots {
        let n: u16 = key
            .trim()
            .parse()
            .map_err(|_| bad(&section, &format!("slots.{key}"), &key, "an AppSlot number"))?;
        if let Some(name) = slot.name {
            out.slot_names.insert(n, name);
        }
        if let Some(limit) = slot.limit {
            out.limits.insert(n, limit);
        }
    }
    Ok(out)
}

/// A retention in days: at least one (zero would keep nothing and is surely a mistake).
fn positive_days(key: &str, given: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    match given {
        None => Ok(default),
        Some(0) => Err(bad("", key, "0", "a whole number of days, at least 1")),
        Some(n) => Ok(n),
    }
}
