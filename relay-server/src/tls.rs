//! The relay's TLS: loading a certificate chain and key from PEM (files or text), generating a
//! self-signed certificate with its SHA-256 fingerprint, and building the rustls server
//! configuration with the ring provider (chosen explicitly, so no process-wide provider is
//! needed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hc_protocol::Secret;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsConfig;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file or text could not be read or decoded.
    #[error("{what}: {source}")]
    Pem {
        /// Which file (or "certificate PEM"/"key PEM" for in-memory PEM).
        what: String,
        /// The decoding error.
        source: rustls_pki_types::pem::Error,
    },
    /// The PEM holds no certificate.
    #[error("{0}: no certificate found")]
    NoCertificate(String),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A generated self-signed certificate.
pub struct SelfSigned {
    /// The certificate in PEM (also the CA file clients may trust).
    pub cert_pem: String,
    /// The private key in PEM (PKCS#8).
    pub key_pem: Secret,
    /// The certificate in DER.
    pub cert_der: CertificateDer<'static>,
    /// SHA-256 of the DER certificate: upper-case hex pairs joined by `:`.
    pub sha256_fingerprint: String,
    /// The subject alternative names it was issued for.
    pub names: Vec<String>,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("sha256_fingerprint", &self.sha256_fingerprint)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// The TLS configuration that serves this certificate.
    pub fn tls_config(&self) -> TlsConfig {
        TlsConfig::InMemory {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }

    /// The private key in DER.
    ///
    /// # Errors
    /// [`TlsError::Pem`] (cannot happen for a key this module generated).
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.expose().as_bytes()).map_err(|source| {
            TlsError::Pem {
                what: "key PEM".into(),
                source,
            }
        })
    }
}

/// Generates a self-signed certificate for `names` (DNS names or IP addresses).
///
/// # Errors
/// [`TlsError::Generate`] for a name rcgen refuses.
pub fn self_signed(names: &[&str]) -> Result<SelfSigned, TlsError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names.clone())?;
    let cert_der = certified.cert.der().clone();
    Ok(SelfSigned {
        cert_pem: certified.cert.pem(),
        key_pem: Secret::new(certified.signing_key.serialize_pem()),
        sha256_fingerprint: sha256_fingerprint(&cert_der),
        cert_der,
        names,
    })
}

/// The SHA-256 fingerprint of a DER certificate as `AB:CD:…` (upper-case hex).
pub fn sha256_fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A loaded TLS set-up: the rustls configuration and the leaf certificate's fingerprint.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The rustls server configuration (ring provider).
    pub config: Arc<ServerConfig>,
    /// SHA-256 fingerprint of the leaf certificate.
    pub sha256_fingerprint: String,
    /// The leaf certificate in PEM when it was generated here (clients may trust it as a CA
    /// file).
    pub generated_cert_pem: Option<String>,
}

/// Builds the TLS set-up of `config`; `None` for plain `ws://`. A `SelfSigned` mode generates
/// a new certificate on every call.
///
/// # Errors
/// [`TlsError`] for unreadable PEM or a certificate/key rustls refuses.
pub fn load(config: &TlsConfig) -> Result<Option<ServerTls>, TlsError> {
    let (certs, key, generated) = match config {
        TlsConfig::Plain => return Ok(None),
        TlsConfig::PemFiles {
            cert_file,
            key_file,
        } => (read_cert_file(cert_file)?, read_key_file(key_file)?, None),
        TlsConfig::InMemory { cert_pem, key_pem } => {
            let certs = certs_from_pem(cert_pem.as_bytes(), "certificate PEM")?;
            let key = key_from_pem(key_pem.expose().as_bytes(), "key PEM")?;
            (certs, key, None)
        }
        TlsConfig::SelfSigned { names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let generated = self_signed(&names)?;
            let key = generated.key_der()?;
            (
                vec![generated.cert_der.clone()],
                key,
                Some(generated.cert_pem),
            )
        }
    };
    let sha256_fingerprint = certs
        .first()
        .map(|c| sha256_fingerprint(c))
        .unwrap_or_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Some(ServerTls {
        config: Arc::new(config),
        sha256_fingerprint,
        generated_cert_pem: generated,
    }))
}

fn read_cert_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = path.display().to_string();
    let pem_err = |source| TlsError::Pem {
        what: what.clone(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what));
    }
    Ok(certs)
}

fn read_key_file(path: &PathBuf) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        what: path.display().to_string(),
        source,
    })
}

fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.into()));
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| TlsError::Pem {
        what: what.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_loads_and_fingerprint_matches() {
        let generated = self_signed(&["localhost", "127.0.0.1"]).expect("generate");
        let fp = &generated.sha256_fingerprint;
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(
            fp.chars()
                .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        let loaded = load(&generated.tls_config()).expect("load").expect("tls");
        assert_eq!(&loaded.sha256_fingerprint, fp);
        assert!(!format!("{generated:?}").contains("PRIVATE"));
    }

    #[test]
    fn pem_files_load_and_errors_name_the_file() {
        let generated = self_signed(&["localhost"]).expect("generate");
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &generated.cert_pem).expect("write");
        std::fs::write(&key, generated.key_pem.expose()).expect("write");
        let config = TlsConfig::PemFiles {
            cert_file: cert.clone(),
            key_file: key.clone(),
        };
        assert!(load(&config).expect("load").is_some());
        let swapped = TlsConfig::PemFiles {
            cert_file: key,
            key_file: cert,
        };
        let err = load(&swapped).expect_err("swapped files");
        assert!(err.to_string().contains("key.pem"), "{err}");
        assert!(load(&TlsConfig::Plain).expect("plain").is_none());
    }
}
