//! Operations: get, list (one page, or every page as a stream), create, update, events,
//! cancel, and wait (longer than the server's 120 s limit by asking again).

use std::time::Duration;

use futures_util::{Stream, TryStreamExt, stream};
use opsd_domain::duration::MAX_WAIT;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use uuid::Uuid;

use crate::retry::Idempotency::{Safe, Unsafe};
use crate::types::EventList;
use crate::{Client, Event, NewOperation, Operation, OperationPatch, Page, Result};

crate::query::filtered_query! {
    /// The filters and order of a list. Build it with [`ListQuery::new`].
    pub struct ListQuery {
        /// Created at or after.
        pub created_at_min: Option<OffsetDateTime>,
        /// Created at or before.
        pub created_at_max: Option<OffsetDateTime>,
        /// Sort, e.g. `created_at:asc` (server default `created_at:desc`).
        pub sort: Option<String>,
        /// Page size, 1–100 (server default 10).
        pub limit: Option<u8>,
    }
    new: "Every operation of `project_id`."
}

impl ListQuery {
    /// Sort order, e.g. `created_at:asc`.
    pub fn sort(mut self, sort: impl Into<String>) -> Self {
        self.sort = Some(sort.into());
        self
    }

    /// Page size, 1–100.
    pub fn limit(mut self, limit: u8) -> Self {
        self.limit = Some(limit);
        self
    }

    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let time = |t: &OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        let mut q = self.filter_pairs();
        q.extend(
            self.created_at_min
                .as_ref()
                .map(|t| ("created_at_min", time(t))),
        );
        q.extend(
            self.created_at_max
                .as_ref()
                .map(|t| ("created_at_max", time(t))),
        );
        q.extend(self.sort.clone().map(|s| ("sort", s)));
        q.extend(self.limit.map(|l| ("limit", l.to_string())));
        q
    }
}

impl Client {
    /// One operation.
    ///
    /// ```no_run
    /// # async fn run(client: opsd_client::Client, id: uuid::Uuid) -> opsd_client::Result<()> {
    /// let op = client.get(id).await?;
    /// println!("{} {} {}%", op.id, op.status, op.progress);
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, id: Uuid) -> Result<Operation> {
        let url = self.url(&format!("/v1/operations/{id}"));
        self.json(Safe, |h| h.get(&url)).await
    }

    /// One page of a list; `cursor` from the previous page's `pagination`.
    pub async fn list_page(&self, query: &ListQuery, cursor: Option<&str>) -> Result<Page> {
        let url = self.url("/v1/operations");
        let mut pairs = query.pairs();
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_owned()));
        }
        self.json(Safe, |h| h.get(&url).query(&pairs)).await
    }

    /// Every matching operation, page after page, as a stream (pages are fetched as the
    /// stream is read).
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// use opsd_client::{ListQuery, Status};
    /// # async fn run(client: opsd_client::Client) -> opsd_client::Result<()> {
    /// let failed: Vec<_> = client
    ///     .list(ListQuery::new("proj-1").status(Status::Failed).limit(100))
    ///     .try_collect()
    ///     .await?;
    /// println!("{} failed operations", failed.len());
    /// # Ok(()) }
    /// ```
    pub fn list(&self, query: ListQuery) -> impl Stream<Item = Result<Operation>> + Send + 'static {
        // `Some(None)`: the first page; `Some(Some(c))`: the page at `c`; `None`: done.
        let start: Option<Option<String>> = Some(None);
        stream::try_unfold(
            (self.clone(), query, start),
            |(client, query, next)| async move {
                let Some(cursor) = next else {
                    return Ok::<_, crate::Error>(None);
                };
                let page = client.list_page(&query, cursor.as_deref()).await?;
                let next = page.pagination.next_cursor.clone().map(Some);
                let items = stream::iter(page.items.into_iter().map(Ok));
                Ok(Some((items, (client, query, next))))
            },
        )
        .try_flatten()
    }

    /// Creates an operation (status `pending`). With a `request_id` a retry is safe and
    /// returns the first operation; without one, the SDK only retries when the server
    /// certainly did not receive the request.
    pub async fn create(&self, new: &NewOperation) -> Result<Operation> {
        let url = self.url("/v1/operations");
        let idem = if new.request_id.is_some() {
            Safe
        } else {
            Unsafe
        };
        self.json(idem, |h| h.post(&url).json(new)).await
    }

    /// Applies a change; with `if_version`, only if the operation is still at that
    /// version (`412 precondition_failed` otherwise).
    pub async fn update(
        &self,
        id: Uuid,
        patch: &OperationPatch,
        if_version: Option<u64>,
    ) -> Result<Operation> {
        let url = self.url(&format!("/v1/operations/{id}"));
        // A conditional update cannot apply twice; a plain one could (a second
        // "progress 50" is harmless, a second "failed" is refused as a transition).
        let idem = if if_version.is_some() { Safe } else { Unsafe };
        self.json(idem, |h| {
            let r = h.patch(&url).json(patch);
            match if_version {
                Some(v) => r.header("if-match", format!("\"{v}\"")),
                None => r,
            }
        })
        .await
    }

    /// The operation's history, oldest first.
    pub async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        let url = self.url(&format!("/v1/operations/{id}/events"));
        let list: EventList = self.json(Safe, |h| h.get(&url)).await?;
        Ok(list.items)
    }

    /// Asks to cancel an operation: a pending one fails with `CANCELLED` at once, a
    /// running or unknown one gets `cancel_requested` for its worker to act on. A
    /// finished one is an error with code `already_finished`.
    pub async fn cancel(&self, id: Uuid) -> Result<Operation> {
        let url = self.url(&format!("/v1/operations/{id}/cancel"));
        self.json(Safe, |h| h.post(&url)).await
    }

    /// Waits until the operation is `done` or `failed`, or `timeout` passes, and returns
    /// it as it then is (check [`Operation::is_finished`]). Waits longer than the
    /// server's 120 s limit are several server-side waits; none of them polls.
    ///
    /// ```no_run
    /// # async fn run(client: opsd_client::Client, id: uuid::Uuid) -> opsd_client::Result<()> {
    /// use std::time::Duration;
    /// let op = client.wait(id, Duration::from_secs(600)).await?;
    /// if !op.is_finished() {
    ///     eprintln!("still {} after 10 minutes", op.status);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait(&self, id: Uuid, timeout: Duration) -> Result<Operation> {
        let deadline = Instant::now() + timeout;
        let url = self.url(&format!("/v1/operations/{id}/wait"));
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(MAX_WAIT);
            let wait = format!("{}ms", slice.as_millis());
            let response = self
                .send(Safe, slice, |h| h.get(&url).query(&[("timeout", &wait)]))
                .await?;
            let op: Operation = crate::decode(response).await?;
            if op.is_finished() || Instant::now() >= deadline {
                return Ok(op);
            }
        }
    }
}
