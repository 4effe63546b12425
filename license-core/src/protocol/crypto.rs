//! The session key and packet authentication.
//!
//! At init the client sends an ephemeral X25519 public key; the server answers with its own
//! ephemeral key, its static Ed25519 identity key and a signature over the transcript (both
//! ephemeral keys, the identity key, the session id and the init packet number). Both sides
//! derive 64 bytes with HKDF-SHA256 from the X25519 shared secret: the first 32 key the
//! HMAC-SHA256 tags of requests, the last 32 those of answers. The key never crosses the wire,
//! and a client that pins the server's identity key knows no relay in the middle made the
//! exchange.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use ring::{agreement, hkdf};
use sha2::Sha256;

use super::frame::{HEADER_LEN, TAG_LEN};
use crate::error::ErrorCode;
use crate::ids::{SessionId, SessionSecret};

type HmacSha256 = Hmac<Sha256>;

const TRANSCRIPT_CONTEXT: &[u8] = b"dongle-relay license v1 init\0";
const KEY_INFO: &[u8] = b"dongle-relay license v1 keys";

/// The server's Ed25519 public key (what a client pins), written in base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerPublicKey(pub [u8; 32]);

impl ServerPublicKey {
    /// Parses the base64 form.
    ///
    /// # Errors
    /// Not base64 of 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, String> {
        let bytes = BASE64
            .decode(s.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_owned())?;
        Ok(Self(key))
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl std::fmt::Display for ServerPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl std::fmt::Debug for ServerPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerPublicKey({})", self.to_base64())
    }
}

/// The server's static identity (Ed25519). Its private half is never printed.
pub struct ServerIdentity {
    key_pair: Ed25519KeyPair,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerIdentity({})", self.public_key())
    }
}

/// Why the identity key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file's content is not a key.
    #[error("key file {0}: not a base64 PKCS#8 Ed25519 key")]
    Invalid(String),
    /// Key generation failed.
    #[error("cannot generate a key")]
    Generate,
}

impl ServerIdentity {
    /// A new random identity.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn generate() -> Result<Self, IdentityError> {
        Self::from_pkcs8(&Self::new_pkcs8()?).ok_or(IdentityError::Generate)
    }

    fn new_pkcs8() -> Result<Vec<u8>, IdentityError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| IdentityError::Generate)
    }

    fn from_pkcs8(der: &[u8]) -> Option<Self> {
        Ed25519KeyPair::from_pkcs8(der)
            .ok()
            .map(|key_pair| Self { key_pair })
    }

    /// Loads the identity from `path`, creating the file (mode 0600 on Unix) with a new key if
    /// it does not exist. The file holds the base64 PKCS#8 document.
    ///
    /// # Errors
    /// The file cannot be read, written or parsed.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => BASE64
                .decode(text.trim())
                .ok()
                .and_then(|der| Self::from_pkcs8(&der))
                .ok_or_else(|| IdentityError::Invalid(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let der = Self::new_pkcs8()?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                write_private(path, format!("{}\n", BASE64.encode(&der)).as_bytes()).map_err(io)?;
                Self::from_pkcs8(&der).ok_or(IdentityError::Generate)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> ServerPublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.key_pair.public_key().as_ref());
        ServerPublicKey(key)
    }

    /// The server side of init: from the client's ephemeral key, the reply's ephemeral key and
    /// the session secret. The signature comes after the engine assigned the session id
    /// ([`ServerIdentity::sign_init`]).
    ///
    /// # Errors
    /// -105 when the client's key is unusable.
    pub fn accept(client_public: &[u8; 32]) -> Result<([u8; 32], SessionSecret), ErrorCode> {
        let (private, public) = ephemeral()?;
        let secret = derive(private, client_public, client_public, &public)?;
        Ok((public, secret))
    }

    /// Signs the init transcript.
    pub fn sign_init(
        &self,
        client_public: &[u8; 32],
        server_public: &[u8; 32],
        session: SessionId,
        packet: u64,
    ) -> [u8; 64] {
        let t = transcript(
            client_public,
            server_public,
            &self.public_key(),
            session,
            packet,
        );
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.key_pair.sign(&t).as_ref());
        sig
    }
}

/// The client side of init.
pub struct ClientHandshake {
    private: agreement::EphemeralPrivateKey,
    public: [u8; 32],
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientHandshake")
    }
}

impl ClientHandshake {
    /// A fresh ephemeral key.
    ///
    /// # Errors
    /// -105 when the random source fails.
    pub fn new() -> Result<Self, ErrorCode> {
        let (private, public) = ephemeral()?;
        Ok(Self { private, public })
    }

    /// The public key to send in the init request.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// Checks the init reply and derives the session secret.
    ///
    /// # Errors
    /// -300 when `pinned` is set and differs from the server's key, -301 when the signature
    /// does not verify or the key exchange fails.
    pub fn finish(
        self,
        server_public: &[u8; 32],
        server_key: &[u8; 32],
        signature: &[u8; 64],
        session: SessionId,
        packet: u64,
        pinned: Option<&ServerPublicKey>,
    ) -> Result<SessionSecret, ErrorCode> {
        let key = ServerPublicKey(*server_key);
        if pinned.is_some_and(|p| *p != key) {
            return Err(ErrorCode::ServerKeyMismatch);
        }
        let t = transcript(&self.public, server_public, &key, session, packet);
        UnparsedPublicKey::new(&ED25519, server_key)
            .verify(&t, signature)
            .map_err(|_| ErrorCode::ServerAuth)?;
        let client_public = self.public;
        derive(self.private, server_public, &client_public, server_public)
            .map_err(|_| ErrorCode::ServerAuth)
    }
}

/// The tag of a request (`response == false`) or answer over its header and payload.
pub fn tag(
    secret: &SessionSecret,
    response: bool,
    header: &[u8; HEADER_LEN],
    payload: &[u8],
) -> [u8; TAG_LEN] {
    let mut mac = mac(secret, response);
    mac.update(header);
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// Checks a tag in constant time.
pub fn verify(
    secret: &SessionSecret,
    response: bool,
    header: &[u8; HEADER_LEN],
    payload: &[u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    let mut mac = mac(secret, response);
    mac.update(header);
    mac.update(payload);
    mac.verify_slice(tag).is_ok()
}

fn mac(secret: &SessionSecret, response: bool) -> HmacSha256 {
    let key = secret.expose();
    let half = if response { &key[32..] } else { &key[..32] };
    // HMAC accepts keys of any length, so this cannot fail.
    match <HmacSha256 as KeyInit>::new_from_slice(half) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

fn ephemeral() -> Result<(agreement::EphemeralPrivateKey, [u8; 32]), ErrorCode> {
    let rng = SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .map_err(|_| ErrorCode::SessionPassword)?;
    let public = private
        .compute_public_key()
        .map_err(|_| ErrorCode::SessionPassword)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(public.as_ref());
    Ok((private, out))
}

struct SecretLen;

impl hkdf::KeyType for SecretLen {
    fn len(&self) -> usize {
        64
    }
}

/// X25519 with `peer`, then HKDF-SHA256 (salt: client key || server key).
fn derive(
    private: agreement::EphemeralPrivateKey,
    peer: &[u8; 32],
    client_public: &[u8; 32],
    server_public: &[u8; 32],
) -> Result<SessionSecret, ErrorCode> {
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer);
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(client_public);
    salt[32..].copy_from_slice(server_public);
    agreement::agree_ephemeral(private, &peer, |shared| {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared);
        let mut out = [0u8; 64];
        prk.expand(&[KEY_INFO], SecretLen)
            .and_then(|okm| okm.fill(&mut out))
            .map(|()| SessionSecret::new(out))
    })
    .map_err(|_| ErrorCode::SessionPassword)?
    .map_err(|_| ErrorCode::SessionPassword)
}

fn transcript(
    client_public: &[u8; 32],
    server_public: &[u8; 32],
    server_key: &ServerPublicKey,
    session: SessionId,
    packet: u64,
) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRANSCRIPT_CONTEXT.len() + 112);
    t.extend_from_slice(TRANSCRIPT_CONTEXT);
    t.extend_from_slice(client_public);
    t.extend_from_slice(server_public);
    t.extend_from_slice(&server_key.0);
    t.extend_from_slice(&session.get().to_be_bytes());
    t.extend_from_slice(&packet.to_be_bytes());
    t
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The file is created empty and restricted ([`crate::private_file`]) before the key is
/// written, so the key is never readable through the folder's inherited ACL; a file that
/// cannot be restricted is removed.
#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    if let Err(e) = crate::private_file::restrict(path) {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(std::io::Error::other(e));
    }
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(pin: Option<ServerPublicKey>) -> Result<(SessionSecret, SessionSecret), ErrorCode> {
        let server = ServerIdentity::generate().expect("key");
        let client = ClientHandshake::new()?;
        let (server_public, server_secret) = ServerIdentity::accept(&client.public())?;
        let id = SessionId::new(42).expect("id");
        let sig = server.sign_init(&client.public(), &server_public, id, 1);
        let client_secret = client.finish(
            &server_public,
            &server.public_key().0,
            &sig,
            id,
            1,
            pin.as_ref(),
        )?;
        Ok((client_secret, server_secret))
    }

    #[test]
    fn both_sides_derive_the_same_secret() {
        let (c, s) = exchange(None).expect("exchange");
        assert_eq!(c, s);
        let header = [7u8; HEADER_LEN];
        let t = tag(&c, false, &header, b"payload");
        assert!(verify(&s, false, &header, b"payload", &t));
        assert!(
            !verify(&s, true, &header, b"payload", &t),
            "directions use different keys"
        );
        assert!(!verify(&s, false, &header, b"payloaD", &t));
        assert_eq!(format!("{c:?}"), "SessionSecret(<redacted>)");
    }

    #[test]
    fn pinning_a_different_key_fails() {
        let other = ServerIdentity::generate().expect("key").public_key();
        assert_eq!(
            exchange(Some(other)).expect_err("an error"),
            ErrorCode::ServerKeyMismatch
        );
    }

    #[test]
    fn forged_signature_fails() {
        let server = ServerIdentity::generate().expect("key");
        let client = ClientHandshake::new().expect("client");
        let (server_public, _) = ServerIdentity::accept(&client.public()).expect("accept");
        let id = SessionId::new(42).expect("id");
        let sig = server.sign_init(&client.public(), &server_public, id, 1);
        // The same signature for another session id does not verify.
        let other = SessionId::new(43).expect("id");
        let err = client
            .finish(&server_public, &server.public_key().0, &sig, other, 1, None)
            .expect_err("an error");
        assert_eq!(err, ErrorCode::ServerAuth);
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/server.key");
        let a = ServerIdentity::load_or_create(&path).expect("create");
        let b = ServerIdentity::load_or_create(&path).expect("load");
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").expect("write");
        assert!(matches!(
            ServerIdentity::load_or_create(&path),
            Err(IdentityError::Invalid(_))
        ));
        let pk = a.public_key();
        assert_eq!(ServerPublicKey::from_base64(&pk.to_base64()), Ok(pk));
        assert!(ServerPublicKey::from_base64("AAAA").is_err());
    }
}
