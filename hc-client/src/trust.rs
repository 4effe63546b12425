//! Which relay certificates the client trusts: the public web PKI roots (default), extra CA
//! certificates from a PEM file, and SHA-256 pins of the relay's leaf certificate.
//!
//! Pinning replaces chain validation by an exact match on the leaf certificate (that is what
//! makes a self-signed relay usable), but it never turns verification off: the handshake
//! signature must still be made by the pinned certificate's key, checked with the crypto
//! provider's algorithms.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// Why a trust configuration could not be turned into a TLS client configuration.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// No trust anchor at all: public roots off, no CA file, no pin.
    #[error("no trusted certificates: enable the public roots, give a CA file or a pin")]
    Empty,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A SHA-256 fingerprint of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

/// A fingerprint string was not 32 hex bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("SHA-256 fingerprint {0:?} is not 64 hex digits (colons optional, e.g. AB:CD:…)")]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// Parses hex, case-insensitive, with optional `:` (or space) separators.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.to_owned());
        let digits: Vec<u8> = s
            .trim()
            .bytes()
            .filter(|b| *b != b':' && *b != b' ')
            .collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *slot = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    /// Upper-case hex pairs joined by `:`, as `openssl x509 -fingerprint -sha256` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Which relay certificates to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    /// Trust the public web PKI roots (Mozilla's, from `webpki-roots`). Default: on.
    pub public_roots: bool,
    /// Also trust the CA certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// When non-empty, trust exactly the leaf certificates with these SHA-256 fingerprints
    /// (roots and host names are then not consulted; handshake signatures still are).
    pub pins: Vec<Fingerprint>,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            public_roots: true,
            ca_file: None,
            pins: Vec::new(),
        }
    }
}

impl TrustConfig {
    /// Builds the rustls client configuration (no ALPN; HTTP/1.1 upgrades only).
    ///
    /// # Errors
    /// [`TrustError`] when the CA file is unreadable or nothing would be trusted.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TrustError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = if self.pins.is_empty() {
            let mut roots = RootCertStore::empty();
            if self.public_roots {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            if let Some(path) = &self.ca_file {
                for cert in load_ca_file(path)? {
                    roots.add(cert).map_err(|e| TrustError::CaFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                }
            }
            if roots.is_empty() {
                return Err(TrustError::Empty);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let verifier = PinnedVerifier {
                pins: self.pins.clone(),
                algorithms: provider.signature_verification_algorithms,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// The process-wide provider if one is installed, else ring (the only one compiled in).
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(crate::crypto_provider()))
}

fn load_ca_file(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let err = |reason: String| TrustError::CaFile {
        path: path.clone(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// Accepts a server whose leaf certificate matches a pin, and checks its handshake signatures.
#[derive(Debug)]
struct PinnedVerifier {
    pins: Vec<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The message a pin mismatch surfaces as (inside rustls' certificate error).
#[derive(Debug, thiserror::Error)]
#[error("certificate SHA-256 {0} matches no pinned fingerprint")]
struct PinMismatch(Fingerprint);

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity);
        if self.pins.contains(&seen) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch(seen))),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha256_suite_is_offered_first_and_no_suite_is_dropped() {
        let ours: Vec<_> = crate::crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            ours.first(),
            Some(&rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        let mut ring: Vec<_> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let mut sorted = ours.clone();
        sorted.sort_by_key(|s| u16::from(*s));
        ring.sort_by_key(|s| u16::from(*s));
        assert_eq!(sorted, ring);
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons_in_any_case() {
        let hex = "ab".repeat(32);
        let a: Fingerprint = hex.parse().expect("plain");
        let colons = vec!["AB"; 32].join(":");
        let b: Fingerprint = colons.parse().expect("colons");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), colons);
        assert!("ab:cd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
        assert!(
            format!("{}é", "a".repeat(62))
                .parse::<Fingerprint>()
                .is_err()
        );
    }

    #[test]
    fn empty_trust_is_refused_and_missing_ca_file_named() {
        let none = TrustConfig {
            public_roots: false,
            ..TrustConfig::default()
        };
        assert!(matches!(none.client_config(), Err(TrustError::Empty)));
        let missing = TrustConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TrustConfig::default()
        };
        let err = missing.client_config().expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        assert!(TrustConfig::default().client_config().is_ok());
    }
}
