//! Who a connection is: the secret key, signed session tokens, and guest names.
//!
//! A token is `v1.<claims>.<mac>`: base64url JSON claims `{uid, name}` and an HMAC-SHA256 of them
//! under the server's key. Users are not stored anywhere else: a valid token *is* the account, so a
//! token that fails to verify is ignored and the connection gets a fresh identity.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use causerie_protocol::User;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ServerError;

const TOKEN_VERSION: &str = "v1";
const SECRET_KEY_FILE: &str = "secret.key";

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies session tokens with the server's secret key.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    uid: String,
    name: String,
}

impl TokenSigner {
    /// A signer with this key. Any length works; the generated keys have 32 bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// Uses `configured` if given, else the key kept in `data_dir`, generating it on first use.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> Result<Self, ServerError> {
        match configured {
            Some(key) => Ok(Self::new(key.as_bytes())),
            None => load_or_create_key_file(&data_dir.join(SECRET_KEY_FILE)).map(Self::new),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC takes any key"))
    }

    /// A token that brings `user` back on a later connection.
    pub fn issue(&self, user: &User) -> String {
        let claims = Claims {
            uid: user.id.clone(),
            name: user.name.clone(),
        };
        let claims =
            B64.encode(serde_json::to_vec(&claims).expect("two strings always serialize as JSON"));
        let mut mac = self.mac();
        mac.update(claims.as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        format!("{TOKEN_VERSION}.{claims}.{signature}")
    }

    /// The user a token was issued for, or `None` if it is malformed or not signed by this key.
    pub fn verify(&self, token: &str) -> Option<User> {
        let mut parts = token.split('.');
        let (version, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if version != TOKEN_VERSION || parts.next().is_some() {
            return None;
        }
        let mut mac = self.mac();
        mac.update(claims.as_bytes());
        mac.verify_slice(&B64.decode(signature).ok()?).ok()?;
        let claims: Claims = serde_json::from_slice(&B64.decode(claims).ok()?).ok()?;
        Some(User {
            id: claims.uid,
            name: claims.name,
        })
    }
}

fn load_or_create_key_file(path: &Path) -> Result<Vec<u8>, ServerError> {
    let io_error = |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            decode_hex(text.trim()).ok_or_else(|| ServerError::BadSecretKeyFile(path.into()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::rng().random();
            // Written whole or not at all (a crash must not leave an empty key file, which would
            // stop the next start), readable by its owner only.
            let mut options = atomic_write_file::AtomicWriteFile::options();
            #[cfg(unix)]
            {
                use atomic_write_file::unix::OpenOptionsExt as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                options.preserve_mode(false).mode(0o600);
            }
            let mut file = options.open(path).map_err(io_error)?;
            writeln!(file, "{}", encode_hex(&key)).map_err(io_error)?;
            file.commit().map_err(io_error)?;
            Ok(key.to_vec())
        }
        Err(e) => Err(io_error(e)),
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A fresh user id.
pub fn new_user_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A name for someone who gave none: `guest-` and four digits.
pub fn guest_name() -> String {
    format!("guest-{:04}", rand::rng().random_range(0..10_000))
}

/// Compares secrets without leaking, through timing, how much of them matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> User {
        User {
            id: "u1".into(),
            name: "Ada".into(),
        }
    }

    #[test]
    fn a_token_verifies_to_the_user_it_was_issued_for() {
        let signer = TokenSigner::new("k");
        assert_eq!(signer.verify(&signer.issue(&ada())), Some(ada()));
    }

    #[test]
    fn a_token_from_another_key_or_tampered_is_refused() {
        let token = TokenSigner::new("k").issue(&ada());
        assert_eq!(TokenSigner::new("other").verify(&token), None);
        let forged_claims = B64.encode(br#"{"uid":"admin","name":"Ada"}"#);
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged_claims;
        assert_eq!(TokenSigner::new("k").verify(&parts.join(".")), None);
        assert_eq!(TokenSigner::new("k").verify("garbage"), None);
        assert_eq!(TokenSigner::new("k").verify("v1.%%%.%%%"), None);
    }

    #[test]
    fn the_generated_key_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = TokenSigner::load_or_create(None, dir.path()).expect("creates key");
        let second = TokenSigner::load_or_create(None, dir.path()).expect("reads key");
        assert_eq!(second.verify(&first.issue(&ada())), Some(ada()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_KEY_FILE))
                .expect("key file exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn guest_names_are_valid_display_names() {
        let name = guest_name();
        assert!(causerie_protocol::limits::normalize_name(&name).is_some());
        assert!(name.starts_with("guest-") && name.len() == 10);
    }
}
