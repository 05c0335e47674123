//! The store as the server sees it: every call goes to the backend unchanged, and a
//! retention pass that deleted operations empties the read cache (deletions are not in
//! the change feed, which carries only changed operations).

use std::sync::Arc;

use async_trait::async_trait;
use opsd_domain::lease::ClaimRequest;
use opsd_domain::{Event, ListFilter, NewOperation, Operation, Page, PageRequest, Patch, Sort};
use opsd_store::stats::{ProjectCount, ProjectStats, StatsRequest};
use opsd_store::{
    Backfill, Change, Claimed, Created, Heartbeat, Preconditions, Renewed, Result, Store,
};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::ReadCache;

/// A [`Store`] that tells the read cache about deletions.
pub struct InvalidatingStore {
    inner: Arc<dyn Store>,
    cache: Arc<ReadCache>,
}

impl InvalidatingStore {
    /// Wraps `inner`, emptying `cache` after each deletion.
    pub fn new(inner: Arc<dyn Store>, cache: Arc<ReadCache>) -> Self {
        Self { inner, cache }
    }
}

#[async_trait]
impl Store for InvalidatingStore {
    async fn purge_terminal(&self, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
        let deleted = self.inner.purge_terminal(before, batch_size).await?;
        if deleted > 0 {
            self.cache.forget_everything();
        }
        Ok(deleted)
    }

    async fn create(&self, new: NewOperation) -> Result<Created> {
        self.inner.create(new).await
    }

    async fn update(&self, id: Uuid, patch: Patch, expected: Option<u64>) -> Result<Operation> {
        self.inner.update(id, patch, expected).await
    }

    async fn update_with(&self, id: Uuid, patch: Patch, pre: Preconditions) -> Result<Operation> {
        self.inner.update_with(id, patch, pre).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Operation>> {
        self.inner.get(id).await
    }

    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page> {
        self.inner.list(filter, sort, page).await
    }

    async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        self.inner.events(id).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.subscribe()
    }

    fn feed_gaps(&self) -> u64 {
        self.inner.feed_gaps()
    }

    async fn events_since(&self, project: &str, after: u64, limit: usize) -> Result<Backfill> {
        self.inner.events_since(project, after, limit).await
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Option<Claimed>> {
        self.inner.claim(request).await
    }

    async fn heartbeat(&self, id: Uuid, heartbeat: Heartbeat) -> Result<Renewed> {
        self.inner.heartbeat(id, heartbeat).await
    }

    async fn cancel(&self, id: Uuid) -> Result<Operation> {
        self.inner.cancel(id).await
    }

    async fn expire_leases(&self, limit: usize) -> Result<Vec<Operation>> {
        self.inner.expire_leases(limit).await
    }

    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>> {
        self.inner.next_lease_expiry().await
    }

    async fn leases_held(&self) -> Result<u64> {
        self.inner.leases_held().await
    }

    async fn stats(&self, request: &StatsRequest) -> Result<ProjectStats> {
        self.inner.stats(request).await
    }

    async fn projects(&self) -> Result<Vec<ProjectCount>> {
        self.inner.projects().await
    }
}
