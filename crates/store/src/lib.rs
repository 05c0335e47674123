//! opsd's storage layer: one async [`Store`] trait that the HTTP layer depends on, and
//! its backends. Only backends see SQL; handlers see domain types and [`StoreError`].
//!
//! The embedded default is [`sqlite::SqliteStore`] (one durable file, one writer thread
//! that group-commits, readers on their own connections).

use async_trait::async_trait;
use opsd_domain::{
    ApiKey, ChangeError, Event, ListFilter, NewApiKey, NewOperation, Operation, Page, PageRequest,
    Patch, Sort, ValidationError,
};
use uuid::Uuid;

pub mod api_keys;
pub mod sqlite;

/// What can go wrong in a store call, in terms a handler can map to a status code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No API key has this id.
    #[error("api key {0} not found")]
    KeyNotFound(Uuid),
    /// No operation has this id.
    #[error("operation {0} not found")]
    NotFound(Uuid),
    /// `expected_version` did not match the stored version.
    #[error("operation is at version {current}, not the expected {expected}")]
    VersionMismatch {
        /// Version the caller expected.
        expected: u64,
        /// Version actually stored.
        current: u64,
    },
    /// The change is invalid or forbidden by the state machine.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// A `request_id` was reused in the same project with a different body.
    #[error(
        "request_id '{request_id}' was already used for operation {existing} with a different body"
    )]
    IdempotencyConflict {
        /// The reused idempotency key.
        request_id: String,
        /// The operation it created first.
        existing: Uuid,
    },
    /// The query itself is invalid (for example a cursor from another list).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The backend failed; the message is for logs, not for clients.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The outcome of a create: the operation, and whether this call created it (false when
/// an idempotent retry returned the operation created earlier).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The operation as stored.
    pub operation: Operation,
    /// `true` for a new operation, `false` for an idempotent replay.
    pub created: bool,
}

/// Durable storage of operations and their history. Every write is durable when the
/// returned future resolves.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an operation in `pending`, or returns the one an earlier call with the same
    /// `(project_id, request_id)` and body created.
    async fn create(&self, new: NewOperation) -> Result<Created>;

    /// Applies `patch` through the state machine; with `expected_version`, only if the
    /// stored version still matches.
    async fn update(
        &self,
        id: Uuid,
        patch: Patch,
        expected_version: Option<u64>,
    ) -> Result<Operation>;

    /// One operation by id.
    async fn get(&self, id: Uuid) -> Result<Option<Operation>>;

    /// One keyset-paginated page of a project's operations.
    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page>;

    /// The history of an operation, oldest first; `NotFound` if it does not exist.
    async fn events(&self, id: Uuid) -> Result<Vec<Event>>;

    /// Checks that the backend answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;
}

/// API keys: created with a secret shown once, listed without secrets, revoked at once.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Creates a key; returns it with its secret, which is stored only as a hash.
    async fn create_key(&self, new: NewApiKey) -> Result<(ApiKey, String)>;

    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKey>>;

    /// Revokes a key (idempotent); `KeyNotFound` if there is no such key.
    async fn revoke_key(&self, id: Uuid) -> Result<ApiKey>;

    /// The live (not revoked) key whose secret is `secret`, if any.
    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>>;

    /// Whether any key was ever created (the first start creates an admin key).
    async fn has_ever_had_keys(&self) -> Result<bool>;
}
