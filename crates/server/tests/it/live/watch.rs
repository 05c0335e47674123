//! `GET /v1/operations/watch`: Server-Sent Events of a project's changes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use opsd_domain::{Kind, ListFilter, Status};
use opsd_server::background::watch::{Start, stream};
use opsd_server::http::nirvana::models::OperationOut;
use opsd_server::metrics::Metrics;
use opsd_store::{Change, FeedChange, Store};
use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::support::{CountingStore, Next, SseEvent, SseStream, TestServer};

/// Reads events until the stream has been quiet for `idle`.
async fn drain(stream: &mut SseStream, idle: Duration) -> (Vec<SseEvent>, bool) {
    let mut events = Vec::new();
    loop {
        match stream.next(idle).await {
            Next::Event(e) => events.push(e),
            Next::Idle => return (events, false),
            Next::End => return (events, true),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_each_matching_change_in_commit_order() {
    let server = TestServer::start().await;
    let mut vms = SseStream::open(&server, "project_id=p&kind=vm", None).await;
    let mut all = SseStream::open(&server, "project_id=p", None).await;

    let vm = server.create("p", "vm", "vm-1").await;
    let vol = server.create("p", "volume", "vol-1").await;
    server.create("q", "vm", "vm-9").await;
    let vm_id = vm["id"].as_str().unwrap();
    let running = server
        .patch(
            vm_id,
            json!({"status": "running", "progress": 5}),
            StatusCode::OK,
        )
        .await;
    let done = server
        .patch(vm_id, json!({"status": "done"}), StatusCode::OK)
        .await;

    let (events, ended) = drain(&mut vms, Duration::from_millis(500)).await;
    assert!(!ended);
    let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
    assert_eq!(data, [&vm, &running, &done]);
    assert!(events.iter().all(|e| e.event == "operation"));
    let ids: Vec<u64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // The stream's data is what GET returns.
    assert_eq!(events.last().unwrap().data, server.get(vm_id).await);

    let (events, _) = drain(&mut all, Duration::from_millis(300)).await;
    let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
    assert_eq!(data, [&vm, &vol, &running, &done]);
    assert_eq!(server.metric("opsd_watch_streams").await, Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_refuses_bad_requests() {
    let server = TestServer::start().await;
    for (query, field) in [
        ("kind=vm", "project_id"),
        ("project_id=p&limit=5", "limit"),
        ("project_id=p&kind=vms", "kind"),
        ("project_id=bad%20id", "project_id"),
    ] {
        let body = server
            .call(
                Method::GET,
                &format!("/v1/operations/watch?{query}"),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let response = server
        .http
        .get(format!("{}/v1/operations/watch?project_id=p", server.base))
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "Last-Event-ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_past_the_retention_horizon_gets_a_reset() {
    let server = TestServer::start().await;
    let old = server.create("p", "vm", "vm-1").await;
    server
        .patch(
            old["id"].as_str().unwrap(),
            json!({"status": "done"}),
            StatusCode::OK,
        )
        .await; // events 1 and 2
    let deleted = server
        .state
        .store
        .purge_terminal(
            time::OffsetDateTime::now_utc() + Duration::from_secs(60),
            100,
        )
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let kept = server.create("p", "vm", "vm-2").await; // event 3

    // From before the horizon: a reset carrying the head, then live changes.
    let mut stream = SseStream::open(&server, "project_id=p", Some(1)).await;
    let Next::Event(reset) = stream.next(Duration::from_secs(5)).await else {
        panic!("no reset event")
    };
    assert_eq!((reset.event.as_str(), reset.id), ("reset", Some(3)));
    assert_eq!(reset.data["code"], "reset");
    let kept_id = kept["id"].as_str().unwrap();
    let running = server
        .patch(kept_id, json!({"status": "running"}), StatusCode::OK)
        .await;
    let Next::Event(next) = stream.next(Duration::from_secs(5)).await else {
        panic!("no event after the reset")
    };
    assert_eq!((next.event.as_str(), next.id), ("operation", Some(4)));
    assert_eq!(next.data, running);

    // From the horizon itself nothing is missing: a plain backfill.
    let mut stream = SseStream::open(&server, "project_id=p", Some(2)).await;
    let (events, _) = drain(&mut stream, Duration::from_millis(300)).await;
    let got: Vec<(Option<u64>, &Value)> = events.iter().map(|e| (e.id, &e.data)).collect();
    assert_eq!(got, [(Some(3), &kept), (Some(4), &running)]);

    // An id this store never issued: a reset too.
    let mut stream = SseStream::open(&server, "project_id=p", Some(999)).await;
    let Next::Event(reset) = stream.next(Duration::from_secs(5)).await else {
        panic!("no reset event")
    };
    assert_eq!((reset.event.as_str(), reset.id), ("reset", Some(4)));
}

/// A consumer that falls further behind than the feed keeps is cut off (it resumes with
/// Last-Event-ID) instead of making the server buffer for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_falls_behind_the_feed_ends() {
    let db = opsd_store_suite::TestDb::new().await;
    let (feed, _) = broadcast::channel::<FeedChange>(4);
    let store: Arc<dyn Store> = Arc::new(CountingStore::with_feed(db.open().await, feed.clone()));
    let op = store
        .create(opsd_domain::NewOperation::new(
            "p",
            Kind::Vm,
            opsd_domain::OpType::Create,
            "vm-1",
        ))
        .await
        .unwrap()
        .operation;
    let metrics = Metrics::new();
    let filter = ListFilter {
        project_id: "p".into(),
        ..ListFilter::default()
    };
    let (_stop, stopped) = watch::channel(false);
    let mut watching = Box::pin(stream(store.clone(), filter, Start::Now, stopped, &metrics));
    assert_eq!(metrics.watch_streams.get(), 1);
    let change = |seq| {
        FeedChange::Whole(Change {
            event_seq: seq,
            operation: Arc::new(op.clone()),
        })
    };
    feed.send(change(10)).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watching.next())
        .await
        .unwrap();
    assert!(
        matches!(first, Some(opsd_server::background::watch::WatchItem::Change(c)) if c.event_seq == 10)
    );
    for seq in 11..=20 {
        feed.send(change(seq)).unwrap();
    }
    let next = tokio::time::timeout(Duration::from_secs(5), watching.next())
        .await
        .unwrap();
    assert!(next.is_none(), "a lagging stream must end, got {next:?}");
    // Ending released everything the stream held.
    assert_eq!(metrics.watch_streams.get(), 0);
}

#[derive(Debug, Clone)]
enum Step {
    Create {
        other_project: bool,
        kind: usize,
    },
    Progress {
        op: usize,
        progress: u8,
    },
    Finish {
        op: usize,
    },
    Read,
    Disconnect,
    /// Reconnect with Last-Event-ID while this many writes commit concurrently, so that
    /// some land between the server's subscribe and its backfill read.
    Reconnect {
        concurrent_writes: usize,
    },
}

const KINDS: [&str; 2] = ["vm", "volume"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (any::<bool>(), 0..KINDS.len())
            .prop_map(|(other_project, kind)| Step::Create { other_project, kind }),
        3 => (any::<usize>(), 0u8..=100)
            .prop_map(|(op, progress)| Step::Progress { op, progress }),
        1 => any::<usize>().prop_map(|op| Step::Finish { op }),
        2 => Just(Step::Read),
        2 => Just(Step::Disconnect),
        2 => (0usize..6).prop_map(|concurrent_writes| Step::Reconnect { concurrent_writes }),
    ]
}

/// An operation as the test drives it.
struct Driven {
    id: String,
    progress: u8,
    finished: bool,
}

/// Raises the progress of an unfinished operation `i` (mod the count) to `progress` or
/// more, moving it to `running`.
async fn advance(server: &TestServer, ops: &mut [Driven], i: usize, progress: u8) {
    if ops.is_empty() {
        return;
    }
    let len = ops.len();
    let o = &mut ops[i % len];
    if o.finished {
        return;
    }
    o.progress = o.progress.max(progress);
    let body = json!({"status": "running", "progress": o.progress});
    server.patch(&o.id, body, StatusCode::OK).await;
}

/// The store's history of project `p` under `filter`, rendered as GET renders it.
async fn history(server: &TestServer, filter: &ListFilter) -> Vec<(u64, Value)> {
    let backfill = server
        .state
        .store
        .events_since("p", 0, 100_000)
        .await
        .unwrap();
    assert_eq!(backfill.horizon, 0);
    backfill
        .changes
        .iter()
        .filter(|c| filter.matches(&c.operation))
        .map(|c| {
            let out = OperationOut::from((*c.operation).clone());
            (c.event_seq, serde_json::to_value(out).unwrap())
        })
        .collect()
}

async fn resume_case(query_filter: Option<&'static str>, steps: Vec<Step>) {
    let server = TestServer::start().await;
    server.store.delay_backfills(Duration::from_millis(10));
    let mut filter = ListFilter {
        project_id: "p".into(),
        ..ListFilter::default()
    };
    match query_filter {
        Some("kind=vm") => filter.kind = Some(Kind::Vm),
        Some("status=running") => filter.status = Some(Status::Running),
        _ => {}
    }
    let query = match query_filter {
        Some(f) => format!("project_id=p&{f}"),
        None => "project_id=p".to_owned(),
    };
    let mut ops: Vec<Driven> = Vec::new();
    let mut received: Vec<(u64, Value)> = Vec::new();
    // Last-Event-ID 0 on the first connect: replay from the start of the history.
    let mut last_id = 0;
    let mut conn = Some(SseStream::open(&server, &query, Some(last_id)).await);
    let mut record = |events: Vec<SseEvent>, last_id: &mut u64| {
        for e in events {
            assert_eq!(e.event, "operation", "unexpected {e:?}");
            *last_id = e.id.unwrap();
            received.push((*last_id, e.data));
        }
    };
    for step in steps {
        match step {
            Step::Create {
                other_project,
                kind,
            } => {
                let project = if other_project { "q" } else { "p" };
                let op = server.create(project, KINDS[kind], "r-1").await;
                if !other_project {
                    ops.push(Driven {
                        id: op["id"].as_str().unwrap().to_owned(),
                        progress: 0,
                        finished: false,
                    });
                }
            }
            Step::Progress { op, progress } => advance(&server, &mut ops, op, progress).await,
            Step::Finish { op } => {
                let Some(len) = (!ops.is_empty()).then_some(ops.len()) else {
                    continue;
                };
                let o = &mut ops[op % len];
                if !o.finished {
                    o.finished = true;
                    server
                        .patch(&o.id, json!({"status": "done"}), StatusCode::OK)
                        .await;
                }
            }
            Step::Read => {
                if let Some(stream) = conn.as_mut() {
                    let (events, ended) = drain(stream, Duration::from_millis(15)).await;
                    record(events, &mut last_id);
                    if ended {
                        conn = None;
                    }
                }
            }
            // Whatever the server sent and the client did not read yet is lost with
            // the connection; the resume must deliver it again.
            Step::Disconnect => conn = None,
            Step::Reconnect { concurrent_writes } => {
                if conn.is_none() {
                    let writes = async {
                        for i in 0..concurrent_writes {
                            let progress = u8::try_from(i).unwrap();
                            advance(&server, &mut ops, i, progress).await;
                        }
                    };
                    let (stream, ()) =
                        tokio::join!(SseStream::open(&server, &query, Some(last_id)), writes);
                    conn = Some(stream);
                }
            }
        }
    }
    let expected = history(&server, &filter).await;
    let mut stream = match conn {
        Some(s) => s,
        None => SseStream::open(&server, &query, Some(last_id)).await,
    };
    let target = expected.last().map_or(0, |e| e.0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while last_id < target && tokio::time::Instant::now() < deadline {
        let (events, ended) = drain(&mut stream, Duration::from_millis(50)).await;
        record(events, &mut last_id);
        assert!(!ended, "the stream ended");
    }
    // Nothing beyond the history either.
    let (extra, _) = drain(&mut stream, Duration::from_millis(50)).await;
    record(extra, &mut last_id);
    assert_eq!(received, expected);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 32,
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    })]

    /// Random writes interleaved with random disconnects and reconnects with
    /// Last-Event-ID: the client's events are the store's history for the filter,
    /// each exactly once, in order, each as GET rendered it at that version.
    #[test]
    fn a_resumed_watch_sees_every_change_exactly_once(
        filter in prop_oneof![Just(None), Just(Some("kind=vm")), Just(Some("status=running"))],
        steps in proptest::collection::vec(step(), 5..40),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), resume_case(filter, steps))
                .await
                .expect("the case took longer than a minute");
        });
    }
}

/// Event ids carry the store's epoch. An id of another epoch (a client that watched the
/// store before it was restored or copied) gets a reset, even when its seq exists here:
/// the same seq may name another change. A bare seq is read in the current epoch.
/// Without the epoch check, the other-epoch resume below would replay from seq 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_from_another_epoch_gets_a_reset_and_a_bare_seq_resumes() {
    let server = TestServer::start().await;
    let epoch = server.state.store.epoch().to_owned();
    assert!(!epoch.is_empty() && !epoch.contains('-'), "{epoch}");
    let first = server.create("p", "vm", "vm-1").await; // event 1
    let second = server.create("p", "vm", "vm-2").await; // event 2

    let mut stream =
        SseStream::open_raw(&server, "project_id=p", Some(&format!("{epoch}-0"))).await;
    let (events, _) = drain(&mut stream, Duration::from_millis(300)).await;
    let got: Vec<(Option<&str>, Option<u64>, &Value)> = events
        .iter()
        .map(|e| (e.epoch.as_deref(), e.id, &e.data))
        .collect();
    assert_eq!(
        got,
        [
            (Some(epoch.as_str()), Some(1), &first),
            (Some(epoch.as_str()), Some(2), &second)
        ]
    );

    let other = if epoch == "0123456789abcdef" {
        "fedcba9876543210"
    } else {
        "0123456789abcdef"
    };
    let mut stream =
        SseStream::open_raw(&server, "project_id=p", Some(&format!("{other}-1"))).await;
    let Next::Event(reset) = stream.next(Duration::from_secs(5)).await else {
        panic!("no reset event")
    };
    assert_eq!(
        (reset.event.as_str(), reset.epoch.as_deref(), reset.id),
        ("reset", Some(epoch.as_str()), Some(2))
    );
    assert!(
        reset.data["message"]
            .as_str()
            .unwrap()
            .contains("another epoch"),
        "{}",
        reset.data
    );
    let (events, _) = drain(&mut stream, Duration::from_millis(300)).await;
    assert!(
        events.is_empty(),
        "nothing replayed after the reset: {events:?}"
    );

    let mut stream = SseStream::open_raw(&server, "project_id=p", Some("1")).await;
    let (events, _) = drain(&mut stream, Duration::from_millis(300)).await;
    let got: Vec<(Option<u64>, &Value)> = events.iter().map(|e| (e.id, &e.data)).collect();
    assert_eq!(got, [(Some(2), &second)]);

    for bad in ["-1", "x_y-1", "abc-", "ABC-1"] {
        let response = server
            .http
            .get(format!("{}/v1/operations/watch?project_id=p", server.base))
            .header("last-event-id", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// Another process's change reaches the feed named only. A watch of its project reads
/// the history from just before it and streams it whole, as the change left the
/// operation; a named change of another project costs the watch no read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_named_on_the_feed_is_streamed_whole_from_the_history() {
    let db = opsd_store_suite::TestDb::new().await;
    let (feed, _) = broadcast::channel::<FeedChange>(16);
    let store = Arc::new(CountingStore::with_feed(db.open().await, feed.clone()));
    let new = |project: &str| {
        opsd_domain::NewOperation::new(project, Kind::Vm, opsd_domain::OpType::Create, "vm-1")
    };
    let other = store.create(new("other")).await.unwrap().operation;
    let op = store.create(new("p")).await.unwrap().operation;
    let running = opsd_domain::Patch {
        status: Some(Status::Running),
        ..opsd_domain::Patch::default()
    };
    store.update(op.id, running, None).await.unwrap();
    // The store's history, as a resuming watch would read it: the two changes of `p`.
    let history = store.events_since("p", 0, 10).await.unwrap().changes;
    let [created, ran] = &history[..] else {
        panic!("{history:?}")
    };
    let metrics = Metrics::new();
    let filter = ListFilter {
        project_id: "p".into(),
        ..ListFilter::default()
    };
    let (_stop, stopped) = watch::channel(false);
    let dyn_store: Arc<dyn Store> = store.clone();
    let mut watching = Box::pin(stream(dyn_store, filter, Start::Now, stopped, &metrics));
    let reads = store.reads();
    let named = |seq, id, project: &str| FeedChange::Named {
        event_seq: seq,
        id,
        project_id: project.into(),
    };
    // Seqs 1 and 2 are the creations, 3 the move to running.
    assert_eq!((created.event_seq, ran.event_seq), (2, 3));
    feed.send(named(1, other.id, "other")).unwrap();
    feed.send(named(2, op.id, "p")).unwrap();
    feed.send(named(3, op.id, "p")).unwrap();
    for expected in [created, ran] {
        let item = tokio::time::timeout(Duration::from_secs(5), watching.next())
            .await
            .expect("the named change was not streamed");
        assert_eq!(
            item,
            Some(opsd_server::background::watch::WatchItem::Change(
                expected.clone()
            ))
        );
    }
    // One read of the history covered both changes of `p`; the other project's cost
    // none.
    assert_eq!(store.reads(), reads + 1);
}

/// Watch streams on a project that another process writes (PostgreSQL; skipped on
/// SQLite, which has one process) read nothing from the store: they want their project
/// whole, and the feed reads its changes whole once for all of them. Without that, each
/// stream would go back to the history for every batch of the other process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_on_a_project_another_process_writes_share_one_read_of_its_changes() {
    if opsd_store_suite::backend() != opsd_store_suite::TestBackend::Postgres {
        eprintln!("skipped: one process only on SQLite");
        return;
    }
    let db = opsd_store_suite::TestDb::new().await;
    let here = Arc::new(CountingStore::new(db.open().await));
    let other = db.open().await;
    let metrics = Metrics::new();
    let (_stop, stopped) = watch::channel(false);
    let mut streams: Vec<_> = (0..3)
        .map(|_| {
            let filter = ListFilter {
                project_id: "p".into(),
                ..ListFilter::default()
            };
            let dyn_store: Arc<dyn Store> = here.clone();
            Box::pin(stream(
                dyn_store,
                filter,
                Start::Now,
                stopped.clone(),
                &metrics,
            ))
        })
        .collect();
    let reads = here.reads();
    let mut created = Vec::new();
    for i in 0..10 {
        let new = opsd_domain::NewOperation::new(
            "p",
            Kind::Vm,
            opsd_domain::OpType::Create,
            format!("vm-{i}"),
        );
        created.push(other.create(new).await.unwrap().operation.id);
    }
    for watching in &mut streams {
        let mut streamed = Vec::new();
        while streamed.len() < created.len() {
            let item = tokio::time::timeout(Duration::from_secs(5), watching.next())
                .await
                .expect("another process's change was not streamed");
            match item {
                Some(opsd_server::background::watch::WatchItem::Change(c)) => {
                    streamed.push(c.operation.id)
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(streamed, created, "every change once, in commit order");
    }
    assert_eq!(here.reads(), reads, "the streams read the store themselves");
}
