//! Supervision, seen from outside the real binary (ARCHITECTURE.md, "Faults and what
//! opsd promises"): with the test-only fault hooks on (`OPSD_FAULT_HOOKS=1`), a panic is
//! injected into every long-lived worker; each is restarted and counted, and writes work
//! again without restarting opsd (without the supervisor the writer stays dead and this
//! test fails). A worker that keeps panicking makes opsd exit non-zero. A log that
//! cannot be written (`/dev/full`) is counted, never takes a request down.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opsd_store_suite::{TestBackend, backend};
use serde_json::{Value, json};

use crate::process::{Opsd, metric};

fn start_with_fault_hooks(data: &std::path::Path, log: impl Into<Stdio>) -> Opsd {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opsd"));
    command.env("OPSD_FAULT_HOOKS", "1");
    let store = opsd_store_suite::process_store_args(data);
    Opsd::spawn_as(command, data, &store, log, &["--retention", "1h"], data)
}

/// Every long-lived worker of a process on the backend under test.
fn workers() -> &'static [&'static str] {
    match backend() {
        TestBackend::Sqlite => &[
            "sqlite-writer",
            "sqlite-checkpoint",
            "wait-dispatcher",
            "lease-expiry",
            "retention",
        ],
        TestBackend::Postgres => &[
            "postgres-writer",
            "postgres-pump",
            "postgres-listener",
            "wait-dispatcher",
            "lease-expiry",
            "retention",
        ],
    }
}

fn create_body(i: usize) -> Value {
    json!({
        "project_id": "supervised",
        "kind": "vm",
        "type": "create",
        "resource_id": format!("vm-{i}"),
    })
}

/// `opsd_worker_restarts_total{worker="…"}` of `worker`, 0 while it never restarted.
fn restarts(metrics: &str, worker: &str) -> u64 {
    let prefix = format!("opsd_worker_restarts_total{{worker=\"{worker}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A create answers 201, or a 503 with Retry-After while the writer restarts; never a
/// 500 or a dropped connection.
async fn create(client: &reqwest::Client, base: &str, i: usize) -> bool {
    let resp = client
        .post(format!("{base}/v1/operations"))
        .json(&create_body(i))
        .send()
        .await
        .expect("a create got no answer");
    match resp.status().as_u16() {
        201 => true,
        503 => {
            assert!(
                resp.headers().contains_key("retry-after"),
                "503 without Retry-After"
            );
            let e: Value = resp.json().await.unwrap();
            assert_eq!(e["code"], "unavailable", "{e}");
            false
        }
        other => panic!("a create answered {other}: {}", resp.text().await.unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_any_worker_is_restarted_and_writes_work_again_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = start_with_fault_hooks(dir.path(), Stdio::null());
    let client = opsd.client();
    let base = &opsd.base;
    assert!(create(&client, base, 0).await, "the first write failed");

    // An unknown worker is a 404; each real one is armed.
    let resp = client
        .post(format!("{base}/debug/faults/no-such-worker/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    for worker in workers() {
        let resp = client
            .post(format!("{base}/debug/faults/{worker}/panic"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "arming {worker}");
    }

    // Writes (which also reach the writer's fault point) until every worker was
    // restarted and a write succeeded after that.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 1;
    loop {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let pending: Vec<_> = workers()
            .iter()
            .filter(|w| restarts(&metrics, w) == 0)
            .collect();
        i += 1;
        let written = create(&client, base, i).await;
        if pending.is_empty() && written {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s: not restarted {pending:?}, last write succeeded: {written}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ready again, and the process is the same one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        if status == 200 {
            assert_eq!(body["ready"], true, "{body}");
            assert_eq!(body["checks"]["writer"], "ok", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut opsd = opsd;
    assert!(opsd.child.try_wait().unwrap().is_none(), "opsd exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_panics_five_times_in_a_minute_makes_opsd_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let data = dir.path().join("data");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut opsd = start_with_fault_hooks(&data, log);
    let client = opsd.client();
    for _ in 0..5 {
        let resp = client
            .post(format!("{}/debug/faults/lease-expiry/panic", opsd.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    // Backoffs of 0.1 + 0.2 + 0.4 + 0.8 s, then the exit.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = opsd.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "opsd still runs 20 s after 5 panics"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "opsd exited with {status}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("worker lease-expiry panicked 5 times within 60 s"),
        "no clear message in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_is_counted_and_takes_no_request_down() {
    let dir = tempfile::tempdir().unwrap();
    // Every write to /dev/full fails with ENOSPC, like a log file on a full disk.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let opsd = Opsd::start_logging_to(dir.path(), full);
    let client = opsd.client();
    let base = &opsd.base;
    for i in 0..200 {
        assert!(create(&client, base, i).await);
        // A 404 and a 400 log too.
        let resp = client
            .get(format!("{base}/v1/operations/{}", uuid::Uuid::nil()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let resp = client
            .post(format!("{base}/v1/operations"))
            .json(&json!({"project_id": "supervised"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }
    let errors = metric(&client, base, "opsd_log_write_errors_total").await;
    assert!(
        errors.is_some_and(|n| n > 0.0),
        "no log write error counted: {errors:?}"
    );
    let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
