//! TLS for local clients (optional): a rustls server configuration from a PEM certificate chain
//! and a PEM private key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Certificate and key files for local TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTls {
    /// PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("local TLS {what} {path}: {reason}")]
pub struct LocalTlsError {
    what: &'static str,
    path: PathBuf,
    reason: String,
}

impl LocalTls {
    /// Loads the files into a server configuration.
    ///
    /// # Errors
    /// [`LocalTlsError`] naming the file.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, LocalTlsError> {
        let err = |what, path: &Path, reason: String| LocalTlsError {
            what,
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| err("certificate", &self.cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err("certificate", &self.cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(err(
                "certificate",
                &self.cert,
                "no CERTIFICATE block".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| err("key", &self.key, e.to_string()))?;
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| err("certificate", &self.cert, e.to_string()))?;
        Ok(Arc::new(config))
    }
}
