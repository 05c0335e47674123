//! `GET /v1/operations/{id}/wait`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::support::{TestServer, eventually};

fn wait_path(id: &str, timeout: &str) -> String {
    format!("/v1/operations/{id}/wait?timeout={timeout}")
}

/// Returns once one operation has a waiter and the store was read once since `before`:
/// the read up front, made after registering (it is also the visibility check).
async fn parked_after_one_read(server: &TestServer, before: usize) {
    eventually(
        Duration::from_secs(10),
        "the waiter to register and read once",
        || async {
            server.state.live.waiters.operations_waited_on() == 1
                && server.store.reads() == before + 1
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_released_by_the_write_and_reads_nothing_while_it_waits() {
    let server = Arc::new(TestServer::start().await);
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();

    let before = server.store.reads();
    let waiter = {
        let server = server.clone();
        let path = wait_path(&id, "30s");
        tokio::spawn(async move {
            let answer = server.call(Method::GET, &path, None, StatusCode::OK).await;
            (answer, Instant::now())
        })
    };
    parked_after_one_read(&server, before).await;
    assert_eq!(server.metric("opsd_waiters").await, Some(1.0));
    let reads = server.store.reads();

    // A change that does not finish the operation wakes the waiter, which goes back
    // to sleep without reading.
    server
        .patch(
            &id,
            json!({"status": "running", "progress": 10}),
            StatusCode::OK,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "released by a non-final change");
    // (`metric` above read the lease count: one read, before this baseline. The test's
    // key may write every project, so the PATCH reads nothing before its write.)
    assert_eq!(
        server.store.reads(),
        reads,
        "the waiting path read the store"
    );

    let patched_at = Instant::now();
    let done = server
        .patch(&id, json!({"status": "done"}), StatusCode::OK)
        .await;
    let (answer, answered_at) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter was not released")
        .unwrap();
    assert_eq!(answer, done);
    assert_eq!(answer["status"], "done");
    let latency = answered_at.duration_since(patched_at);
    assert!(
        latency < Duration::from_secs(1),
        "released {latency:?} after the write"
    );
    // Nothing: the waiting path does not read, nor do the PATCHes of a key that may
    // write every project.
    assert_eq!(
        server.store.reads(),
        reads,
        "the waiting path read the store"
    );
    assert_eq!(server.state.live.waiters.operations_waited_on(), 0);
    assert_eq!(server.metric("opsd_waiters").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_waiters_are_released_by_one_write() {
    const WAITERS: usize = 1000;
    let server = Arc::new(TestServer::start().await);
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();
    let before = server.store.reads();

    let mut waiters = JoinSet::new();
    for _ in 0..WAITERS {
        let server = server.clone();
        let path = wait_path(&id, "60s");
        waiters.spawn(async move { server.call(Method::GET, &path, None, StatusCode::OK).await });
    }
    eventually(
        Duration::from_secs(60),
        "1,000 registered waiters",
        || async { server.state.metrics.waiters.get() == WAITERS as i64 },
    )
    .await;
    // One registry entry for the operation, one read per waiter up front, then silence.
    assert_eq!(server.state.live.waiters.operations_waited_on(), 1);
    assert_eq!(server.store.reads(), before + WAITERS);

    let patched_at = Instant::now();
    server
        .patch(&id, json!({"status": "done"}), StatusCode::OK)
        .await;
    let released = tokio::time::timeout(Duration::from_secs(30), async {
        let mut answers: Vec<Value> = Vec::new();
        while let Some(answer) = waiters.join_next().await {
            answers.push(answer.unwrap());
        }
        answers
    })
    .await
    .expect("not every waiter was released");
    let elapsed = patched_at.elapsed();
    assert_eq!(released.len(), WAITERS);
    assert!(
        released
            .iter()
            .all(|a| a["status"] == "done" && a["version"] == 2)
    );
    // Nothing beyond the reads up front (the PATCH of a key for every project reads
    // nothing before its write).
    assert_eq!(
        server.store.reads(),
        before + WAITERS,
        "waiters read while waiting"
    );
    assert_eq!(server.state.live.waiters.operations_waited_on(), 0);
    eprintln!("1,000 waiters released {elapsed:?} after the write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_times_out_returns_the_current_state() {
    let server = TestServer::start().await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    let started = Instant::now();
    let answer = server
        .call(Method::GET, &wait_path(id, "1s"), None, StatusCode::OK)
        .await;
    let waited = started.elapsed();
    assert_eq!(answer, op);
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A finished operation answers at once.
    server
        .patch(
            id,
            json!({"status": "failed", "error": {"errors": [{"code": "E", "message": "m"}]}}),
            StatusCode::OK,
        )
        .await;
    let started = Instant::now();
    let answer = server
        .call(Method::GET, &wait_path(id, "2m"), None, StatusCode::OK)
        .await;
    assert_eq!(answer["status"], "failed");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a finished operation waited"
    );
    // The default timeout applies without the parameter; a done op still answers at once.
    let answer = server
        .call(
            Method::GET,
            &format!("/v1/operations/{id}/wait"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(answer["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_times_out_after_a_change_returns_that_change() {
    let server = Arc::new(TestServer::start().await);
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();
    let waiter = {
        let server = server.clone();
        let path = wait_path(&id, "2s");
        tokio::spawn(async move { server.call(Method::GET, &path, None, StatusCode::OK).await })
    };
    eventually(
        Duration::from_secs(10),
        "the waiter to register",
        || async { server.state.live.waiters.operations_waited_on() == 1 },
    )
    .await;
    // A sleeping waiter keeps no copy of the operation: the state it answers with at
    // the deadline is the change it was handed, not the version it first read.
    let running = server
        .patch(
            &id,
            json!({"status": "running", "progress": 40}),
            StatusCode::OK,
        )
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the wait did not time out")
        .unwrap();
    assert_eq!(answer, running);
    assert_eq!(answer["progress"], 40);
    assert_eq!(server.state.live.waiters.operations_waited_on(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_frees_its_waiter() {
    use tokio::io::AsyncWriteExt;

    let server = TestServer::start().await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        wait_path(id, "2m"),
        server.admin_key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the waiter to register",
        || async { server.state.metrics.waiters.get() == 1 },
    )
    .await;
    assert_eq!(server.state.live.waiters.operations_waited_on(), 1);
    // Gone long before its 2-minute timeout: the server sees the closed socket.
    drop(socket);
    eventually(Duration::from_secs(10), "the waiter to leave", || async {
        server.state.metrics.waiters.get() == 0
    })
    .await;
    assert_eq!(server.state.live.waiters.operations_waited_on(), 0);
    // And the operation can still be waited for and released as usual.
    server
        .patch(id, json!({"status": "done"}), StatusCode::OK)
        .await;
    let answer = server
        .call(Method::GET, &wait_path(id, "1s"), None, StatusCode::OK)
        .await;
    assert_eq!(answer["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_refuses_bad_timeouts_and_ids() {
    let server = TestServer::start().await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    for bad in ["121s", "3m", "30", "abc", "-1s", ""] {
        let body = server
            .call(
                Method::GET,
                &wait_path(id, bad),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(body["field"], "timeout", "{bad}: {body}");
    }
    let body = server
        .call(
            Method::GET,
            &format!("/v1/operations/{id}/wait?timeout=1s&timeout=2s"),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(body["field"], "timeout");
    let body = server
        .call(
            Method::GET,
            &format!("/v1/operations/{id}/wait?deadline=1s"),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(body["field"], "deadline");
    let missing = uuid::Uuid::now_v7();
    let body = server
        .call(
            Method::GET,
            &wait_path(&missing.to_string(), "1s"),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
    assert_eq!(body["code"], "not_found");
    server
        .call(
            Method::GET,
            &wait_path("nope", "1s"),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    // A malformed field mask on Google's wait is refused at once, before the (pending)
    // operation is waited for, not when the wait ends 120 s later.
    let path = format!(
        "/deploymentmanager/v2/projects/p/global/operations/operation-{id}/wait?timeout=120s&fields=a,("
    );
    let body = tokio::time::timeout(
        Duration::from_secs(30),
        server.call(Method::POST, &path, None, StatusCode::BAD_REQUEST),
    )
    .await
    .expect("the malformed mask was refused only after the wait");
    assert_eq!(body["error"]["errors"][0]["location"], "fields", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_waiters_and_ends_watch_streams() {
    let server = TestServer::start().await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();
    let waiter = {
        let http = server.http.clone();
        let url = format!("{}{}", server.base, wait_path(&id, "2m"));
        tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let mut stream = super::support::SseStream::open(&server, "project_id=p", None).await;
    eventually(
        Duration::from_secs(10),
        "the waiter to register",
        || async { server.state.metrics.waiters.get() == 1 },
    )
    .await;
    server.stop(Duration::from_secs(5)).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer["status"], "pending");
    assert!(matches!(
        stream.next(Duration::from_secs(5)).await,
        super::support::Next::End
    ));
}

/// Google's `operations.wait` takes the same path: one read up front (also its
/// visibility check), none while it sleeps, the finishing write hands it the operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_waiter_reads_the_store_once() {
    let server = Arc::new(TestServer::start().await);
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();
    let before = server.store.reads();
    let waiter = {
        let server = server.clone();
        let path = format!(
            "/deploymentmanager/v2/projects/p/global/operations/operation-{id}/wait?timeout=30s"
        );
        tokio::spawn(async move { server.call(Method::POST, &path, None, StatusCode::OK).await })
    };
    parked_after_one_read(&server, before).await;
    server
        .patch(&id, json!({"status": "done"}), StatusCode::OK)
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the Google waiter was not released")
        .unwrap();
    assert_eq!(answer["status"], "DONE");
    assert_eq!(server.store.reads(), before + 1, "the waiter read again");
}

/// Another process's change reaches the feed named only, without the operation: the
/// dispatcher reads the operations for their waiters and hands them over, so a finished
/// one is released without reading anything itself. It reads in batches: the changes
/// named while one read is out go into the next read together. (The store's own feed
/// is replaced, so only the named changes can wake the waiters before their deadline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_named_on_the_feed_release_their_waiters_with_batched_reads() {
    use futures_util::future::join_all;
    use opsd_domain::{Kind, NewOperation, OpType, Patch, Status};
    use opsd_server::background::{dispatcher, waiters::Waiters};
    use opsd_server::metrics::Metrics;
    use opsd_store::{FeedChange, Store};
    use tokio::sync::{broadcast, watch};

    use super::support::{CountingStore, eventually};

    const OPS: usize = 20;
    let db = opsd_store_suite::TestDb::new().await;
    let (feed, rx) = broadcast::channel(64);
    let store = Arc::new(CountingStore::with_feed(db.open().await, feed.clone()));
    let mut ops = Vec::new();
    for i in 0..OPS {
        let new = NewOperation::new("p", Kind::Vm, OpType::Create, format!("vm-{i}"));
        ops.push(store.create(new).await.unwrap().operation);
    }
    let waiters = Arc::new(Waiters::new(Arc::new(Metrics::new())));
    let (_stop, stopped) = watch::channel(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // A dispatcher begins by telling every waiter to read its operation again; one
    // that did so after the operations below were finished would release their waiters
    // before any change is named. So a probe waits for that first.
    let probe = waiters.register(uuid::Uuid::now_v7());
    let _dispatcher = dispatcher::spawn(rx, Arc::downgrade(&waiters), store.clone());
    let probed = probe.sleep(&*store, 0, deadline, stopped.clone());
    tokio::time::timeout(Duration::from_secs(10), probed)
        .await
        .expect("the dispatcher started")
        .unwrap();
    let sleeping = join_all(ops.iter().map(|op| {
        waiters
            .register(op.id)
            .sleep(&*store, op.version, deadline, stopped.clone())
    }));
    let finishing = async {
        let mut done = Vec::new();
        for op in &ops {
            let patch = Patch {
                status: Some(Status::Done),
                ..Patch::default()
            };
            done.push(store.update(op.id, patch, None).await.unwrap());
        }
        let named = |(k, op): (usize, &opsd_domain::Operation)| FeedChange::Named {
            event_seq: (OPS + 1 + k) as u64,
            id: op.id,
            project_id: "p".into(),
        };
        // The first named change starts a read, held until the other changes reached
        // the dispatcher.
        let held = store.get_many_gate.write().await;
        feed.send(named((0, &ops[0]))).unwrap();
        eventually(Duration::from_secs(10), "the first read", || async {
            store.get_many_sizes.lock().unwrap().len() == 1
        })
        .await;
        for change in ops.iter().enumerate().skip(1).map(named) {
            feed.send(change).unwrap();
        }
        eventually(
            Duration::from_secs(10),
            "the dispatcher to take them",
            || async { feed.is_empty() },
        )
        .await;
        let reads = store.reads();
        drop(held);
        (done, reads)
    };
    let (released, (done, reads)) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(sleeping, finishing)
    })
    .await
    .expect("the named changes did not release the waiters");
    let released: Vec<_> = released.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(released, done);
    assert_eq!(
        *store.get_many_sizes.lock().unwrap(),
        [1, OPS - 1],
        "one read for the first change, one for those named while it was out"
    );
    assert_eq!(
        store.reads(),
        reads + 1,
        "the waiters read nothing themselves"
    );
}
