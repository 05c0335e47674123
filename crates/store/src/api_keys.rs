//! API key secrets: how they are made and how they are hashed. Backend-agnostic; the
//! backends store only [`hash`] of a key, never the key.

use opsd_domain::{ApiKey, NewApiKey};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, StoreError};

/// Every key starts with this, so leaked-secret scanners can recognise opsd keys.
pub const KEY_PREFIX: &str = "opsd_";
/// Random bytes per key (256 bits).
const SECRET_BYTES: usize = 32;
/// Characters of the key kept for display (`opsd_` plus 8).
pub const DISPLAY_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;

/// A fresh random key: `opsd_` followed by 64 hex digits.
pub fn generate() -> Result<String, getrandom::Error> {
    random_secret(KEY_PREFIX)
}

/// `prefix` followed by 256 random bits from the operating system, in hex.
pub fn random_secret(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

/// The stored form of a key.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares two hashes in time independent of where they differ.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key about to be stored: the record, its secret (shown once) and the hash kept.
pub struct Minted {
    /// The key as listed (its `created_at` is set by the store when it is written).
    pub key: ApiKey,
    /// The secret, for the caller only.
    pub secret: String,
    /// What the store keeps instead of the secret.
    pub hash: [u8; 32],
}

/// Validates `new` and makes its key: a fresh secret, its display prefix and its hash.
pub fn mint(new: NewApiKey) -> Result<Minted> {
    new.validate()?;
    let secret = generate().map_err(|e| StoreError::Internal(format!("no randomness: {e}")))?;
    let key = ApiKey {
        id: Uuid::now_v7(),
        name: new.name,
        role: new.role,
        projects: new.projects,
        prefix: secret[..DISPLAY_PREFIX_LEN].to_owned(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        revoked_at: None,
    };
    let hash = hash(&secret);
    Ok(Minted { key, secret, hash })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SQL both backends read keys with (`$n` parameters; SQLite numbers them in order
/// of appearance). Rows come back in [`KEY_COLUMNS`](crate::api_keys::sql::KEY_COLUMNS)
/// order, then what each statement adds.
pub mod sql {
    /// A key's columns, in the order both backends' row readers take them.
    pub const KEY_COLUMNS: &str = "id, name, role, projects, key_prefix, created_at, revoked_at";

    /// Every key, oldest first.
    pub const LIST: &str = "SELECT id, name, role, projects, key_prefix, created_at, revoked_at \
         FROM api_keys ORDER BY created_at, id";

    /// The key whose hash is `$1`, with its stored hash (column 7) to compare in constant time.
    pub const BY_HASH: &str = "SELECT id, name, role, projects, key_prefix, created_at, \
         revoked_at, key_hash FROM api_keys WHERE key_hash = $1";

    /// The live key of the session whose secret hashes to `$1` and that has not expired by
    /// `$2` (microseconds), with the session's expiry (column 7): a revoked key's
    /// sessions stop working at once.
    pub const SESSION_KEY: &str = "SELECT k.id, k.name, k.role, k.projects, k.key_prefix, \
         k.created_at, k.revoked_at, s.expires_at FROM sessions s \
         JOIN api_keys k ON k.id = s.key_id \
         WHERE s.secret_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_long() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert!(hashes_equal(&hash(&a), &hash(&a)));
        assert!(!hashes_equal(&hash(&a), &hash(&b)));
    }
}
