//! The whole tunnel wired on one machine, as the demo and the tests run it: a self-hosted relay
//! on a loopback port with a self-signed certificate and the built-in hybrid connection and
//! rules ([`relay_server::quickstart`]), and the configurations that reach it — connection
//! strings with real SAS keys, relay access that trusts exactly that certificate (pinned, no
//! public roots), a relay-listener bridging to a target and a local-proxy. [`LoopbackRelay`] is
//! the plan; whoever starts the processes (the `demo` command, `test-support`'s fixtures) adds
//! only what differs for it (grace periods, identity mode, restart on the same port).

use std::net::SocketAddr;

use hc_client::access::AccessConfig;
use hc_client::trust::{Fingerprint, TrustConfig};
use hc_protocol::connection_string::{ConnectionString, Credentials};
use hc_protocol::{RelayEndpoint, Secret};
use local_proxy::ProxyConfig;
use relay_listener::ListenerConfig;
use relay_server::config::RelayConfig;
use relay_server::quickstart::{self, LISTEN_RULE, QuickstartKeys, SEND_RULE};
use relay_server::{SelfSigned, TlsError};

/// The names the certificate is issued for: what a client on this machine dials.
pub const CERT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A relay on `127.0.0.1` and everything a listener or proxy needs to reach it.
pub struct LoopbackRelay {
    port: u16,
    cert: SelfSigned,
    fingerprint: Fingerprint,
    hc: String,
    listen_key: Secret,
    send_key: Secret,
    manage_key: Secret,
}

impl LoopbackRelay {
    /// A plan for a relay on `127.0.0.1:port` with a certificate generated now, hybrid
    /// connection `hc` and the quickstart rules' `keys` (missing ones generated now, so that the
    /// plan knows every key it hands out).
    ///
    /// # Errors
    /// The certificate could not be generated.
    pub fn new(port: u16, hc: &str, keys: QuickstartKeys) -> Result<Self, TlsError> {
        let cert = relay_server::tls::self_signed(&CERT_NAMES)?;
        let fingerprint = Fingerprint::of(cert.cert_der.as_ref());
        Ok(Self {
            port,
            cert,
            fingerprint,
            hc: hc.to_owned(),
            listen_key: keys.listen.unwrap_or_else(quickstart::generate_key),
            send_key: keys.send.unwrap_or_else(quickstart::generate_key),
            manage_key: keys.manage.unwrap_or_else(quickstart::generate_key),
        })
    }

    /// The relay's configuration: TLS with the certificate, the hybrid connection and its
    /// `listen`, `send` and `manage` rules.
    pub fn relay_config(&self) -> RelayConfig {
        let keys = QuickstartKeys {
            listen: Some(self.listen_key.clone()),
            send: Some(self.send_key.clone()),
            manage: Some(self.manage_key.clone()),
        };
        quickstart::config(&self.hc, keys, self.cert.tls_config())
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The certificate (its PEM is the CA file a foreign client may trust).
    pub fn cert(&self) -> &SelfSigned {
        &self.cert
    }

    /// The hybrid connection's name.
    pub fn hc(&self) -> &str {
        &self.hc
    }

    /// The Send rule's key (for tokens of HTTP request mode).
    pub fn send_key(&self) -> &Secret {
        &self.send_key
    }

    /// A connection string for rule `rule` with `key` on hybrid connection `hc` of this relay.
    pub fn connection(&self, rule: &str, key: Secret, hc: &str) -> ConnectionString {
        ConnectionString {
            endpoint: RelayEndpoint {
                tls: true,
                host: "127.0.0.1".to_owned(),
                port: self.port,
            },
            credentials: Credentials::Key {
                key_name: rule.to_owned(),
                key,
            },
            entity_path: Some(hc.to_owned()),
        }
    }

    /// The connection string with the Listen rule (for relay-listeners).
    pub fn listen_connection(&self) -> ConnectionString {
        self.connection(LISTEN_RULE, self.listen_key.clone(), &self.hc)
    }

    /// The connection string with the Send rule (for local-proxies).
    pub fn send_connection(&self) -> ConnectionString {
        self.connection(SEND_RULE, self.send_key.clone(), &self.hc)
    }

    /// Trust in exactly this relay's certificate: pinned, no public roots.
    pub fn trust(&self) -> TrustConfig {
        TrustConfig {
            pins: vec![self.fingerprint],
            public_roots: false,
            ..TrustConfig::default()
        }
    }

    /// Relay access with `connection`, trusting exactly this relay's certificate.
    pub fn access(&self, connection: ConnectionString) -> AccessConfig {
        let mut access = AccessConfig::new(connection);
        access.trust = self.trust();
        access
    }

    /// A relay-listener with `connection` bridging to `target`, otherwise with the defaults.
    pub fn listener_config_with(
        &self,
        connection: ConnectionString,
        target: &str,
    ) -> ListenerConfig {
        let mut config = ListenerConfig::new(connection.clone());
        config.access = self.access(connection);
        config.target = target.to_owned();
        config
    }

    /// A relay-listener with the Listen rule bridging to `target`.
    pub fn listener_config(&self, target: &str) -> ListenerConfig {
        self.listener_config_with(self.listen_connection(), target)
    }

    /// A local-proxy with `connection`, otherwise with the defaults.
    pub fn proxy_config_with(&self, connection: ConnectionString) -> ProxyConfig {
        let mut config = ProxyConfig::new(connection.clone());
        config.access = self.access(connection);
        config
    }

    /// A local-proxy with the Send rule.
    pub fn proxy_config(&self) -> ProxyConfig {
        self.proxy_config_with(self.send_connection())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_carry_the_plans_keys_and_pin() {
        let keys = QuickstartKeys {
            listen: Some(Secret::new("l")),
            ..QuickstartKeys::default()
        };
        let plan = LoopbackRelay::new(4443, "hc1", keys).expect("plan");
        let relay = plan.relay_config();
        relay.validate().expect("valid relay configuration");
        let rules = &relay.hybrid_connections[0].rules;
        let key_of = |name: &str| {
            rules
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.key.expose().to_owned())
        };
        assert_eq!(key_of(LISTEN_RULE).as_deref(), Some("l"));
        assert_eq!(key_of(SEND_RULE).as_deref(), Some(plan.send_key().expose()));
        let listener = plan.listener_config("127.0.0.1:12300");
        assert_eq!(listener.target, "127.0.0.1:12300");
        assert!(listener.access.connection == plan.listen_connection());
        assert_eq!(listener.access.trust.pins, vec![plan.fingerprint]);
        assert!(!plan.proxy_config().access.trust.public_roots);
        assert_eq!(plan.addr().port(), 4443);
    }
}
