//! Shared test helpers: which backend to open, a clock the tests drive, request builders
//! and the in-memory model a list is checked against.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use std::collections::BTreeMap;

use opsd_domain::{
    DiffValue, FieldDiff, Kind, ListFilter, NewOperation, OpType, Operation, Page, PageRequest,
    Patch, Sort, Status,
};
use opsd_store::{Change, Clock, FeedChange, Store};
use opsd_store_suite::TestDb;
use time::OffsetDateTime;

/// 2026-01-01T00:00:00Z: where every fake clock starts.
pub const CLOCK_START: i64 = 1_767_225_600;

/// A clock that only moves when a test says so, in whole seconds, so that several writes
/// share a timestamp and the `seq` tie-breaker of every sort gets exercised.
#[derive(Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl Default for FakeClock {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(CLOCK_START)))
    }
}

impl FakeClock {
    /// Moves the clock forward by `secs` seconds.
    pub fn tick(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// The current fake time.
    pub fn now(&self) -> OffsetDateTime {
        at(self.0.load(Ordering::SeqCst) - CLOCK_START)
    }

    /// The clock as the store wants it.
    pub fn clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

/// `CLOCK_START + secs`.
pub fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(CLOCK_START + secs).unwrap()
}

/// A fresh, empty store on the wall clock, on the backend `OPSD_TEST_STORE` names. The
/// database must outlive the store.
pub async fn open_store() -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new().await;
    let store = db.open().await;
    (db, store)
}

/// A fresh, empty store on `clock`.
pub async fn open_store_with_clock(clock: &FakeClock) -> (TestDb, Arc<dyn Store>) {
    open_store_on(clock.clock()).await
}

/// A fresh, empty store on any clock.
pub async fn open_store_on(clock: Clock) -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new().await;
    let store = db.open_with_clock(Some(clock)).await;
    (db, store)
}

/// Opens the store kept in `db` again (after the previous handle was dropped).
pub async fn reopen_store(db: &TestDb, clock: &FakeClock) -> Arc<dyn Store> {
    db.open_with_clock(Some(clock.clock())).await
}

/// A minimal create request.
pub fn new_op(project: &str, kind: Kind, op_type: OpType, resource: &str) -> NewOperation {
    NewOperation::new(project, kind, op_type, resource)
}

/// A request with a non-empty body, so that idempotency compares more than the ids.
pub fn resize(project: &str, request_id: &str, to: &str) -> NewOperation {
    let mut new = new_op(project, Kind::Volume, OpType::Update, "vol-1");
    new.request_id = Some(request_id.into());
    new.description = Some("grow the volume".into());
    let diff = FieldDiff {
        from: DiffValue::String("10Gi".into()),
        to: DiffValue::String(to.into()),
    };
    new.details.changes = BTreeMap::from([("size".to_owned(), diff)]);
    new
}

/// A patch that only moves the status.
pub fn status(s: Status) -> Patch {
    Patch {
        status: Some(s),
        ..Patch::default()
    }
}

/// Every operation of project `p`, unfiltered.
pub fn project(p: &str) -> ListFilter {
    ListFilter {
        project_id: p.into(),
        ..ListFilter::default()
    }
}

/// The cursor scope the HTTP layer uses: filters and sort together.
pub fn scope(filter: &ListFilter, sort: &Sort) -> String {
    format!("{}|{}", filter.canonical(), sort.canonical())
}

/// What a list must return, computed in memory from the current state of `all`.
pub fn expected(all: &[Operation], filter: &ListFilter, sort: &Sort) -> Vec<Operation> {
    let mut out: Vec<Operation> = all.iter().filter(|o| filter.matches(o)).cloned().collect();
    out.sort_by(|a, b| sort.compare(a, b));
    out
}

pub fn ids(ops: &[Operation]) -> Vec<uuid::Uuid> {
    ops.iter().map(|o| o.id).collect()
}

/// Fetches one page.
pub async fn page(
    store: &dyn Store,
    filter: &ListFilter,
    sort: &Sort,
    cursor: Option<opsd_domain::Cursor>,
    limit: usize,
) -> Page {
    store
        .list(
            filter,
            sort,
            &PageRequest {
                cursor,
                limit,
                count_total: true,
            },
        )
        .await
        .unwrap()
}

/// Walks every `next` cursor from the first page, checking the page invariants that do
/// not depend on the expected contents: full pages except the last, `prev` only after
/// the first, `next` only before the last, the same `total_count` on every page.
pub async fn walk_forward(
    store: &dyn Store,
    filter: &ListFilter,
    sort: &Sort,
    limit: usize,
) -> Vec<Page> {
    let mut pages = vec![page(store, filter, sort, None, limit).await];
    assert!(pages[0].prev.is_none(), "first page has a previous cursor");
    let total = pages[0].total_count;
    // Bounded, so that a cursor that never ends fails the test instead of hanging it.
    let max_pages = usize::try_from(total).unwrap() / limit + 2;
    while let Some(next) = pages.last().unwrap().next.clone() {
        assert!(
            pages.len() <= max_pages,
            "more pages than {total} rows can fill"
        );
        let p = page(store, filter, sort, Some(next), limit).await;
        assert!(
            p.prev.is_some(),
            "page {} has no previous cursor",
            pages.len()
        );
        pages.push(p);
    }
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p.total_count, total, "total_count differs on page {i}");
        let last = i + 1 == pages.len();
        if last {
            assert!(p.items.len() <= limit);
            assert!(
                !p.items.is_empty() || total == 0,
                "empty last page of {total} rows"
            );
        } else {
            assert_eq!(p.items.len(), limit, "short page {i} before the last");
        }
    }
    pages
}

/// Every item of `pages`, in order.
pub fn flatten(pages: &[Page]) -> Vec<Operation> {
    pages.iter().flat_map(|p| p.items.iter().cloned()).collect()
}

/// A connection of the writer's kind to the test's PostgreSQL database, outside any
/// store (for tests that drive the feed protocol by hand).
pub async fn connect(db: &TestDb) -> opsd_store_postgres::Client {
    let opsd_store_open::StoreConfig::Postgres { url, .. } = &db.config else {
        unreachable!("PostgreSQL only")
    };
    opsd_store_postgres::connect(url).await.expect("connect")
}

/// A change of the feed, whole: as it arrived, or, named only, as a watch stream reads
/// it, from the project's history just before its seq. (A process's own changes
/// arrive whole, unless its feed happened to read one back from the database before
/// its writer handed it over: PostgreSQL, rare.)
pub async fn whole(store: &dyn Store, change: FeedChange) -> Change {
    let (seq, project) = match change {
        FeedChange::Whole(change) => return change,
        FeedChange::Named {
            event_seq,
            project_id,
            ..
        } => (event_seq, project_id),
    };
    let mut history = store.events_since(&project, seq - 1, 1).await.unwrap();
    let change = history
        .changes
        .pop()
        .expect("a named change is in the history");
    assert_eq!(change.event_seq, seq, "the history holds the named change");
    change
}
