//! Write load through every replica for the fault tests: what was acknowledged (to check
//! afterwards that it survived) and every other answer, per replica (to check that a
//! failure was a retryable 503 and never a 500).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::cluster::call;
use super::sse::change_of;

/// What one replica answered.
#[derive(Debug, Default, Clone)]
pub struct Answers {
    /// Writes acknowledged (2xx).
    pub ok: usize,
    /// 503 with `Retry-After`.
    pub unavailable: usize,
    /// Requests that got no answer (refused connection, reset, client timeout).
    pub no_answer: usize,
    /// Anything else: status and body.
    pub wrong: Vec<String>,
}

#[derive(Default)]
struct Shared {
    /// Every acknowledged change: (operation id, version) → the answer's JSON.
    acked: HashMap<(String, u64), Value>,
    answers: HashMap<usize, Answers>,
}

/// Writers running against a set of replicas.
pub struct Load {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// `per_replica` writers on each base URL, creating operations in `project` and moving
    /// every other one to running.
    pub fn start(
        client: &reqwest::Client,
        bases: &[String],
        per_replica: usize,
        project: &str,
    ) -> Load {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (r, base) in bases.iter().enumerate() {
            for w in 0..per_replica {
                let writer = Writer {
                    client: client.clone(),
                    base: base.clone(),
                    replica: r,
                    project: project.to_owned(),
                    tag: format!("r{r}w{w}"),
                    shared: shared.clone(),
                    stop: stop.clone(),
                };
                tasks.push(tokio::spawn(writer.run()));
            }
        }
        Load {
            shared,
            stop,
            tasks,
        }
    }

    /// Acknowledged changes so far.
    pub fn acked_count(&self) -> usize {
        self.shared.lock().unwrap().acked.len()
    }

    /// What replica `r` answered so far.
    pub fn answers(&self, r: usize) -> Answers {
        self.shared
            .lock()
            .unwrap()
            .answers
            .get(&r)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (up to `bound`) until `done` holds.
    pub async fn until(&self, bound: Duration, what: &str, done: impl Fn(&Load) -> bool) {
        let deadline = tokio::time::Instant::now() + bound;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "within {bound:?}: {what} (acknowledged so far: {}; answers: {:?})",
                self.acked_count(),
                (0..3).map(|r| self.answers(r)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the writers; returns every acknowledged change.
    pub async fn stop(self) -> HashMap<(String, u64), Value> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        std::mem::take(&mut self.shared.lock().unwrap().acked)
    }
}

struct Writer {
    client: reqwest::Client,
    base: String,
    replica: usize,
    project: String,
    tag: String,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Writer {
    async fn run(self) {
        let mut i = 0;
        while !self.stop.load(Ordering::Relaxed) {
            i += 1;
            let body = json!({
                "project_id": self.project,
                "kind": "vm",
                "type": "update",
                "resource_id": format!("{}-{i}", self.tag),
                "request_id": format!("{}-{i}", self.tag),
            });
            let req = self
                .client
                .post(format!("{}/v1/operations", self.base))
                .json(&body);
            let Some(op) = self.send(req).await else {
                continue;
            };
            if i % 2 == 0 {
                let id = op["id"].as_str().unwrap();
                let req = self
                    .client
                    .patch(format!("{}/v1/operations/{id}", self.base))
                    .json(&json!({"status": "running", "progress": 50}));
                self.send(req).await;
            }
        }
    }

    /// Sends one write and files its answer; the operation if it was acknowledged.
    async fn send(&self, req: reqwest::RequestBuilder) -> Option<Value> {
        let resp = req.send().await;
        let (status, retry_after, text) = match resp {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp.headers().contains_key(reqwest::header::RETRY_AFTER);
                (status, retry_after, resp.text().await.unwrap_or_default())
            }
            Err(_) => {
                self.shared
                    .lock()
                    .unwrap()
                    .answers
                    .entry(self.replica)
                    .or_default()
                    .no_answer += 1;
                // A dead replica refuses at once: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return None;
            }
        };
        let op = {
            let mut shared = self.shared.lock().unwrap();
            let shared = &mut *shared;
            let answers = shared.answers.entry(self.replica).or_default();
            if status.is_success() {
                answers.ok += 1;
                let op: Value = serde_json::from_str(&text).unwrap();
                shared.acked.insert(change_of(&op), op.clone());
                Some(op)
            } else {
                if status == StatusCode::SERVICE_UNAVAILABLE && retry_after {
                    answers.unavailable += 1;
                } else {
                    answers.wrong.push(format!("{status}: {text}"));
                }
                None
            }
        };
        if op.is_some() {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        None
    }
}

/// Asserts that every acknowledged change is stored, read through `base`: the operation
/// exists at the acknowledged version or a later one.
pub async fn assert_all_present(
    client: &reqwest::Client,
    base: &str,
    acked: &HashMap<(String, u64), Value>,
) {
    let mut latest: HashMap<&str, u64> = HashMap::new();
    for (id, version) in acked.keys() {
        let v = latest.entry(id).or_default();
        *v = (*v).max(*version);
    }
    for (id, version) in latest {
        let op = call(
            client.get(format!("{base}/v1/operations/{id}")),
            StatusCode::OK,
        )
        .await;
        let stored = op["version"].as_u64().unwrap();
        assert!(
            stored >= version,
            "{id} acknowledged at v{version}, stored at v{stored}"
        );
    }
}
