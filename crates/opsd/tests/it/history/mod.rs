//! A Jepsen-style history check (ARCHITECTURE.md, "Faults and what opsd promises"):
//! concurrent clients record every call and its answer while a nemesis kills replicas
//! with `-9`, fills the disk (SQLite), restarts PostgreSQL and black-holes or cuts its
//! connections (through opsd-proxy); then the checker (`check.rs`) verifies the whole
//! history against the final database and what every watch stream delivered.
//!
//! Short by default (`scripts/test`); `OPSD_HISTORY_SECONDS=600` runs longer. The
//! checker's own tests (`self_test.rs`) and the planting of every bug of `plant.rs` in
//! the recorded history show that it fails when a bug is there.

mod check;
mod clients;
mod nemesis;
mod plant;
mod record;
mod self_test;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use opsd_store_suite::{TestBackend, backend};

use check::check;
use clients::Shared;
use nemesis::{Fault, Replicas, SmallDisk, Targets};
use record::{History, Kind, Outcome};

/// Concurrent writers and watchers.
const WRITERS: usize = 4;
const WATCHERS: usize = 2;

/// How long the nemesis runs: `OPSD_HISTORY_SECONDS`, 30 s by default.
fn duration() -> Duration {
    let secs = std::env::var("OPSD_HISTORY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_sqlite_under_kill_9_and_a_full_disk() {
    if backend() != TestBackend::Sqlite {
        eprintln!("skipping the SQLite history run: OPSD_TEST_STORE is not sqlite");
        return;
    }
    let disk = SmallDisk::mount();
    let holder = tempfile::tempdir().unwrap();
    let data = match &disk {
        Some(d) => d.path().join("data"),
        None => {
            eprintln!("history on SQLite: cannot mount a tmpfs here; no disk-full faults");
            holder.path().join("data")
        }
    };
    std::fs::create_dir_all(&data).unwrap();
    let mut replicas = Replicas::start(vec![data], Vec::new());
    let mut targets = Targets {
        replicas: &mut replicas,
        disk: disk.as_ref(),
        proxy: None,
        pg_dir: None,
        pg_ha: None,
        resumed_after: None,
    };
    run(&mut targets, &[Fault::Kill9, Fault::DiskFull]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_postgres_under_kill_9_restarts_blackholes_and_cuts() {
    if !crate::replicas::cluster::postgres_or_skip("history_on_postgres") {
        return;
    }
    // A private cluster: restarting the suite's shared one would break the tests beside.
    let pg = crate::replicas::pg_restart::PrivatePg::start();
    let authority = pg
        .url
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = opsd_proxy::Proxy::start(opsd_proxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: authority.parse().unwrap(),
        rtt: Duration::ZERO,
        control: None,
    })
    .unwrap();
    let url = pg.url.replacen(&authority, &proxy.addr().to_string(), 1);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let store = vec![
        "--database-url".to_owned(),
        url,
        "--db-pool-size".to_owned(),
        "6".to_owned(),
    ];
    let mut replicas = Replicas::start(dirs.iter().map(|d| d.path().to_owned()).collect(), store);
    let mut targets = Targets {
        replicas: &mut replicas,
        disk: None,
        proxy: Some(&proxy),
        pg_dir: Some(pg.dir.path()),
        pg_ha: None,
        resumed_after: None,
    };
    run(
        &mut targets,
        &[
            Fault::Kill9,
            Fault::Blackhole,
            Fault::RestartPostgres,
            Fault::Cut,
        ],
    )
    .await;
}

/// PostgreSQL failover (docs/high-availability.md): a primary and a synchronous
/// standby (`scripts/pg-ha`), two replicas on one multi-host URL with
/// `target_session_attrs=read-write`; the primary is killed, the standby promoted and
/// its `synchronous_standby_names` cleared (the recipe for a primary gone for good).
/// Writes must resume on every replica within 10 s of the promotion, and the whole
/// history must check. With `OPSD_FAILOVER_WITHOUT_RECIPE=1` the standby is promoted
/// without the recipe: every commit then waits for a standby that no longer exists,
/// and this test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_through_a_postgres_failover() {
    if !crate::replicas::cluster::postgres_or_skip("history_through_a_postgres_failover") {
        return;
    }
    let pair = tempfile::tempdir().unwrap();
    let url = nemesis::pg_ha(pair.path(), "start").await;
    let _stop = StopPair(pair.path().to_owned());
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let store = vec![
        "--database-url".to_owned(),
        url,
        "--db-pool-size".to_owned(),
        "6".to_owned(),
    ];
    let mut replicas = Replicas::start(dirs.iter().map(|d| d.path().to_owned()).collect(), store);
    let mut targets = Targets {
        replicas: &mut replicas,
        disk: None,
        proxy: None,
        pg_dir: None,
        pg_ha: Some(pair.path()),
        resumed_after: None,
    };
    run(&mut targets, &[Fault::Failover]).await;
    let resumed = targets.resumed_after.expect("the failover happened");
    eprintln!("failover: writes acknowledged by every replica {resumed:?} after the promotion");
    assert!(
        resumed <= Duration::from_secs(10),
        "writes resumed {resumed:?} after the promotion"
    );
}

/// Stops the primary/standby pair (whatever of it runs) and deletes it when dropped.
struct StopPair(std::path::PathBuf);

impl Drop for StopPair {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg-ha"))
                .arg("destroy")
                .env("OPSD_PG_DIR", &self.0)
                .status();
    }
}

/// Runs the clients and the nemesis, heals, reads the final state and checks.
async fn run(targets: &mut Targets<'_>, faults: &[Fault]) {
    let key = targets.replicas.admin_key();
    let bases = (0..targets.replicas.len())
        .map(|i| targets.replicas.base(i))
        .collect();
    let shared = Arc::new(Shared {
        bases: RwLock::new(bases),
        key,
        calls: Mutex::new(Vec::new()),
        stop: Default::default(),
        started: Instant::now(),
    });
    targets.replicas.shared = Some(shared.clone());
    let head = Arc::new(Mutex::new(None));
    let writers: Vec<_> = (0..WRITERS)
        .map(|c| tokio::spawn(clients::writer(shared.clone(), c)))
        .collect();
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|w| tokio::spawn(clients::watcher(shared.clone(), head.clone(), w as u64)))
        .collect();

    let injected = nemesis::run(targets, faults, Duration::from_secs(4), duration()).await;
    shared.stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    // Every abandoned lease expires (2 s leases, expiry within about a second): then
    // the final state no longer changes.
    let base = targets.replicas.base(0).unwrap();
    await_ready(&base).await;
    await_no_lease(&shared.key, &base).await;
    let ops = clients::final_state(&shared.key, &base).await;
    let last = last_seq(&ops);
    *head.lock().unwrap() = Some(last);
    let mut watches = Vec::new();
    for w in watchers {
        let seen = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("every watch stream catches up with the final head")
            .unwrap();
        watches.push(seen.into_iter().filter(|s| s.seq <= last).collect());
    }
    let history = History {
        calls: std::mem::take(&mut *shared.calls.lock().unwrap()),
        watches,
        ops,
    };

    let anomalies = check(&history);
    let summary = summarize(&history);
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &history.calls {
        match &c.outcome {
            Outcome::Unknown(why) => {
                *unknown.entry(why.get(..40).unwrap_or(why)).or_default() += 1;
            }
            Outcome::Refused { code, .. } => *refused.entry(code.as_str()).or_default() += 1,
            _ => {}
        }
    }
    eprintln!(
        "history: {} calls ({summary:?}), {} operations, {} events, watches {:?}; \
         faults {injected:?}; outcomes unknown to the client {unknown:?}; refusals {refused:?}; anomalies {}",
        history.calls.len(),
        history.ops.len(),
        last,
        history.watches.iter().map(Vec::len).collect::<Vec<_>>(),
        anomalies.len()
    );
    if !anomalies.is_empty() {
        eprintln!("{}", targets.replicas.log_tails());
    }
    assert!(anomalies.is_empty(), "anomalies: {anomalies:#?}");
    // The run exercised what it checks…
    for kind in ["create ok", "update ok", "claim granted", "heartbeat ok"] {
        assert!(
            summary.get(kind).is_some_and(|n| *n > 0),
            "no {kind} in {summary:?}"
        );
    }
    assert!(injected.values().sum::<usize>() > 0, "no fault injected");
    // … and the checker catches each bug planted in this very history.
    let mut planted = 0;
    for bug in plant::BUGS {
        if let Some(doctored) = plant::plant(&history, bug) {
            planted += 1;
            let found = check(&doctored);
            assert!(
                found.iter().any(|a| a.kind == bug.catches),
                "planted {:?}; the checker found {found:?}",
                bug.name
            );
        }
    }
    assert!(
        planted >= plant::BUGS.len() - 1,
        "only {planted} bugs could be planted"
    );
}

fn last_seq(ops: &[record::FinalOp]) -> u64 {
    ops.iter()
        .flat_map(|o| o.events.iter().map(|e| e.seq))
        .max()
        .unwrap_or(0)
}

/// Waits until `base` is ready (the writer and the database back after the faults).
async fn await_ready(base: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} not ready 60 s after the faults"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until no lease is held (`opsd_leases_held` is 0), then a moment more for the
/// last expiry's event to be committed everywhere.
async fn await_no_lease(key: &str, base: &str) {
    let http = crate::replicas::cluster::client(key);
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::process::metric(&http, base, "opsd_leases_held").await != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "leases still held 60 s after the run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Calls by kind and outcome.
fn summarize(h: &History) -> BTreeMap<&'static str, usize> {
    let mut s = BTreeMap::new();
    for c in &h.calls {
        let kind = match (&c.kind, &c.outcome) {
            (Kind::Create { .. }, Outcome::Ok(_)) => "create ok",
            (Kind::Update { .. }, Outcome::Ok(_)) => "update ok",
            (Kind::Claim, Outcome::Ok(b)) if !b.is_null() => "claim granted",
            (Kind::Claim, Outcome::Ok(_)) => "claim empty",
            (Kind::Heartbeat { .. }, Outcome::Ok(_)) => "heartbeat ok",
            (Kind::Finish { .. }, Outcome::Ok(_)) => "finish ok",
            (Kind::Cancel { .. }, Outcome::Ok(_)) => "cancel ok",
            (_, Outcome::Refused { .. }) => "refused",
            (_, Outcome::Unknown(_)) => "unknown",
            (_, Outcome::ServerError { .. }) => "server error",
        };
        *s.entry(kind).or_default() += 1;
    }
    s
}
