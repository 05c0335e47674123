//! PostgreSQL restarted under load (fast shutdown, then start on the same port), on a
//! private cluster: restarting the suite's shared one would break the tests beside it.
//! While it is down the replicas answer 503 with `Retry-After` (never 500) and `/readyz`
//! says 503; they recover by themselves; nothing acknowledged is lost; a waiter and a
//! watch stream parked across the outage carry on.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::time::Instant;

use super::cluster::{Cluster, await_metric, create, metric, patch, postgres_or_skip};
use super::load::{Load, assert_all_present};
use super::sse::{Event, Next, Watch, assert_stream, change_of, covers};

/// A PostgreSQL cluster of this test's own, run by `scripts/pg` in a temporary directory
/// (`OPSD_PG_DIR`); stopped when dropped.
pub(crate) struct PrivatePg {
    pub(crate) dir: TempDir,
    pub(crate) url: String,
}

impl PrivatePg {
    pub(crate) fn start() -> PrivatePg {
        let dir = tempfile::tempdir().unwrap();
        pg(dir.path(), "start");
        let url = pg(dir.path(), "url");
        PrivatePg { dir, url }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // No assertion here: this may run while a failing test unwinds.
        let _ = pg_command(self.dir.path(), "stop").output();
    }
}

fn pg_command(dir: &Path, command: &str) -> Command {
    let mut cmd = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg"));
    cmd.arg(command).env("OPSD_PG_DIR", dir);
    cmd
}

/// Runs `scripts/pg <command>` on the cluster in `dir`; its stdout, trimmed.
fn pg(dir: &Path, command: &str) -> String {
    let out = pg_command(dir, command)
        .env("OPSD_PG_DIR", dir)
        .output()
        .expect("run scripts/pg");
    assert!(
        out.status.success(),
        "scripts/pg {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub(crate) async fn pg_async(dir: &Path, command: &'static str) -> String {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || pg(&dir, command))
        .await
        .unwrap()
}

/// Waits (up to `bound`) until `/readyz` of `base` answers `want`.
async fn await_readyz(client: &reqwest::Client, base: &str, want: StatusCode, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let got = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base}/readyz still {got} after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client's wait: asks again after a 503 (as `Retry-After` says) or a timeout, until the
/// operation is done; when the final answer came.
async fn wait_until_done(client: reqwest::Client, base: String, id: String) -> (Instant, Value) {
    loop {
        let resp = client
            .get(format!("{base}/v1/operations/{id}/wait?timeout=60s"))
            .timeout(Duration::from_secs(90))
            .send()
            .await
            .expect("the replica answers the wait");
        let status = resp.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(resp.headers().contains_key(reqwest::header::RETRY_AFTER));
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "wait: {}",
            resp.text().await.unwrap()
        );
        let op: Value = resp.json().await.unwrap();
        if op["status"] == "done" {
            return (Instant::now(), op);
        }
    }
}

/// A client's watch: reconnects with `Last-Event-ID` whenever the stream ends or is
/// refused with 503, until `stop`; every event it received.
async fn watch_resuming(
    key: String,
    base: String,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Event>>>,
) {
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        let mut stream = match Watch::open(&key, &base, "restart", last).await {
            Ok(s) => s,
            Err(status) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "watch refused");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            match stream.next(Duration::from_millis(200)).await {
                Next::Event(e) => {
                    last = Some(e.seq);
                    out.lock().unwrap().push(e);
                }
                Next::Idle => {}
                Next::End => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_is_503_then_recovery_without_loss() {
    if !postgres_or_skip("postgres_restart_under_load_is_503_then_recovery_without_loss") {
        return;
    }
    let pg_cluster = PrivatePg::start();
    let cluster = Cluster::start_on(&pg_cluster.url, 3, &["--request-timeout", "5s"]);
    let client = cluster.client();
    let bases = cluster.bases.clone();

    // A waiter on A for an operation that will finish after the outage.
    let waited = create(&client, &bases[0], "restart-wait", "vm-w").await;
    let wid = waited["id"].as_str().unwrap().to_owned();
    patch(&client, &bases[0], &wid, json!({"status": "running"})).await;
    let mut waiter = tokio::spawn(wait_until_done(
        client.clone(),
        bases[0].clone(),
        wid.clone(),
    ));
    await_metric(&client, &bases[0], "opsd_waiters", 1.0).await;

    // A watch on B, live once it delivers a change written through B.
    let (stop_watch, events) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let watcher = tokio::spawn(watch_resuming(
        cluster.admin_key.clone(),
        bases[1].clone(),
        stop_watch.clone(),
        events.clone(),
    ));
    await_metric(&client, &bases[1], "opsd_watch_streams", 1.0).await;
    let marker = create(&client, &bases[1], "restart", "marker").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the watch on B missed a write through B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let load = Load::start(&client, &bases, 2, "restart");
    load.until(Duration::from_secs(30), "100 writes acknowledged", |l| {
        l.acked_count() >= 100
    })
    .await;

    // Down: fast shutdown.
    pg_async(pg_cluster.dir.path(), "stop").await;
    let down = Instant::now();
    for base in &bases {
        await_readyz(
            &client,
            base,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        )
        .await;
        let resp = client
            .get(format!("{base}/v1/operations/{wid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "GET while down, {base}"
        );
        assert!(resp.headers().contains_key(reqwest::header::RETRY_AFTER));
    }
    let before: Vec<usize> = (0..3).map(|r| load.answers(r).unavailable).collect();
    load.until(
        Duration::from_secs(10),
        "every replica's writers get a 503 while down",
        |l| (0..3).all(|r| l.answers(r).unavailable > before[r]),
    )
    .await;
    // Stay down a little longer: the pools, the writer and the background tasks all meet it.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(down.elapsed())).await;

    // Up again on the same port: nobody restarts the replicas.
    pg_async(pg_cluster.dir.path(), "restart").await;
    let url = pg_async(pg_cluster.dir.path(), "url").await;
    assert_eq!(url, pg_cluster.url, "restarted on the same port");
    eprintln!("PostgreSQL was down for {:?}", down.elapsed());
    let up = Instant::now();
    for base in &bases {
        await_readyz(&client, base, StatusCode::OK, Duration::from_secs(30)).await;
    }
    eprintln!(
        "every replica ready {:?} after PostgreSQL came back",
        up.elapsed()
    );
    let oks: Vec<usize> = (0..3).map(|r| load.answers(r).ok).collect();
    load.until(
        Duration::from_secs(30),
        "every replica acknowledges 30 more writes",
        |l| (0..3).all(|r| l.answers(r).ok >= oks[r] + 30),
    )
    .await;
    let answers: Vec<_> = (0..3).map(|r| load.answers(r)).collect();
    let mut acked = load.stop().await;
    eprintln!(
        "PostgreSQL restart: {} changes acknowledged; answers {answers:?}",
        acked.len()
    );
    for (r, ans) in answers.iter().enumerate() {
        assert!(
            ans.wrong.is_empty() && ans.no_answer == 0,
            "replica {r} answered other than 2xx or 503 + Retry-After: {ans:?}"
        );
    }
    assert_all_present(&client, &bases[2], &acked).await;

    // The waiter parked across the outage wakes for a write through C.
    patch(&client, &bases[2], &wid, json!({"status": "done"})).await;
    let acked_at = Instant::now();
    let Ok(waited) = tokio::time::timeout(Duration::from_secs(15), &mut waiter).await else {
        // Stop it first: the replicas go down with this test, and it would say so too.
        waiter.abort();
        panic!("the waiter on A did not see the write through C within 15 s");
    };
    let (returned, op) = waited.unwrap();
    assert_eq!(op["status"], "done");
    let late = returned.saturating_duration_since(acked_at);
    assert!(
        late <= Duration::from_secs(1),
        "the waiter on A woke {late:?} after the write"
    );

    // The watch on B has every acknowledged change, once, in commit order.
    acked.insert(change_of(&marker), marker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !covers(&events.lock().unwrap(), &acked) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_watch.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    // Writes answered 503 may have committed (the connection died during COMMIT): those
    // may be on the stream too, so it is checked for order, duplicates and coverage.
    assert_stream(&events.lock().unwrap(), &acked, false);

    // Every replica lost its connection to the change feed and counts the gap once its
    // listener is back. Changes reach a replica without it (its feed polls the store while
    // the listener is down), so the listener may reconnect after the checks above: its
    // backoff reaches 2 s, plus a connection on a busy machine.
    for base in &bases {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let gaps = metric(&client, base, "opsd_feed_gaps_total").await;
            if gaps.is_some_and(|g| g >= 1.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{base}: opsd_feed_gaps_total is {gaps:?} 20 s after a database restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
