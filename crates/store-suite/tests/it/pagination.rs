//! Keyset pagination as a property: over random operations, filters, sorts and page
//! sizes, the cursors must walk exactly the in-memory filtered and sorted set, forwards
//! and back, and keep doing so while new operations arrive mid-walk.

use opsd_domain::{Cursor, Kind, ListFilter, OpType, Operation, PageRequest, Sort, Status};
use opsd_store::Store;
use proptest::prelude::*;

use crate::support::{
    FakeClock, at, expected, flatten, ids, new_op, open_store_with_clock, page, scope, status,
    walk_forward,
};

// Small value sets, so that random filters match a useful share of the rows.
const PROJECTS: [&str; 3] = ["p-0", "p-1", "p-2"];
const KINDS: [Kind; 3] = [Kind::Vm, Kind::Volume, Kind::Vpc];
const TYPES: [OpType; 2] = [OpType::Create, OpType::Delete];
const RESOURCES: [&str; 3] = ["r-0", "r-1", "r-2"];
const STATUSES: [Status; 3] = [Status::Pending, Status::Running, Status::Done];

/// One generated operation: where it lives, what it is, and how far it gets moved.
#[derive(Debug, Clone)]
struct Seed {
    /// 0 and 1 mean the listed project `p-0` (half the rows); 2 and 3 another one.
    project: usize,
    kind: usize,
    op_type: usize,
    resource: usize,
    /// Advance the clock one second before creating it (otherwise it ties).
    tick: bool,
    /// 0 stays pending, 1 goes running, 2 goes running then done.
    fate: usize,
    /// Advance the clock before moving it.
    fate_tick: bool,
}

fn seed() -> impl Strategy<Value = Seed> {
    let tick = || prop::bool::weighted(0.3);
    (
        0..4usize,
        0..3usize,
        0..2usize,
        0..3usize,
        tick(),
        0..3usize,
        tick(),
    )
        .prop_map(
            |(project, kind, op_type, resource, tick, fate, fate_tick)| Seed {
                project,
                kind,
                op_type,
                resource,
                tick,
                fate,
                fate_tick,
            },
        )
}

/// A filter on project `p-0` with a random subset of the other fields set; time bounds
/// are whole seconds after the clock's start, so they land on real created_at values.
#[derive(Debug, Clone)]
struct FilterSpec {
    kind: Option<usize>,
    status: Option<usize>,
    op_type: Option<usize>,
    resource: Option<usize>,
    min: Option<i64>,
    max: Option<i64>,
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    // Each field set one time in five, so most filters still match several rows.
    fn some<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
        prop::option::weighted(0.2, s)
    }
    (
        some(0..3usize),
        some(0..3usize),
        some(0..2usize),
        some(0..3usize),
        some(0..12i64),
        some(4..24i64),
    )
        .prop_map(|(kind, status, op_type, resource, min, max)| FilterSpec {
            kind,
            status,
            op_type,
            resource,
            min,
            max,
        })
}

impl FilterSpec {
    fn build(&self) -> ListFilter {
        ListFilter {
            project_id: PROJECTS[0].into(),
            kind: self.kind.map(|i| KINDS[i]),
            status: self.status.map(|i| STATUSES[i]),
            op_type: self.op_type.map(|i| TYPES[i]),
            resource_id: self.resource.map(|i| RESOURCES[i].into()),
            created_at_min: self.min.map(at),
            created_at_max: self.max.map(at),
            expr: None,
        }
    }
}

/// Any valid Nirvana sort: one or two fields, each with `:asc`, `:desc` or no direction.
fn sort_text() -> impl Strategy<Value = String> {
    let dir = || prop_oneof![Just(""), Just(":asc"), Just(":desc")];
    (any::<bool>(), any::<bool>(), dir(), dir()).prop_map(|(swap, two, d1, d2)| {
        let (a, b) = if swap {
            ("updated_at", "created_at")
        } else {
            ("created_at", "updated_at")
        };
        if two {
            format!("{a}{d1},{b}{d2}")
        } else {
            format!("{a}{d1}")
        }
    })
}

#[derive(Debug, Clone)]
struct Case {
    projects: usize,
    seeds: Vec<Seed>,
    filter: FilterSpec,
    sort: String,
    limit: usize,
    /// Before each of the first pages of the third walk: how many operations to insert,
    /// and whether the clock moves first.
    inserts: Vec<(usize, bool)>,
}

fn case() -> impl Strategy<Value = Case> {
    let inserts = prop::collection::vec((0..3usize, any::<bool>()), 1..8);
    (
        2..=3usize,
        prop::collection::vec(seed(), 0..48),
        filter_spec(),
        sort_text(),
        1..=7usize,
        inserts,
    )
        .prop_map(|(projects, seeds, filter, sort, limit, inserts)| Case {
            projects,
            seeds,
            filter,
            sort,
            limit,
            inserts,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn cursors_walk_the_filtered_sorted_set(case in case()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(check(case));
    }
}

async fn check(case: Case) {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let store = &*store;
    let sort = Sort::parse_nirvana(&case.sort).unwrap();
    let filter = case.filter.build();

    let mut ops = Vec::new();
    for s in &case.seeds {
        clock.tick(i64::from(s.tick));
        let project = match s.project {
            0 | 1 => 0,
            other => 1 + (other - 2) % (case.projects - 1),
        };
        let new = new_op(
            PROJECTS[project],
            KINDS[s.kind],
            TYPES[s.op_type],
            RESOURCES[s.resource],
        );
        ops.push(store.create(new).await.unwrap().operation);
    }
    // Moved after all creates, so updated_at order departs from created_at order.
    for (op, s) in ops.iter_mut().zip(&case.seeds) {
        clock.tick(i64::from(s.fate_tick));
        for target in [Status::Running, Status::Done].into_iter().take(s.fate) {
            *op = store.update(op.id, status(target), None).await.unwrap();
        }
    }
    let want = expected(&ops, &filter, &sort);

    // 1. Forward: exactly the model, in order, with total_count on every page.
    let pages = walk_forward(store, &filter, &sort, case.limit).await;
    assert_eq!(pages[0].total_count, u64::try_from(want.len()).unwrap());
    assert_eq!(ids(&flatten(&pages)), ids(&want));
    assert_eq!(flatten(&pages), want);
    // Without the count (what Google lists ask for): the same pages, total_count 0.
    let mut cursor = None;
    for p in &pages {
        let request = PageRequest {
            cursor: cursor.take(),
            limit: case.limit,
            count_total: false,
        };
        let mut uncounted = store.list(&filter, &sort, &request).await.unwrap();
        assert_eq!(uncounted.total_count, 0, "an uncounted page has no total");
        uncounted.total_count = p.total_count;
        assert_eq!(&uncounted, p, "an uncounted page differs");
        cursor = p.next.clone();
    }

    // 2. Backward from the last page: the same pages, cursors included, in reverse.
    let mut back = vec![pages.last().unwrap().clone()];
    while let Some(prev) = back.last().unwrap().prev.clone() {
        assert!(
            back.len() < pages.len(),
            "walking back goes past the first page"
        );
        back.push(page(store, &filter, &sort, Some(prev), case.limit).await);
    }
    back.reverse();
    assert_eq!(back, pages, "walking back differs from walking forward");

    // 3. Forward again while operations keep arriving.
    walk_with_inserts(store, &clock, &case, &filter, &sort, ops).await;
}

/// Inserts operations that match the filter's equality fields before every page fetch.
/// A new operation must show up exactly when it sorts after the cursor the next fetch
/// continues from (it is then still ahead of the walk), and never otherwise; the
/// original rows must all come out once, in order.
async fn walk_with_inserts(
    store: &dyn Store,
    clock: &FakeClock,
    case: &Case,
    filter: &ListFilter,
    sort: &Sort,
    mut all: Vec<Operation>,
) {
    let mut owed = expected(&all, filter, sort);
    let mut walked = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut last_seen: Option<Operation> = None;
    for fetch in 0.. {
        // Inserts stop after a few fetches: arriving faster than a small page moves, they
        // would keep an ascending walk from ever reaching its end.
        let (count, tick) = case.inserts.get(fetch).copied().unwrap_or_default();
        clock.tick(i64::from(tick));
        for _ in 0..count {
            let new = new_op(
                &filter.project_id,
                filter.kind.unwrap_or(Kind::Vm),
                filter.op_type.unwrap_or(OpType::Create),
                filter.resource_id.as_deref().unwrap_or("r-0"),
            );
            let op = store.create(new).await.unwrap().operation;
            let ahead = last_seen
                .as_ref()
                .is_none_or(|l| sort.compare(l, &op).is_lt());
            if filter.matches(&op) && ahead {
                owed.push(op.clone());
            }
            all.push(op);
        }
        let p = page(store, filter, sort, cursor.take(), case.limit).await;
        let matching = all.iter().filter(|o| filter.matches(o)).count();
        assert_eq!(
            p.total_count,
            u64::try_from(matching).unwrap(),
            "total_count on fetch {fetch}"
        );
        assert_eq!(p.prev.is_some(), fetch > 0, "prev cursor on fetch {fetch}");
        // Every page but the last holds at least one row the walk has not seen.
        assert!(fetch <= all.len(), "the walk does not end");
        walked.extend(p.items.iter().cloned());
        last_seen = p.items.last().cloned().or(last_seen);
        match p.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    owed.sort_by(|a, b| sort.compare(a, b));
    assert_eq!(ids(&walked), ids(&owed), "walk with inserts");
}

/// A cursor is only good for the filters and sort it was made for; the HTTP layer
/// enforces this through the scope fingerprint that `Cursor::decode` checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_is_refused_in_another_scope() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    for r in RESOURCES {
        store
            .create(new_op(PROJECTS[0], Kind::Vm, OpType::Create, r))
            .await
            .unwrap();
    }
    let filter = ListFilter {
        project_id: PROJECTS[0].into(),
        ..ListFilter::default()
    };
    let sort = Sort::default();
    let first = page(&*store, &filter, &sort, None, 1).await;
    let next = first.next.clone().unwrap();
    let token = next.encode(&scope(&filter, &sort));

    let decoded = Cursor::decode("cursor", &token, &scope(&filter, &sort)).unwrap();
    assert_eq!(decoded, next);
    // The decoded cursor continues the list where the first page stopped.
    let second = page(&*store, &filter, &sort, Some(decoded), 1).await;
    let all = page(&*store, &filter, &sort, None, 10).await;
    assert_eq!(ids(&second.items), ids(&all.items[1..2]));

    let other_sort = Sort::parse_nirvana("created_at:asc").unwrap();
    assert!(Cursor::decode("cursor", &token, &scope(&filter, &other_sort)).is_err());
    let other_filter = ListFilter {
        kind: Some(Kind::Vm),
        ..filter.clone()
    };
    assert!(Cursor::decode("cursor", &token, &scope(&other_filter, &sort)).is_err());
}

/// Under an `updated_at` sort rows move when they change. A page's `prev`/`next` must
/// say what is there now, not where the walk came from: a page with nothing left before
/// it is a first page, one with nothing left after it a last page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_flags_follow_rows_that_moved() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let store = &*store;
    let mut ops = Vec::new();
    for r in RESOURCES {
        clock.tick(1);
        ops.push(
            store
                .create(new_op(PROJECTS[0], Kind::Vm, OpType::Create, r))
                .await
                .unwrap()
                .operation,
        );
    }
    let (a, b, c) = (ops[0].id, ops[1].id, ops[2].id);
    let filter = ListFilter {
        project_id: PROJECTS[0].into(),
        ..ListFilter::default()
    };

    // Ascending [a, b, c]; after page [a], a moves to the end: [b, c, a].
    let asc = Sort::parse_nirvana("updated_at:asc").unwrap();
    let first = page(store, &filter, &asc, None, 1).await;
    assert_eq!(ids(&first.items), [a]);
    clock.tick(1);
    store
        .update(a, status(Status::Running), None)
        .await
        .unwrap();
    let second = page(store, &filter, &asc, first.next, 1).await;
    assert_eq!(ids(&second.items), [b]);
    assert!(second.prev.is_none(), "nothing sorts before b any more");
    assert!(second.next.is_some());

    // Descending [a, c, b]; after walking to page [b], b moves to the front: [b, a, c].
    let desc = Sort::parse_nirvana("updated_at:desc").unwrap();
    let pages = walk_forward(store, &filter, &desc, 1).await;
    assert_eq!(ids(&flatten(&pages)), [a, c, b]);
    clock.tick(1);
    store
        .update(b, status(Status::Running), None)
        .await
        .unwrap();
    let back = page(store, &filter, &desc, pages[2].prev.clone(), 1).await;
    assert_eq!(ids(&back.items), [c]);
    assert!(back.next.is_none(), "nothing sorts after c any more");
    assert!(back.prev.is_some());
}
