//! The embedded default configuration for a relay started without a config file: one hybrid
//! connection (`license`) with three rules, `listen`, `send` and `manage`, whose keys are
//! given or generated at random (32 random bytes in base64, like Azure's keys).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hc_protocol::Secret;
use rand::RngCore as _;

use crate::config::{HybridConnectionConfig, RelayConfig, Right, SasRule, TlsConfig};

/// Name of the default hybrid connection.
pub const DEFAULT_HC: &str = "license";

/// Rule names of the default configuration.
pub const LISTEN_RULE: &str = "listen";
/// See [`LISTEN_RULE`].
pub const SEND_RULE: &str = "send";
/// See [`LISTEN_RULE`].
pub const MANAGE_RULE: &str = "manage";

/// A new random SAS key: 32 bytes from the OS-seeded CSPRNG, base64.
pub fn generate_key() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(BASE64.encode(bytes))
}

/// Keys of the default rules; `None` means "generate one".
#[derive(Debug, Clone, Default)]
pub struct QuickstartKeys {
    /// Key of rule `listen` (right Listen).
    pub listen: Option<Secret>,
    /// Key of rule `send` (right Send).
    pub send: Option<Secret>,
    /// Key of rule `manage` (right Manage).
    pub manage: Option<Secret>,
}

/// The default configuration: hybrid connection `hc_name` with rules `listen`, `send` and
/// `manage`, served over `tls`.
pub fn config(hc_name: &str, keys: QuickstartKeys, tls: TlsConfig) -> RelayConfig {
    let rule = |name: &str, key: Option<Secret>, right: Right| {
        SasRule::new(name, key.unwrap_or_else(generate_key), &[right])
    };
    RelayConfig::new(
        tls,
        vec![HybridConnectionConfig::new(
            hc_name,
            vec![
                rule(LISTEN_RULE, keys.listen, Right::Listen),
                rule(SEND_RULE, keys.send, Right::Send),
                rule(MANAGE_RULE, keys.manage, Right::Manage),
            ],
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_with_distinct_keys() {
        let c = config(DEFAULT_HC, QuickstartKeys::default(), TlsConfig::Plain);
        c.validate().expect("valid");
        let rules = &c.hybrid_connections[0].rules;
        assert_eq!(rules.len(), 3);
        assert_ne!(rules[0].key, rules[1].key);
        assert_eq!(rules[0].key.expose().len(), 44);
        let given = QuickstartKeys {
            send: Some(Secret::new("s")),
            ..QuickstartKeys::default()
        };
        let c = config("x", given, TlsConfig::Plain);
        assert_eq!(c.hybrid_connections[0].rules[1].key.expose(), "s");
    }
}
