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

use serde::Deserialize;

use super::options::{self, Kind, ServerOption};
use super::{ConfigError, DongleSection, ServerConfig, bad};

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

pub(super) fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
    let syntax =
        |e: &dyn std::fmt::Display| ConfigError::Syntax(format!("TOML configuration: {e}"));
    let mut file: ::toml::Table = ::toml::from_str(text).map_err(|e| syntax(&e))?;
    let dongles: Vec<Dongle> = match file.remove("dongle") {
        None => Vec::new(),
        Some(value) => value
            .try_into()
            .map_err(|e| syntax(&format_args!("dongle: {e}")))?,
    };
    let mut config = ServerConfig {
        dongles: Vec::new(),
        ..ServerConfig::default()
    };
    for (key, value) in &file {
        let option =
            options::by_toml(key).ok_or_else(|| syntax(&format_args!("unknown key {key:?}")))?;
        let text = as_text(option, value)?;
        option
            .set(&mut config, &text)
            .map_err(|expected| bad("", key, &text, expected))?;
    }
    let given = !dongles.is_empty();
    for (i, dongle) in dongles.into_iter().enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        config.dongles.push(dongle_section(number, dongle)?);
    }
    config.finish(given)
}

/// A TOML value as the text its option parses (the INI file's spelling), once its type is
/// checked: `true` is `1`, a list of strings is comma-separated.
fn as_text(option: &ServerOption, value: &::toml::Value) -> Result<String, ConfigError> {
    use ::toml::Value;
    let text = match (option.kind, value) {
        (Kind::Text, Value::String(s)) => Some(s.clone()),
        (Kind::Number, Value::Integer(n)) => Some(n.to_string()),
        (Kind::Switch, Value::Boolean(b)) => Some(if *b { "1" } else { "0" }.to_owned()),
        (Kind::List, Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        _ => None,
    };
    text.ok_or_else(|| {
        let expected = match option.kind {
            Kind::Text => "a string",
            Kind::Number => "a whole number",
            Kind::Switch => "true or false",
            Kind::List => "a list of strings",
        };
        bad("", option.toml, &value.to_string(), expected)
    })
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
