//! `mxnet2.ini` as the manual writes it: an `[Option]` section (any case; keys before any
//! section count as `[Option]` too) and `[dongleN]` sections read from 1 upwards, stopping at
//! the first missing number (section 6.7). Section and key names are case-insensitive; a `#`
//! or `;` after whitespace starts a comment; backslashes are literal (Windows paths).

use std::collections::BTreeMap;

use super::{ConfigError, DongleSection, ServerConfig};
use license_core::config_file::{bad, clean_value};

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

/// One `[Option]` key: the option of that INI key ([`super::options`]), else a warning.
fn option(config: &mut ServerConfig, key: &str, value: &str) -> Result<(), ConfigError> {
    const S: &str = "Option";
    match super::options::by_ini(key) {
        Some(option) => option
            .set(config, value)
            .map_err(|expected| bad(S, key, value, expected)),
        None => {
            config.warnings.push(unknown_key(S, key));
            Ok(())
        }
    }
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
