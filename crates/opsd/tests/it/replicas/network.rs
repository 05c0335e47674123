//! Network faults between opsd and PostgreSQL (ARCHITECTURE.md, "Faults and what opsd
//! promises"): the database black-holed and its connections cut through opsd-bench's
//! proxy, and the answer to a COMMIT lost (a test-only fault point inside opsd: a byte
//! proxy cannot aim at that moment).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use opsd_proxy::{Proxy, ProxyConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::cluster::{Cluster, call, get, postgres_or_skip};
use super::load::{Load, assert_all_present};
use crate::process::Opsd;

/// The request timeout the processes under test run with.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A fresh test database's URL, and the `host:port` of its server.
fn test_database() -> (String, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let args = opsd_store_suite::process_store_args(dir.path());
    let url = args[1].clone();
    let authority = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("host:port in the test database URL");
    let addr = authority.parse().expect("a numeric host:port");
    (url, addr)
}

/// A proxy in front of `upstream` without delay, for its faults.
fn proxy_to(upstream: SocketAddr) -> Proxy {
    Proxy::start(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        rtt: Duration::ZERO,
        control: None,
    })
    .expect("start the proxy")
}

/// GET /readyz: its status and how long it took to answer.
async fn readyz(client: &reqwest::Client, base: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let resp = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("/readyz answers");
    (resp.status(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_database_gets_timely_503s_and_everything_recovers_by_itself() {
    if !postgres_or_skip("a_blackholed_database_gets_timely_503s_and_everything_recovers") {
        return;
    }
    let (url, upstream) = test_database();
    let proxy = proxy_to(upstream);
    let url = url.replacen(&upstream.to_string(), &proxy.addr().to_string(), 1);
    let timeout = format!("{}s", REQUEST_TIMEOUT.as_secs());
    let cluster = Cluster::start_on(&url, 2, &["--request-timeout", &timeout]);
    let client = cluster.client();
    let load = Load::start(&client, &cluster.bases, 3, "blackholed");
    load.until(Duration::from_secs(60), "100 writes acknowledged", |l| {
        l.acked_count() >= 100
    })
    .await;

    // Traffic held without a reset: nothing tells TCP the database is gone.
    proxy.blackhole();
    for base in &cluster.bases {
        let (status, took) = readyz(&client, base).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{base}/readyz");
        assert!(took < Duration::from_secs(5), "/readyz took {took:?}");
    }
    // A write and a read sent now are answered 503 with Retry-After, within the
    // request timeout (plus slack for a loaded machine), never left hanging.
    for base in &cluster.bases {
        for req in [
            client.post(format!("{base}/v1/operations")).json(
                &json!({"project_id": "blackholed", "kind": "vm", "type": "update",
                              "resource_id": "probe", "request_id": format!("probe-{base}")}),
            ),
            client.get(format!("{base}/v1/operations?project_id=blackholed")),
        ] {
            let started = Instant::now();
            let resp = req.send().await.expect("an answer, not a hang");
            let took = started.elapsed();
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(resp.headers().contains_key("retry-after"));
            assert!(
                took <= REQUEST_TIMEOUT + Duration::from_secs(3),
                "answered after {took:?}"
            );
        }
    }
    let during: Vec<_> = (0..2).map(|r| load.answers(r)).collect();

    // Traffic flows again: writes resume on both replicas without any restart.
    proxy.flow();
    let (a, b) = (load.answers(0).ok, load.answers(1).ok);
    load.until(
        Duration::from_secs(60),
        "both replicas acknowledge 30 more writes after the blackhole",
        |l| l.answers(0).ok >= a + 30 && l.answers(1).ok >= b + 30,
    )
    .await;
    for base in &cluster.bases {
        let deadline = Instant::now() + Duration::from_secs(30);
        while readyz(&client, base).await.0 != StatusCode::OK {
            assert!(Instant::now() < deadline, "{base} never became ready again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Every connection cut at once, under load: the writes in flight are answered
    // (or 503), and the replicas reconnect by themselves.
    let cut = proxy.cut();
    let (a, b) = (load.answers(0).ok, load.answers(1).ok);
    load.until(
        Duration::from_secs(60),
        "both replicas acknowledge 30 more writes after the cut",
        |l| l.answers(0).ok >= a + 30 && l.answers(1).ok >= b + 30,
    )
    .await;
    let answers: Vec<_> = (0..2).map(|r| load.answers(r)).collect();
    let acked = load.stop().await;
    eprintln!(
        "blackhole and cut ({cut} connections): {} changes acknowledged; answers during \
         the blackhole {during:?}; in all {answers:?}",
        acked.len()
    );
    for (r, ans) in answers.iter().enumerate() {
        assert!(
            ans.wrong.is_empty() && ans.no_answer == 0,
            "replica {r} answered something other than 2xx or 503: {ans:?}"
        );
        assert!(
            during[r].unavailable > 0,
            "replica {r} answered 503s: {ans:?}"
        );
    }
    assert_all_present(&client, cluster.base(0), &acked).await;
    assert_all_present(&client, cluster.base(1), &acked).await;
}

/// One process with the fault hooks on, on its own schema of the suite's cluster.
fn start_with_fault_hooks(data: &std::path::Path) -> Opsd {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opsd"));
    command.env("OPSD_FAULT_HOOKS", "1");
    let store = opsd_store_suite::process_store_args(data);
    Opsd::spawn_as(
        command,
        data,
        &store,
        std::process::Stdio::inherit(),
        &[],
        data,
    )
}

async fn arm(client: &reqwest::Client, base: &str, fault: &str) {
    call(
        client.post(format!("{base}/debug/faults/postgres-writer/{fault}")),
        StatusCode::NO_CONTENT,
    )
    .await;
}

fn create_body(request_id: &str) -> Value {
    json!({"project_id": "lost-commit", "kind": "vm", "type": "update",
           "resource_id": request_id, "request_id": request_id})
}

/// With the answer to COMMIT lost, opsd asks the database whether the batch committed
/// (`pg_xact_status` of its transaction, on another connection) and answers each write
/// as it happened; only when it cannot find out does it answer `outcome_unknown`, and
/// that write is then there exactly once. Without the check (`outcome::settle`
/// answering "unavailable" every time) the first create below gets 503 and this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_was_lost_is_answered_as_it_happened() {
    if !postgres_or_skip("a_commit_whose_answer_was_lost_is_answered_as_it_happened") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let opsd = start_with_fault_hooks(data.path());
    let client = super::cluster::client(&opsd.admin_key);
    let base = opsd.base.clone();
    let ops = format!("{base}/v1/operations");

    // A create whose COMMIT answer is lost: it committed, so it is acknowledged.
    arm(&client, &base, "lose-commit").await;
    let created = call(
        client.post(&ops).json(&create_body("lost-1")),
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&client, &base, &id).await["version"], 1);
    // Its retry replays it (200, the same operation): it was written once.
    let replay = call(
        client.post(&ops).json(&create_body("lost-1")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(replay["id"], created["id"]);

    // An update with If-Match whose COMMIT answer is lost: acknowledged at v2.
    arm(&client, &base, "lose-commit").await;
    let updated = call(
        client
            .patch(format!("{ops}/{id}"))
            .header("if-match", "\"1\"")
            .json(&json!({"status": "running", "progress": 10})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["version"], 2);
    let stored = get(&client, &base, &id).await;
    assert_eq!(
        (stored["version"].clone(), stored["progress"].clone()),
        (json!(2), json!(10))
    );

    // The connection cut the moment COMMIT left: the server usually aborts (it cannot
    // send its answers), but whichever happened, the answer says so. A 503
    // `unavailable` means not written (the retry creates it: 201); a 201 means written
    // (the retry replays it: 200).
    arm(&client, &base, "cut-after-commit").await;
    let first = client
        .post(&ops)
        .json(&create_body("cut-1"))
        .send()
        .await
        .unwrap();
    let first_status = first.status();
    let first_body: Value = first.json().await.unwrap();
    let retried = match first_status {
        StatusCode::CREATED => StatusCode::OK,
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(first_body["code"], "unavailable", "{first_body}");
            StatusCode::CREATED
        }
        other => panic!("cut after COMMIT answered {other}: {first_body}"),
    };
    eprintln!("cut after COMMIT was sent: answered {first_status}");
    call(client.post(&ops).json(&create_body("cut-1")), retried).await;

    // The outcome cannot be found out: 503 `outcome_unknown` with Retry-After. The
    // client re-reads by retrying with its request_id: the write did commit, once.
    arm(&client, &base, "lose-commit-unknowable").await;
    let resp = client
        .post(&ops)
        .json(&create_body("lost-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "outcome_unknown", "{body}");
    let replay = call(
        client.post(&ops).json(&create_body("lost-2")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(replay["request_id"], "lost-2");
    let listed = call(
        client.get(format!("{ops}?project_id=lost-commit")),
        StatusCode::OK,
    )
    .await;
    let items = listed["items"].as_array().expect("a list of operations");
    assert_eq!(items.len(), 3, "{listed}");

    // And writes go on normally afterwards.
    call(
        client.post(&ops).json(&create_body("after")),
        StatusCode::CREATED,
    )
    .await;
}
