//! A crash loop: 20 rounds of `kill -9` at a random moment under a mixed load —
//! creates, PATCHes with `If-Match`, claims, heartbeats, abandoned leases that expire,
//! retention deleting finished operations (`--retention 2s`). After every restart:
//! every acknowledged write is there (unless retention may have deleted it: finished,
//! and ended more than the retention ago), versions never go backwards, each history
//! runs 1..version without a gap, `total_count` equals the operations a full walk
//! finds, no operation was claimed twice (a doubled lease), and after the last round
//! no operation stays `running` past its lease (a lost lease).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::Opsd;

const ROUNDS: usize = 20;
const PROJECTS: [&str; 2] = ["crash-chain", "crash-work"];

#[derive(Default)]
struct Ledger {
    /// Operation id → highest acknowledged version, and whether a write that finishes
    /// it was sent (acknowledged or not: a finished operation may be deleted by
    /// retention, so only those may be missing).
    acked: HashMap<String, (u64, bool)>,
    /// Operation ids returned by a claim.
    claimed: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

fn ack(ledger: &Shared, op: &Value) {
    let id = op["id"].as_str().unwrap().to_owned();
    let version = op["version"].as_u64().unwrap();
    let mut l = ledger.lock().unwrap();
    let entry = l.acked.entry(id).or_insert((0, false));
    entry.0 = entry.0.max(version);
}

/// Called before sending a write that finishes `id`.
fn finishing(ledger: &Shared, id: &str) {
    if let Some(entry) = ledger.lock().unwrap().acked.get_mut(id) {
        entry.1 = true;
    }
}

/// Creates operations and walks each through running, progress and done with If-Match.
async fn chains(base: String, http: reqwest::Client, ledger: Shared, seed: usize) {
    for i in 0.. {
        let project = PROJECTS[i % 2];
        let body = json!({"project_id": project, "kind": "vm", "type": "update",
                          "resource_id": format!("vm-{seed}-{i}")});
        let Ok(r) = http
            .post(format!("{base}/v1/operations"))
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        let Ok(op) = r.json::<Value>().await else {
            return;
        };
        ack(&ledger, &op);
        if project == "crash-work" {
            continue; // left pending for the workers
        }
        let id = op["id"].as_str().unwrap().to_owned();
        let path = format!("{base}/v1/operations/{id}");
        for (version, patch) in [
            (1, json!({"status": "running"})),
            (2, json!({"progress": 50})),
            (3, json!({"status": "done"})),
        ] {
            if version == 3 {
                finishing(&ledger, &id);
            }
            let Ok(r) = http
                .patch(&path)
                .header("if-match", format!("\"{version}\""))
                .json(&patch)
                .send()
                .await
            else {
                return;
            };
            if r.status() != 200 {
                break;
            }
            let Ok(op) = r.json::<Value>().await else {
                return;
            };
            ack(&ledger, &op);
        }
    }
}

/// Claims work with a 1 s lease, heartbeats it, and finishes every other one; the rest
/// are abandoned and must expire to `unknown`.
async fn worker(base: String, http: reqwest::Client, ledger: Shared, seed: usize) {
    for i in 0.. {
        let claim = json!({"project_id": "crash-work", "lease_seconds": 1,
                           "worker": format!("w-{seed}")});
        let Ok(r) = http
            .post(format!("{base}/v1/operations/claim"))
            .json(&claim)
            .send()
            .await
        else {
            return;
        };
        if r.status() == 204 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let Ok(c) = r.json::<Value>().await else {
            return;
        };
        let Some(id) = c["operation"]["id"].as_str().map(str::to_owned) else {
            return;
        };
        ledger.lock().unwrap().claimed.push(id.clone());
        ack(&ledger, &c["operation"]);
        let token = c["lease_token"].as_str().unwrap().to_owned();
        let hb = json!({"lease_token": token, "progress": 10});
        let Ok(r) = http
            .post(format!("{base}/v1/operations/{id}/heartbeat"))
            .json(&hb)
            .send()
            .await
        else {
            return;
        };
        if let Ok(h) = r.json::<Value>().await
            && h["operation"].is_object()
        {
            ack(&ledger, &h["operation"]);
        }
        if i % 2 == 0 {
            let done = json!({"status": "done", "lease_token": token});
            finishing(&ledger, &id);
            let Ok(r) = http
                .patch(format!("{base}/v1/operations/{id}"))
                .json(&done)
                .send()
                .await
            else {
                return;
            };
            if let Ok(op) = r.json::<Value>().await
                && op["id"].is_string()
            {
                ack(&ledger, &op);
            }
        }
    }
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Every operation of `project`, by walking the list, checked against `total_count`.
/// Retention deletes finished operations while the walk runs, so a walk that disagrees
/// with its count is repeated (retention has nothing left to delete within a few
/// seconds of a restart, as no worker finishes anything); a disagreement that persists
/// is a wrong count.
async fn walk(http: &reqwest::Client, base: &str, project: &str) -> Vec<Value> {
    let mut last = (0, 0);
    for _ in 0..20 {
        let (all, total) = walk_once(http, base, project).await;
        if total == all.len() {
            return all;
        }
        last = (total, all.len());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!(
        "total_count of {project} is {}, a walk finds {}",
        last.0, last.1
    );
}

async fn walk_once(http: &reqwest::Client, base: &str, project: &str) -> (Vec<Value>, usize) {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            http,
            format!("{base}/v1/operations?project_id={project}&limit=100&cursor={cursor}"),
        )
        .await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["pagination"]["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => {
                let total = page["pagination"]["total_count"].as_u64().unwrap();
                return (all, total as usize);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_9_rounds_under_mixed_load_keep_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let ledger: Shared = Arc::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let started = Instant::now();
    let mut opsd = Opsd::start_with(dir.path(), Stdio::null(), &["--retention", "2s"]);
    for round in 0..ROUNDS {
        let http = opsd.client();
        let mut tasks = Vec::new();
        for s in 0..3 {
            tasks.push(tokio::spawn(chains(
                opsd.base.clone(),
                http.clone(),
                ledger.clone(),
                round * 10 + s,
            )));
        }
        for s in 0..2 {
            tasks.push(tokio::spawn(worker(
                opsd.base.clone(),
                http.clone(),
                ledger.clone(),
                round * 10 + s,
            )));
        }
        // A random moment: 300–1,300 ms into the load (no RNG crate: the clock's nanos).
        let nanos = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
        tokio::time::sleep(Duration::from_millis(300 + nanos % 1000)).await;
        opsd.kill_9();
        for t in tasks {
            t.await.unwrap();
        }
        opsd = Opsd::start_with(dir.path(), Stdio::null(), &["--retention", "2s"]);
        let http = opsd.client();
        let base = opsd.base.clone();
        let mut present = HashMap::new();
        for project in PROJECTS {
            for op in walk(&http, &base, project).await {
                present.insert(op["id"].as_str().unwrap().to_owned(), op);
            }
        }
        {
            let l = ledger.lock().unwrap();
            for (id, (version, finished)) in &l.acked {
                match present.get(id) {
                    Some(op) => {
                        let v = op["version"].as_u64().unwrap();
                        assert!(
                            v >= *version,
                            "round {round}: {id} acknowledged at {version}, found {v}"
                        );
                    }
                    // Retention may delete what finished; nothing else may vanish.
                    None => assert!(
                        *finished,
                        "round {round}: acknowledged operation {id} (v{version}) lost"
                    ),
                }
            }
            let claimed: HashSet<_> = l.claimed.iter().collect();
            assert_eq!(
                claimed.len(),
                l.claimed.len(),
                "round {round}: an operation was claimed twice"
            );
        }
        for (id, op) in &present {
            let v = op["version"].as_u64().unwrap();
            let before = seen.insert(id.clone(), v).unwrap_or(0);
            assert!(
                v >= before,
                "round {round}: {id} went back from version {before} to {v}"
            );
            let events = get(&http, format!("{base}/v1/operations/{id}/events")).await;
            if events["code"] == "not_found"
                && matches!(op["status"].as_str(), Some("done" | "failed"))
            {
                continue; // deleted by retention since the walk
            }
            let versions: Vec<u64> = events["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["version"].as_u64().unwrap())
                .collect();
            // The reaper may have moved it on since the list: 1..n without a gap, n ≥ v.
            let n = versions.len() as u64;
            assert!(
                n >= v && versions == (1..=n).collect::<Vec<_>>(),
                "round {round}: history of {id} at version {v}: {versions:?}"
            );
        }
    }
    // No lease is lost: with no worker left, every claimed operation settles (done, or
    // unknown once its 1 s lease runs out) instead of staying running.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let http = opsd.client();
    let running: Vec<_> = walk(&http, &opsd.base, "crash-work")
        .await
        .into_iter()
        .filter(|op| op["status"] == "running")
        .map(|op| op["id"].clone())
        .collect();
    assert!(
        running.is_empty(),
        "running after their leases expired: {running:?}"
    );
    let l = ledger.lock().unwrap();
    eprintln!(
        "crash loop: {ROUNDS} kill -9 rounds in {:?}; {} operations acknowledged, {} claims; \
         {} operations checked in the last round",
        started.elapsed(),
        l.acked.len(),
        l.claimed.len(),
        seen.len()
    );
    assert!(
        l.claimed.len() > ROUNDS,
        "the workers claimed too little to mean anything"
    );
}
