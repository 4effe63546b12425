//! `mxnet2.ini` as the manual writes it: an `[Option]` section (any case; keys before any
//! section count as `[Option]` too) and `[dongleN]` sections read from 1 upwards, stopping at
//! the first missing number (section 6.7). Section and key names are case-insensitive; a `#`
//! or `;` after whitespace starts a comment; backslashes are literal (Windows paths).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{BackendChoice, ConfigError, DongleSection, LogLevel, ServerConfig, seconds};
use license_core::config_file::{bad, clean_value};
use license_core::engine::LicenseMode;

pub(super) fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
    let ini =
        ::ini::Ini::load_from_str_noescape(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    let mut config = ServerConfig {
        dongles: Vec::new(),
        ..ServerConfig::default()
    };
    let mut dongles: BTreeMap<u32, DongleSection> = BTreeMap::new();
    for (name, props) in &ini {
        let lower = name.map(str::to_ascii_lowercase);
        let dongle = lower.as_deref().and_then(dongle_number);
        match (lower.as_deref(), dongle) {
            (None | Some("option" | "options"), _) => {
                for (key, value) in props {
                    option(&mut config, key, clean_value(value))?;
                }
            }
            (_, Some(number)) => {
                let section = name.unwrap_or_default();
                let entry = dongles.entry(number).or_insert_with(|| DongleSection {
                    number,
                    ..DongleSection::default()
                });
                for (key, value) in props {
                    dongle_key(
                        entry,
                        section,
                        key,
                        clean_value(value),
                        &mut config.warnings,
                    )?;
                }
            }
            (Some(_), None) => config.warnings.push(format!(
                "[{}]: unknown section, ignored",
                name.unwrap_or_default()
            )),
        }
    }
    // Section 6.7: read [dongle1], [dongle2], ... and stop at the first missing number.
    let mut expected = 1;
    for (number, section) in dongles {
        if number == expected {
            config.dongles.push(section);
            expected += 1;
        } else {
            config.warnings.push(format!(
                "[dongle{number}] ignored: [dongle{expected}] is missing and sections are read \
                 in order until the first gap"
            ));
        }
    }
    let given = !config.dongles.is_empty();
    config.finish(given)
}

// Long: one arm per `[Option]` key, a flat table that reads best whole (issue #12 item 2
// replaces it with one definition per option).
fn option(config: &mut ServerConfig, key: &str, value: &str) -> Result<(), ConfigError> {
    const S: &str = "Option";
    let count = |key: &str, value: &str| {
        value
            .parse::<usize>()
            .map_err(|_| bad(S, key, value, "a whole number"))
    };
    let days = |key: &str, value: &str| {
        value
            .parse::<u32>()
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| bad(S, key, value, "a whole number of days, at least 1"))
    };
    let flag = |value: &str| match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(bad(S, key, value, "0 or 1")),
    };
    match key.to_ascii_lowercase().as_str() {
        "lang" => config.lang = value.to_owned(),
        "port" => {
            config.port = value
                .parse()
                .map_err(|_| bad(S, key, value, "a port number (0-65535)"))?;
        }
        "logintimeout" => config.login_timeout = seconds(S, key, value)?,
        "sessiontimeout" => config.session_timeout = seconds(S, key, value)?,
        "sessionbaselicense" => {
            config.license_mode = if flag(value)? {
                LicenseMode::Session
            } else {
                LicenseMode::Ip
            };
        }
        "cmdissuetimeinterval" => config.cmd_issue_time_interval = seconds(S, key, value)?,
        "checkcmdissuetime" => config.check_cmd_issue_time = flag(value)?,
        "logfilefolder" => {
            config.log_file_folder = (!value.is_empty()).then(|| PathBuf::from(value));
        }
        "loglevel" => {
            config.log_level = value
                .parse()
                .ok()
                .and_then(LogLevel::from_number)
                .ok_or_else(|| bad(S, key, value, "0 (errors), 1 (information) or 2 (debug)"))?;
        }
        "bind" => {
            config.bind = value
                .parse()
                .map_err(|_| bad(S, key, value, "an IP address"))?;
        }
        "keyfile" => config.key_file = (!value.is_empty()).then(|| PathBuf::from(value)),
        "donglebackend" => {
            config.backend = BackendChoice::parse(value)
                .ok_or_else(|| bad(S, key, value, BackendChoice::EXPECTED))?;
        }
        "trustedproxy" | "trustedproxies" => {
            config.trusted_proxies = super::TrustedProxies::parse_list(value).map_err(|_| {
                bad(
                    S,
                    key,
                    value,
                    "IP addresses or networks separated by commas (127.0.0.0/8, ::1), or none",
                )
            })?;
        }
        "statedb" => config.state_db = (!value.is_empty()).then(|| PathBuf::from(value)),
        "adminbind" => {
            config.admin_bind = if value.is_empty() {
                None
            } else {
                Some(super::parse_admin_bind(value).map_err(|_| {
                    bad(
                        S,
                        key,
                        value,
                        "an address such as 127.0.0.1:12380, or empty",
                    )
                })?)
            };
        }
        "admintokenfile" => {
            config.admin_token_file = (!value.is_empty()).then(|| PathBuf::from(value));
        }
        "relaylistener" => {
            config.relay_listener = (!value.is_empty()).then(|| PathBuf::from(value));
        }
        "historydays" => config.history_days = days(key, value)?,
        "historyeventdays" => config.history_event_days = days(key, value)?,
        "maxsessions" => config.max_sessions = count(key, value)?,
        "maxsessionsperaddress" => config.max_sessions_per_address = count(key, value)?,
        "maxsessionspersite" => config.max_sessions_per_site = count(key, value)?,
        "maxconnections" => config.max_connections = count(key, value)?,
        "maxconnectionsperaddress" => config.max_connections_per_address = count(key, value)?,
        "prelogintimeout" => config.prelogin_timeout = seconds(S, key, value)?,
        "connectionidletimeout" => config.connection_idle_timeout = seconds(S, key, value)?,
        _ => config.warnings.push(unknown_key(S, key)),
    }
    Ok(())
}

/// The warning for a key this server does not know. The vendor's `mxnet2.ini` may carry keys of
/// later versions or of its UI: a server that refused them could not take over an existing
/// file, so they are named and ignored (a bad value of a known key still stops the server).
fn unknown_key(section: &str, key: &str) -> String {
    format!("[{section}] {key}: unknown key, ignored")
}

fn dongle_key(
    d: &mut DongleSection,
    section: &str,
    key: &str,
    value: &str,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let lower = key.to_ascii_lowercase();
    if let Ok(slot) = lower.parse::<u16>() {
        d.slot_names.insert(slot, value.to_owned());
        return Ok(());
    }
    if let Some(slot) = lower.strip_prefix("limit") {
        let slot: u16 = slot
            .parse()
            .map_err(|_| bad(section, key, value, "LimitN with N an AppSlot number"))?;
        let limit = value
            .parse()
            .map_err(|_| bad(section, key, value, "a number of seats"))?;
        d.limits.insert(slot, limit);
        return Ok(());
    }
    match lower.as_str() {
        "sernr" => d.sernr = Some(serial(section, key, value)?),
        "name" => d.name = Some(value.to_owned()),
        "model" => d.model = Some(value.to_owned()),
        "usercode" => {
            d.user_code = Some(
                value
                    .parse()
                    .map_err(|_| bad(section, key, value, "a 32-bit number"))?,
            );
        }
        "data" => {
            d.data = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| bad(section, key, value, "comma-separated 32-bit numbers"))?;
        }
        _ => warnings.push(unknown_key(section, key)),
    }
    Ok(())
}

/// N of a `[dongleN]` section name (lower case), N from 1.
fn dongle_number(section: &str) -> Option<u32> {
    section
        .strip_prefix("dongle")?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// A serial number: 1 to 2147483647 (the API returns it as a positive 32-bit value).
pub(crate) fn serial(section: &str, key: &str, value: &str) -> Result<i32, ConfigError> {
    value
        .parse::<i32>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| bad(section, key, value, "a serial number from 1 to 2147483647"))
}
