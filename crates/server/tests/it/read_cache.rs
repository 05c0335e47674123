//! The read cache (ARCHITECTURE.md, "The read cache"): a read that starts after a write
//! was acknowledged never answers an older version, whether the write came through the
//! API or straight through the store (as another replica's change reaches the feed);
//! cached answers are the same bytes and headers as rendered ones; and a cached body is
//! only served to a caller who may see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opsd_domain::{Patch, Role};
use opsd_server::{AppState, Config};
use opsd_store_suite::{TestBackend, backend};
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::{
    TestClient, TestServer, http2_connection, id_of, new_op, op_path, unique_project,
};

/// Writes and reads in a tight loop while other tasks keep the cache full of the same
/// operation and page: every read after an acknowledgement shows that version (or a
/// later one), the GET, its ETag and the list page alike.
#[tokio::test]
async fn reads_never_go_back_behind_an_acknowledged_write() {
    let server = TestServer::start().await;
    let c = &server.client;
    let project = unique_project();
    let op = c.create(&new_op(&project)).await;
    let path = op_path(&op);
    let id: uuid::Uuid = id_of(&op).parse().unwrap();
    let running = c.patch(&op, &json!({"status": "running"})).await;
    let mut acknowledged = running["version"].as_u64().unwrap();

    // Readers racing the writes, so that entries are made (and must be dropped) while
    // changes commit.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (c, path, project, stop) = (c.clone(), path.clone(), project.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                c.get(&path, StatusCode::OK).await;
                c.list(&[("project_id", &project)], StatusCode::OK).await;
            }
        }));
    }
    for i in 0..150u32 {
        let message = format!("step {i}");
        // Half the writes through the API, half straight through the store: both reach
        // the feed before they are acknowledged.
        let version = if i % 2 == 0 {
            c.patch(&op, &json!({"status_message": message})).await["version"]
                .as_u64()
                .unwrap()
        } else {
            let patch = Patch {
                status_message: Some(message.clone()),
                ..Patch::default()
            };
            server.store.update(id, patch, None).await.unwrap().version
        };
        assert!(version > acknowledged);
        acknowledged = version;
        for _ in 0..2 {
            // The second read is the one a cache would answer.
            let got = c.get_resp(&path, StatusCode::OK).await;
            assert_eq!(got.json()["version"], acknowledged, "GET after write {i}");
            assert_eq!(got.json()["status_message"], message.as_str());
            assert_eq!(got.header("etag"), format!("\"{acknowledged}\""));
            let page = c
                .list(&[("project_id", &project)], StatusCode::OK)
                .await
                .json();
            assert_eq!(
                page["items"][0]["version"], acknowledged,
                "list after write {i}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    // The loop did exercise the cache: most of its reads were answered from it.
    let metrics = c.get_resp("/metrics", StatusCode::OK).await.text;
    let hits = counter(&metrics, "opsd_read_cache_hits_total");
    assert!(hits > 0, "no read was answered from the cache:\n{metrics}");
}

/// A new operation appears in a cached page at once, and the page's count follows.
#[tokio::test]
async fn a_cached_page_shows_a_new_operation_at_once() {
    let server = TestServer::start().await;
    let c = &server.client;
    let project = unique_project();
    for n in 1..=20u64 {
        let op = c.create(&new_op(&project)).await;
        for _ in 0..2 {
            let page = c
                .list(&[("project_id", &project), ("limit", "5")], StatusCode::OK)
                .await
                .json();
            assert_eq!(page["items"][0]["id"], op["id"]);
            assert_eq!(page["pagination"]["total_count"], n);
        }
    }
}

/// A cached answer is byte for byte a rendered one, headers included, and the same as
/// what a write answers (which `axum::Json` renders).
#[tokio::test]
async fn cached_answers_are_the_same_bytes() {
    let server = TestServer::start().await;
    let c = &server.client;
    let project = unique_project();
    let op = c.create(&new_op(&project)).await;
    let patched = c
        .patch_resp(
            &op_path(&op),
            &json!({"status": "running", "progress": 7}),
            &[],
            StatusCode::OK,
        )
        .await;
    let first = c.get_resp(&op_path(&op), StatusCode::OK).await;
    let cached = c.get_resp(&op_path(&op), StatusCode::OK).await;
    for resp in [&first, &cached] {
        assert_eq!(resp.text, patched.text);
        for h in ["content-type", "etag", "content-length"] {
            assert_eq!(resp.header(h), patched.header(h), "{h}");
        }
        let names: Vec<_> = resp.headers.keys().map(|k| k.as_str()).collect();
        let want: Vec<_> = patched.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, want, "header order");
    }
    let query = [("project_id", project.as_str()), ("limit", "1")];
    let pages = [
        c.list(&query, StatusCode::OK).await,
        c.list(&query, StatusCode::OK).await,
    ];
    assert_eq!(pages[0].text, pages[1].text);
    assert_eq!(pages[0].header("content-type"), "application/json");
    assert_eq!(pages[1].header("content-type"), "application/json");
    assert!(pages[1].headers.get("etag").is_none());
}

/// A body cached for one caller is served to another only if that one may see it.
#[tokio::test]
async fn cached_bodies_respect_the_callers_projects() {
    let server = TestServer::start().await;
    let c = &server.client;
    let project = unique_project();
    let op = c.create(&new_op(&project)).await;
    c.get(&op_path(&op), StatusCode::OK).await;
    c.get(&op_path(&op), StatusCode::OK).await;
    c.list(&[("project_id", &project)], StatusCode::OK).await;
    let elsewhere = TestClient::mint_key(&server.store, Role::Admin, &["other-project"]).await;
    let outsider = c.with_key(Some(&elsewhere));
    outsider
        .get_resp(&op_path(&op), StatusCode::NOT_FOUND)
        .await
        .assert_error("not_found", None);
    outsider
        .list(&[("project_id", &project)], StatusCode::FORBIDDEN)
        .await;
    let mine = TestClient::mint_key(&server.store, Role::Reader, &[&project]).await;
    let insider = c.with_key(Some(&mine));
    let got = insider.get(&op_path(&op), StatusCode::OK).await;
    assert_eq!(got["id"], op["id"]);
}

/// The value of an unlabelled counter in the metrics text.
pub(crate) fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Two servers on one PostgreSQL database stand for two replicas: a write through one
/// reaches the other's cache through its feed (the pump) — the test fails if the feed
/// does not invalidate (entries do not expire). SQLite has one process: skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_write_reaches_the_cache_through_the_feed() {
    let Some((a, project, replica)) = Replica::pair().await else {
        return;
    };
    let b = &replica.client;
    let op = a.client.create(&new_op(&project)).await;
    let op = a.client.patch(&op, &json!({"status": "running"})).await;
    let path = op_path(&op);
    for i in 0..20 {
        // B answers the current version twice (the second from its cache) …
        for _ in 0..2 {
            b.get(&path, StatusCode::OK).await;
            b.list(&[("project_id", &project)], StatusCode::OK).await;
        }
        // … then A changes it, and B shows the change once its feed delivered it.
        let version = a
            .client
            .patch(&op, &json!({"status_message": format!("step {i}")}))
            .await["version"]
            .as_u64()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = b.get(&path, StatusCode::OK).await;
            let page = b
                .list(&[("project_id", &project)], StatusCode::OK)
                .await
                .json();
            if got["version"] == version && page["items"][0]["version"] == version {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica B still answers version {} (page {}) 5 s after A acknowledged {version}",
                got["version"],
                page["items"][0]["version"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    replica.stop().await;
}

/// A second server on the database of `TestServer`, as another replica.
struct Replica {
    client: TestClient,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Replica {
    /// A server, a project, and a second server beside it with an admin key of the
    /// project; `None` on SQLite, which one process serves.
    async fn pair() -> Option<(TestServer, String, Replica)> {
        if backend() != TestBackend::Postgres {
            eprintln!("skipped: one process only on SQLite");
            return None;
        }
        let a = TestServer::start().await;
        let project = unique_project();
        let key = TestClient::mint_key(&a.store, Role::Admin, &[&project]).await;
        let replica = Replica::start(&a, &key).await;
        Some((a, project, replica))
    }

    async fn start(a: &TestServer, key: &str) -> Self {
        let store = a.db().open().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::from_parts(store.clone(), store, &Config::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(opsd_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Replica {
            client: TestClient::new(&base, Some(key)),
            stop,
            served,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.served.await.unwrap().unwrap();
    }
}

/// Retention on one replica deletes an operation another replica has cached: the other
/// stops serving it within about a notification's delay, although a deletion puts no
/// change on the feed (the store counts deleting transactions, and the cache compares
/// the count). Without that, the cached answer would stand until evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_deletion_reaches_the_cache() {
    let Some((a, project, replica)) = Replica::pair().await else {
        return;
    };
    let b = &replica.client;
    let op = a.client.create(&new_op(&project)).await;
    a.client.patch(&op, &json!({"status": "running"})).await;
    a.client.patch(&op, &json!({"status": "done"})).await;
    let path = op_path(&op);
    let hits = || async {
        let metrics = b.get_resp("/metrics", StatusCode::OK).await.text;
        counter(&metrics, "opsd_read_cache_hits_total")
    };
    let before = hits().await;
    b.get(&path, StatusCode::OK).await;
    b.get(&path, StatusCode::OK).await;
    assert_eq!(
        hits().await,
        before + 1,
        "the second GET is answered from the cache"
    );
    // Replica A's retention, with a cutoff after the operation ended.
    let cutoff = opsd_domain::now() + time::Duration::seconds(1);
    assert_eq!(a.store.purge_terminal(cutoff, 10).await.unwrap(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = || async {
        let response = b.request(reqwest::Method::GET, &path).send().await;
        response.expect("replica B answers").status()
    };
    while status().await != StatusCode::NOT_FOUND {
        assert!(
            Instant::now() < deadline,
            "replica B still serves an operation deleted 5 s ago"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica.stop().await;
}

/// Deployment Manager's `operations.get` is answered from the cache too (its clients
/// poll it), never behind an acknowledged write, byte for byte what a store read renders,
/// and kept apart per `selfLink` base and layout, which its body depends on; a partial
/// response (`fields`) is rendered each time. A cached operation stays hidden under
/// another project's path and from another project's key.
#[tokio::test]
async fn google_gets_are_cached_per_link_and_layout_and_follow_writes() {
    let server = TestServer::start().await;
    let c = &server.client;
    let project = unique_project();
    let op = c.create(&new_op(&project)).await;
    let id: uuid::Uuid = id_of(&op).parse().unwrap();
    let path = format!("/deploymentmanager/v2/projects/{project}/global/operations/operation-{id}");
    let op = c.patch(&op, &json!({"status": "running"})).await;
    let hits = || async {
        let metrics = c.get_resp("/metrics", StatusCode::OK).await.text;
        counter(&metrics, "opsd_read_cache_hits_total")
    };
    let before = hits().await;
    for i in 0..10 {
        // Through the API, then straight through the store (as another replica's change
        // reaches this process's feed).
        let message = format!("step {i}");
        if i % 2 == 0 {
            c.patch(&op, &json!({"status_message": message})).await;
        } else {
            let patch = Patch {
                status_message: Some(message.clone()),
                ..Patch::default()
            };
            server.store.update(id, patch, None).await.unwrap();
        }
        let read = c.get_resp(&path, StatusCode::OK).await;
        let again = c.get_resp(&path, StatusCode::OK).await;
        assert_eq!(
            read.json()["statusMessage"],
            message.as_str(),
            "after write {i}"
        );
        assert_eq!(again.text, read.text, "a cached answer is the rendered one");
        assert_eq!(again.header("content-type"), read.header("content-type"));
    }
    assert!(hits().await - before >= 10, "every second get was a hit");

    // Each link base and layout is its own entry, even when another is cached.
    let link = |r: &crate::support::Resp| r.json()["selfLink"].as_str().unwrap().to_owned();
    let elsewhere = || {
        c.request(reqwest::Method::GET, &path)
            .header("host", "ops.example:8443")
    };
    for _ in 0..2 {
        let direct = c.get_resp(&path, StatusCode::OK).await;
        assert!(
            link(&direct).starts_with("http://127.0.0.1:"),
            "{}",
            link(&direct)
        );
        let proxied = c.send(elsewhere(), StatusCode::OK).await;
        assert!(
            link(&proxied).starts_with("http://ops.example:8443/"),
            "{}",
            link(&proxied)
        );
        let compact = c
            .get_query(&path, &[("prettyPrint", "false")], StatusCode::OK)
            .await;
        assert!(!compact.text.contains('\n') && direct.text.contains('\n'));
        let whole = c.get_query(&path, &[("fields", "")], StatusCode::OK).await;
        assert_eq!(
            whole.json(),
            direct.json(),
            "an empty mask keeps everything"
        );
        let partial = c
            .get_query(&path, &[("fields", "name")], StatusCode::OK)
            .await;
        assert_eq!(partial.json(), json!({"name": format!("operation-{id}")}));
    }

    let other_project = path.replace(&project, &unique_project());
    c.get_resp(&other_project, StatusCode::NOT_FOUND).await;
    let outsider = TestClient::mint_key(&server.store, Role::Admin, &["other-project"]).await;
    c.with_key(Some(&outsider))
        .get_resp(&path, StatusCode::NOT_FOUND)
        .await;
}

/// An HTTP/2 request names its host in `:authority`, not in a `Host` header: Deployment
/// Manager's `selfLink` is built from it all the same, not from `localhost`.
#[tokio::test]
async fn google_links_name_the_host_an_http2_client_addressed() {
    let server = TestServer::start().await;
    let project = unique_project();
    let key = TestClient::mint_key(&server.store, Role::Admin, &[&project]).await;
    let op = server.client.create(&new_op(&project)).await;
    let id = id_of(&op);
    let (mut sender, addr) = http2_connection(&server.client).await;
    let path = format!("/deploymentmanager/v2/projects/{project}/global/operations/operation-{id}");
    let request = hyper::Request::get(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {key}"))
        .body(http_body_util::Full::default())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["selfLink"],
        format!("http://{addr}{path}").as_str(),
        "{json}"
    );
}
