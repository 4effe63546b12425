//! The hybrid connections a relay hosts and their Shared Access Signature rules
//! (`[[hybrid_connection]]`, `[[hybrid_connection.rule]]`, namespace-wide `[[rule]]`), with the
//! checks of their names and keys.

use hc_protocol::Secret;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// One hybrid connection (`/$hc/{name}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridConnectionConfig {
    /// The entity path, for example `license` or `site-a/license`. Matched case-insensitively.
    pub name: String,
    /// SAS rules of this hybrid connection.
    #[serde(default, rename = "rule")]
    pub rules: Vec<SasRule>,
    /// Whether senders need a token with the `Send` right (Azure's
    /// `requiresClientAuthorization`, default true). Listeners always need `Listen`.
    #[serde(default = "yes")]
    pub requires_client_authorization: bool,
}

fn yes() -> bool {
    true
}

impl HybridConnectionConfig {
    /// A hybrid connection with the given rules, requiring sender authorization.
    pub fn new(name: impl Into<String>, rules: Vec<SasRule>) -> Self {
        Self {
            name: name.into(),
            rules,
            requires_client_authorization: true,
        }
    }
}

/// A Shared Access Signature rule: key name, key and the rights a token signed with it grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SasRule {
    /// Key name (`skn` of tokens, `SharedAccessKeyName` of connection strings).
    pub name: String,
    /// The key (UTF-8 bytes are the HMAC key, as in Azure).
    pub key: Secret,
    /// Granted rights.
    pub rights: Vec<Right>,
}

impl SasRule {
    /// A rule from its parts.
    pub fn new(name: impl Into<String>, key: impl Into<Secret>, rights: &[Right]) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
            rights: rights.to_vec(),
        }
    }

    /// Whether the rule grants `right` (`Manage` grants everything).
    pub fn grants(&self, right: Right) -> bool {
        self.rights
            .iter()
            .any(|r| *r == right || *r == Right::Manage)
    }
}

/// A right of a SAS rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Right {
    /// Open a listener control channel.
    #[serde(alias = "listen")]
    Listen,
    /// Connect as a sender.
    #[serde(alias = "send")]
    Send,
    /// Everything (implies `Listen` and `Send`).
    #[serde(alias = "manage")]
    Manage,
}

impl Right {
    /// The name Azure uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "Listen",
            Self::Send => "Send",
            Self::Manage => "Manage",
        }
    }
}

pub(super) fn validate_hc_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let trimmed = name.trim_matches('/');
    if trimmed.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.~/".contains(c);
    if !trimmed.chars().all(ok_char) || trimmed.split('/').any(|s| s.is_empty() || s == "$hc") {
        return Err(invalid(
            key,
            format!(
                "{name:?} must be segments of letters, digits, '-', '_', '.', '~' joined by '/'"
            ),
        ));
    }
    Ok(())
}

pub(super) fn validate_rules(key: &str, rules: &[SasRule]) -> Result<(), ConfigError> {
    for (i, rule) in rules.iter().enumerate() {
        let key = format!("{key}[{i}]");
        let ok_len = |s: &str| (1..=hc_protocol::sas::MAX_KEY_LEN).contains(&s.chars().count());
        if !ok_len(&rule.name) {
            return Err(invalid(format!("{key}.name"), "must be 1..=256 characters"));
        }
        if !ok_len(rule.key.expose()) {
            return Err(invalid(format!("{key}.key"), "must be 1..=256 characters"));
        }
        if rule.rights.is_empty() {
            return Err(invalid(
                format!("{key}.rights"),
                "must name at least one of Listen, Send, Manage",
            ));
        }
        if rules[..i].iter().any(|r| r.name == rule.name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("rule {:?} is defined twice", rule.name),
            ));
        }
    }
    Ok(())
}
