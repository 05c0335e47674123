//! The writes a backend's writer carries out, and the queue that takes them there.
//!
//! Every backend runs all of its writes through one writer per process, which drains
//! its queue into one transaction at a time (group commit) and answers each caller only
//! after the COMMIT. The commands, their answers and the queue are the same for every
//! backend, so a backend says only how a batch of them is carried out: the `Store` and
//! `KeyStore` write methods are one call on [`Queue`] each, by the traits' defaults.

use opsd_domain::lease::ClaimRequest;
use opsd_domain::{ApiKey, NewApiKey, NewOperation, Operation, Patch};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::sessions::{self, NewSession};
use crate::trace::WriteSpan;
use crate::{Claimed, Created, Heartbeat, Preconditions, Renewed, Result, StoreError, api_keys};

/// How many queued writes may wait for the writer before callers wait to enqueue.
pub const QUEUE_DEPTH: usize = 4096;

/// A write waiting for the writer.
pub enum Write {
    Create(NewOperation),
    Update {
        id: Uuid,
        patch: Patch,
        pre: Preconditions,
    },
    Claim(ClaimRequest),
    Heartbeat {
        id: Uuid,
        heartbeat: Heartbeat,
    },
    /// A cancellation request.
    Cancel(Uuid),
    /// Deletes one finished operation (retention's rules, on request).
    Delete(Uuid),
    ExpireLeases {
        limit: usize,
    },
    Purge {
        before: OffsetDateTime,
        batch_size: usize,
    },
    CreateKey {
        key: ApiKey,
        /// Only the secret's hash is stored.
        hash: [u8; 32],
        /// Only if no key was ever created (the first admin key).
        only_first: bool,
    },
    RevokeKey(Uuid),
    /// A console session for a live key (only the secret's hash is stored).
    CreateSession {
        hash: [u8; 32],
        key_id: Uuid,
        expires_at: OffsetDateTime,
    },
    /// Sign-out, and the removal of sessions expired by `now`.
    EndSession {
        hash: [u8; 32],
        now: OffsetDateTime,
    },
    /// `/readyz` asking whether the storage accepts writes again after a failure: a
    /// write of its own that touches no operation (see the backend for what it writes).
    Probe,
}

/// What a write produced.
pub enum Written {
    Created(Created),
    Updated(Operation),
    Key(Option<ApiKey>),
    Claimed(Option<Claimed>),
    Renewed(Renewed),
    Expired(Vec<Operation>),
    Purged(u64),
    /// A write whose caller needs no more than to know it committed.
    Done,
}

/// A queued write and where to send its outcome.
pub struct Job {
    pub write: Write,
    pub reply: oneshot::Sender<Result<Written>>,
    /// The span of the store call that queued it, linked to the batch that commits it.
    pub span: WriteSpan,
}

/// The sending side of a writer's queue, with one typed method per write.
#[derive(Clone)]
pub struct Queue {
    jobs: mpsc::Sender<Job>,
}

impl Queue {
    /// A queue of [`QUEUE_DEPTH`] writes and the receiver its writer drains.
    pub fn new() -> (Self, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        (Self { jobs }, rx)
    }

    /// Queues `write` and waits for the writer's answer, which comes after the COMMIT.
    pub async fn send(&self, write: Write) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write,
            reply,
            span: WriteSpan::current(),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        // A write is dropped unanswered only by a writer that panicked in its batch: the
        // batch rolled back and the supervisor restarts the writer, so retrying is right.
        answer.await.map_err(|_| {
            StoreError::Unavailable("the writer restarted during this write; retry".into())
        })?
    }

    pub async fn create(&self, new: NewOperation) -> Result<Created> {
        match self.send(Write::Create(new)).await? {
            Written::Created(c) => Ok(c),
            _ => Err(mismatched_answer("create")),
        }
    }

    pub async fn update(&self, id: Uuid, patch: Patch, pre: Preconditions) -> Result<Operation> {
        match self.send(Write::Update { id, patch, pre }).await? {
            Written::Updated(op) => Ok(op),
            _ => Err(mismatched_answer("update")),
        }
    }

    pub async fn claim(&self, request: ClaimRequest) -> Result<Option<Claimed>> {
        match self.send(Write::Claim(request)).await? {
            Written::Claimed(c) => Ok(c),
            _ => Err(mismatched_answer("claim")),
        }
    }

    pub async fn heartbeat(&self, id: Uuid, heartbeat: Heartbeat) -> Result<Renewed> {
        match self.send(Write::Heartbeat { id, heartbeat }).await? {
            Written::Renewed(r) => Ok(r),
            _ => Err(mismatched_answer("heartbeat")),
        }
    }

    pub async fn cancel(&self, id: Uuid) -> Result<Operation> {
        match self.send(Write::Cancel(id)).await? {
            Written::Updated(op) => Ok(op),
            _ => Err(mismatched_answer("cancel")),
        }
    }

    pub async fn expire_leases(&self, limit: usize) -> Result<Vec<Operation>> {
        match self.send(Write::ExpireLeases { limit }).await? {
            Written::Expired(ops) => Ok(ops),
            _ => Err(mismatched_answer("lease expiry")),
        }
    }

    pub async fn purge_terminal(&self, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
        match self.send(Write::Purge { before, batch_size }).await? {
            Written::Purged(n) => Ok(n),
            _ => Err(mismatched_answer("purge")),
        }
    }

    pub async fn delete_finished(&self, id: Uuid) -> Result<()> {
        match self.send(Write::Delete(id)).await? {
            Written::Purged(_) => Ok(()),
            _ => Err(mismatched_answer("delete")),
        }
    }

    /// Mints a key and stores it: the key and its secret (shown this once).
    pub async fn create_key(&self, new: NewApiKey) -> Result<(ApiKey, String)> {
        self.insert_key(new, false)
            .await?
            .ok_or_else(|| mismatched_answer("key creation"))
    }

    /// [`create_key`](Self::create_key) only if no key was ever created: `None` if one was.
    pub async fn create_first_key(&self, new: NewApiKey) -> Result<Option<(ApiKey, String)>> {
        self.insert_key(new, true).await
    }

    async fn insert_key(
        &self,
        new: NewApiKey,
        only_first: bool,
    ) -> Result<Option<(ApiKey, String)>> {
        let api_keys::Minted { key, secret, hash } = api_keys::mint(new)?;
        let write = Write::CreateKey {
            key,
            hash,
            only_first,
        };
        match self.send(write).await? {
            Written::Key(key) => Ok(key.map(|k| (k, secret))),
            _ => Err(mismatched_answer("key creation")),
        }
    }

    pub async fn revoke_key(&self, id: Uuid) -> Result<ApiKey> {
        match self.send(Write::RevokeKey(id)).await? {
            Written::Key(Some(key)) => Ok(key),
            _ => Err(mismatched_answer("key revocation")),
        }
    }

    /// A new console session for a live key; its secret is shown to the caller only.
    pub async fn create_session(
        &self,
        key_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<NewSession> {
        let secret = sessions::generate()
            .map_err(|e| StoreError::Internal(format!("no randomness: {e}")))?;
        let write = Write::CreateSession {
            hash: sessions::hash(&secret),
            key_id,
            expires_at,
        };
        match self.send(write).await? {
            Written::Done => Ok(NewSession {
                secret,
                key_id,
                expires_at,
            }),
            _ => Err(mismatched_answer("session")),
        }
    }

    pub async fn end_session(&self, secret: &str, now: OffsetDateTime) -> Result<()> {
        let write = Write::EndSession {
            hash: sessions::hash(secret),
            now,
        };
        match self.send(write).await? {
            Written::Done => Ok(()),
            _ => Err(mismatched_answer("session")),
        }
    }
}

/// The writer answered a write with the outcome of another kind of write (a bug).
fn mismatched_answer(what: &str) -> StoreError {
    StoreError::Internal(format!("writer answered a {what} with something else"))
}
