//! API key management (admin keys only).

use opsd_domain::Role;
use serde::Serialize;
use uuid::Uuid;

use crate::retry::Idempotency::{Safe, Unsafe};
use crate::types::KeyList;
use crate::{ApiKey, Client, CreatedKey, Result};

#[derive(Serialize)]
struct NewKey<'a> {
    name: &'a str,
    role: Role,
    projects: &'a [String],
}

impl Client {
    /// Creates a key; its secret is in the answer and nowhere else.
    pub async fn create_key(
        &self,
        name: &str,
        role: Role,
        projects: &[String],
    ) -> Result<CreatedKey> {
        let url = self.url("/v1/api_keys");
        let body = NewKey {
            name,
            role,
            projects,
        };
        // Not repeated after it may have reached the server: that would mint two keys.
        self.json(Unsafe, |h| h.post(&url).json(&body)).await
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let url = self.url("/v1/api_keys");
        let list: KeyList = self.json(Safe, |h| h.get(&url)).await?;
        Ok(list.items)
    }

    /// Revokes a key at once (revoking twice is harmless).
    pub async fn revoke_key(&self, id: Uuid) -> Result<()> {
        let url = self.url(&format!("/v1/api_keys/{id}"));
        self.send(Safe, std::time::Duration::ZERO, |h| h.delete(&url))
            .await
            .map(drop)
    }
}
