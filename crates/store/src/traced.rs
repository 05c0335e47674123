//! [`TracedStore`]: a [`Store`] that wraps every call made inside a request in a child
//! span. Installed only when export is on, so an untraced server pays nothing for it.
//!
//! Calls made outside any span (the lease-expiry and retention tasks) get no span of
//! their own: a root span every few seconds would only bury the requests' traces.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use opsd_domain::lease::ClaimRequest;
use opsd_domain::{Event, ListFilter, NewOperation, Operation, Page, PageRequest, Patch, Sort};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tracing::{Instrument, Span};
use uuid::Uuid;

use crate::{
    Backfill, Claimed, Created, FeedChange, Heartbeat, Preconditions, Readiness, Renewed, Result,
    Store, WantWhole, WriteConflicts, stats,
};

/// A store whose calls become spans named `store.<call>`.
pub struct TracedStore {
    inner: Arc<dyn Store>,
    /// `db.system.name`: `sqlite` or `postgresql`.
    system: &'static str,
}

impl TracedStore {
    /// Wraps `inner`, a store of the `system` database.
    pub fn new(inner: Arc<dyn Store>, system: &'static str) -> TracedStore {
        TracedStore { inner, system }
    }

    /// Runs `call` inside a span when a request's span is current.
    async fn span<T>(&self, operation: &'static str, call: impl Future<Output = T>) -> T {
        if Span::current().is_none() {
            return call.await;
        }
        let span = tracing::info_span!(
            "store",
            otel.name = format!("store.{operation}"),
            otel.kind = "internal",
            db.system.name = self.system,
            db.operation.name = operation,
        );
        call.instrument(span).await
    }
}

#[async_trait]
impl Store for TracedStore {
    fn queue(&self) -> &crate::write::Queue {
        self.inner.queue()
    }

    async fn create(&self, new: NewOperation) -> Result<Created> {
        self.span("create", self.inner.create(new)).await
    }

    async fn update_with(&self, id: Uuid, patch: Patch, pre: Preconditions) -> Result<Operation> {
        self.span("update", self.inner.update_with(id, patch, pre))
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Operation>> {
        self.span("get", self.inner.get(id)).await
    }

    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<Operation>> {
        self.span("get_many", self.inner.get_many(ids)).await
    }

    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page> {
        self.span("list", self.inner.list(filter, sort, page)).await
    }

    async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        self.span("events", self.inner.events(id)).await
    }

    async fn ping(&self) -> Result<()> {
        self.span("ping", self.inner.ping()).await
    }

    fn epoch(&self) -> &str {
        self.inner.epoch()
    }

    async fn backup(&self) -> Result<crate::backup::Taken> {
        self.span("backup", self.inner.backup()).await
    }

    fn write_conflicts(&self) -> WriteConflicts {
        self.inner.write_conflicts()
    }

    async fn readiness(&self) -> Readiness {
        self.inner.readiness().await
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedChange> {
        self.inner.subscribe()
    }

    fn want_whole(&self, project_id: &str) -> WantWhole {
        self.inner.want_whole(project_id)
    }

    fn feed_gaps(&self) -> u64 {
        self.inner.feed_gaps()
    }

    fn feed_store_reads(&self) -> u64 {
        self.inner.feed_store_reads()
    }

    fn deletions(&self) -> u64 {
        self.inner.deletions()
    }

    async fn events_since(
        &self,
        project_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Backfill> {
        self.span(
            "events_since",
            self.inner.events_since(project_id, after_seq, limit),
        )
        .await
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Option<Claimed>> {
        self.span("claim", self.inner.claim(request)).await
    }

    async fn heartbeat(&self, id: Uuid, heartbeat: Heartbeat) -> Result<Renewed> {
        self.span("heartbeat", self.inner.heartbeat(id, heartbeat))
            .await
    }

    async fn cancel(&self, id: Uuid) -> Result<Operation> {
        self.span("cancel", self.inner.cancel(id)).await
    }

    async fn expire_leases(&self, limit: usize) -> Result<Vec<Operation>> {
        self.span("expire_leases", self.inner.expire_leases(limit))
            .await
    }

    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>> {
        self.inner.next_lease_expiry().await
    }

    async fn leases_held(&self) -> Result<u64> {
        self.inner.leases_held().await
    }

    async fn purge_terminal(&self, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
        self.span(
            "purge_terminal",
            self.inner.purge_terminal(before, batch_size),
        )
        .await
    }

    async fn delete_finished(&self, id: Uuid) -> Result<()> {
        self.span("delete_finished", self.inner.delete_finished(id))
            .await
    }

    async fn stats(&self, request: &stats::StatsRequest) -> Result<stats::ProjectStats> {
        self.span("stats", self.inner.stats(request)).await
    }

    async fn projects(&self) -> Result<Vec<stats::ProjectCount>> {
        self.span("projects", self.inner.projects()).await
    }
}
