//! Console sessions: a browser exchanges an API key for a random session secret kept in
//! an `HttpOnly` cookie. Backend-agnostic pieces; the backends store only [`hash`] of
//! a secret.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// Every session secret starts with this (distinct from API keys' `opsd_`).
pub const SESSION_PREFIX: &str = "opsds_";

/// A session just created: its secret is shown once, to be set as a cookie.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The secret (the cookie's value).
    pub secret: String,
    /// The key it stands for.
    pub key_id: Uuid,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

/// A fresh random session secret: `opsds_` and 256 random bits in hex.
pub fn generate() -> Result<String, getrandom::Error> {
    crate::api_keys::random_secret(SESSION_PREFIX)
}

/// The stored form of a session secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The anti-CSRF token of a session: derived from the secret, so it needs no storage,
/// yet a page can only learn it from the server (the cookie is `HttpOnly`).
pub fn csrf_token(secret: &str) -> String {
    let digest = Sha256::digest(format!("opsd-csrf\0{secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
