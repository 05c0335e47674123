//! The clients of a history run: writers that create, update with `If-Match`, claim,
//! heartbeat, finish and cancel, recording every call and its answer; watchers that
//! read the project's watch stream from the beginning and resume it with
//! `Last-Event-ID` across every disconnect; and the final read of the database.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::check::MESSAGE_PREFIX;
use super::record::{Call, FinalEvent, FinalOp, Kind, Outcome, Seen, micros};
use crate::replicas::sse::{Next, Watch};

/// The project every client writes and every watcher reads.
pub const PROJECT: &str = "history";
/// Leases are short, so that some expire during a run.
const LEASE_SECONDS: u64 = 2;
/// A writer's pause between calls: a debug build on a shared machine makes hundreds of
/// calls a second otherwise, and reading them all back would dominate the run.
const PAUSE: Duration = Duration::from_millis(25);

/// What the clients share: the replicas' current addresses (a restarted replica
/// listens on a new port), the key, the log of calls, the stop flag.
pub struct Shared {
    pub bases: RwLock<Vec<Option<String>>>,
    pub key: String,
    pub calls: Mutex<Vec<Call>>,
    pub stop: AtomicBool,
    pub started: Instant,
}

impl Shared {
    /// A replica that is up, chosen by `pick`.
    pub fn base(&self, pick: u64) -> Option<String> {
        let bases = self.bases.read().unwrap();
        let up: Vec<&String> = bases.iter().flatten().collect();
        (!up.is_empty()).then(|| up[(pick as usize) % up.len()].clone())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A small deterministic generator (xorshift), one per client.
struct Dice(u64);

impl Dice {
    fn roll(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One writer: its operations (id, last known version) and its leases (id, token).
pub async fn writer(shared: Arc<Shared>, client: usize) {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", shared.key).parse().unwrap(),
    );
    // Longer than opsd's request timeout: opsd answers first.
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1));
    let mut mine: Vec<(String, u64)> = Vec::new();
    let mut leases: Vec<(String, String)> = Vec::new();
    let mut n = 0u64;
    while !shared.stopped() {
        n += 1;
        let Some(base) = shared.base(dice.roll()) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let message = format!("{MESSAGE_PREFIX}{client}-{n}");
        let roll = dice.roll() % 100;
        let (kind, req) = if roll < 30 || mine.is_empty() {
            let request_id = format!("c-{client}-{n}");
            let body = json!({"project_id": PROJECT, "kind": "vm", "type": "update",
                              "resource_id": request_id, "request_id": request_id});
            let req = http.post(format!("{base}/v1/operations")).json(&body);
            (Kind::Create { request_id }, req)
        } else if roll < 50 {
            let (id, version) = mine[(dice.roll() as usize) % mine.len()].clone();
            let req = http
                .patch(format!("{base}/v1/operations/{id}"))
                .header("if-match", format!("\"{version}\""))
                .json(&json!({"status": "running", "status_message": message}));
            let kind = Kind::Update {
                id,
                if_match: version,
                message,
            };
            (kind, req)
        } else if roll < 65 || leases.is_empty() {
            // A third of the claims are a reconciler's: they take back operations whose
            // lease expired, so that an operation is granted more than once.
            let mut body = json!({"project_id": PROJECT, "lease_seconds": LEASE_SECONDS,
                                  "worker": format!("w{client}")});
            if dice.roll().is_multiple_of(3) {
                body["statuses"] = json!(["pending", "unknown"]);
            }
            (
                Kind::Claim,
                http.post(format!("{base}/v1/operations/claim")).json(&body),
            )
        } else if roll < 85 {
            let (id, token) = leases[(dice.roll() as usize) % leases.len()].clone();
            let with_message = dice.roll().is_multiple_of(2);
            let mut body = json!({"lease_token": token});
            if with_message {
                body["status_message"] = json!(message);
            }
            let req = http
                .post(format!("{base}/v1/operations/{id}/heartbeat"))
                .json(&body);
            let kind = Kind::Heartbeat {
                id,
                token,
                message: with_message.then_some(message),
            };
            (kind, req)
        } else if roll < 93 {
            let (id, token) = leases.swap_remove((dice.roll() as usize) % leases.len());
            let req = http
                .patch(format!("{base}/v1/operations/{id}"))
                .json(&json!({"status": "done", "progress": 100, "lease_token": token}));
            (Kind::Finish { id, token }, req)
        } else {
            let (id, _) = mine[(dice.roll() as usize) % mine.len()].clone();
            let req = http.post(format!("{base}/v1/operations/{id}/cancel"));
            (Kind::Cancel { id }, req)
        };
        let sent_ms = shared.ms();
        let outcome = send(req).await;
        let done_ms = shared.ms();
        // What the client learns for its next calls.
        match (&kind, &outcome) {
            (Kind::Create { .. }, Outcome::Ok(op)) => {
                mine.push((
                    op["id"].as_str().unwrap().to_owned(),
                    op["version"].as_u64().unwrap(),
                ));
            }
            (Kind::Update { id, .. } | Kind::Cancel { id }, Outcome::Ok(op)) => {
                remember(&mut mine, id, op);
            }
            (Kind::Update { id, .. }, _) => refresh(&http, &base, &mut mine, id).await,
            (Kind::Claim, Outcome::Ok(body)) if !body.is_null() => {
                let id = body["operation"]["id"].as_str().unwrap().to_owned();
                leases.push((id, body["lease_token"].as_str().unwrap().to_owned()));
            }
            (Kind::Heartbeat { id, .. }, Outcome::Refused { .. }) => {
                leases.retain(|(l, _)| l != id)
            }
            _ => {}
        }
        // Some leases are abandoned, to expire.
        if leases.len() > 3 {
            leases.remove(0);
        }
        if matches!(outcome, Outcome::Unknown(_)) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(PAUSE).await;
        shared.calls.lock().unwrap().push(Call {
            client,
            kind,
            sent_ms,
            done_ms,
            outcome,
        });
    }
}

fn remember(mine: &mut [(String, u64)], id: &str, op: &Value) {
    if let Some(entry) = mine.iter_mut().find(|(m, _)| m == id) {
        entry.1 = op["version"].as_u64().unwrap_or(entry.1);
    }
}

/// Reads an operation's current version after an update that did not go through.
async fn refresh(http: &reqwest::Client, base: &str, mine: &mut [(String, u64)], id: &str) {
    if let Ok(resp) = http.get(format!("{base}/v1/operations/{id}")).send().await
        && resp.status() == StatusCode::OK
        && let Ok(op) = resp.json::<Value>().await
    {
        remember(mine, id, &op);
    }
}

async fn send(req: reqwest::RequestBuilder) -> Outcome {
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return Outcome::Unknown(format!("no answer: {e}")),
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status == StatusCode::NO_CONTENT {
        return Outcome::Ok(Value::Null);
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        Outcome::Ok(body)
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        Outcome::Unknown(format!("503 {}", body["code"]))
    } else if status.is_client_error() {
        Outcome::Refused {
            status: status.as_u16(),
            code: body["code"].as_str().unwrap_or_default().to_owned(),
        }
    } else {
        Outcome::ServerError {
            status: status.as_u16(),
            body: text,
        }
    }
}

/// A watcher: from `Last-Event-ID: 0`, reconnecting (to any replica that is up) with
/// the last seq it got, until stopped and caught up with `head` (once it is set).
pub async fn watcher(shared: Arc<Shared>, head: Arc<Mutex<Option<u64>>>, pick: u64) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    let mut reconnects = pick;
    loop {
        let last = seen.last().map_or(0, |s| s.seq);
        if head.lock().unwrap().is_some_and(|h| last >= h) {
            return seen;
        }
        reconnects += 1;
        let Some(base) = shared.base(reconnects) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(mut watch) = Watch::open(&shared.key, &base, PROJECT, Some(last)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            match watch.next(Duration::from_secs(2)).await {
                Next::Event(e) => {
                    let (id, version) = crate::replicas::sse::change_of(&e.data);
                    seen.push(Seen {
                        seq: e.seq,
                        id,
                        version,
                    });
                }
                Next::Idle => {
                    let last = seen.last().map_or(0, |s| s.seq);
                    if head.lock().unwrap().is_some_and(|h| last >= h) {
                        return seen;
                    }
                }
                Next::End => break,
            }
        }
    }
}

/// Every operation of the project and its events, read through `base`.
pub async fn final_state(key: &str, base: &str) -> Vec<FinalOp> {
    let http = crate::replicas::cluster::client(key);
    let mut ops = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = http
            .get(format!(
                "{base}/v1/operations?project_id={PROJECT}&limit=100&cursor={cursor}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        let histories: Vec<Value> = futures_util::stream::iter(items)
            .map(|op| {
                let req = http.get(format!(
                    "{base}/v1/operations/{}/events",
                    op["id"].as_str().unwrap()
                ));
                async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
            })
            .buffered(8)
            .collect()
            .await;
        for (op, events) in items.iter().zip(histories) {
            let id = op["id"].as_str().unwrap().to_owned();
            let events = events["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| FinalEvent {
                    seq: e["seq"].as_u64().unwrap(),
                    version: e["version"].as_u64().unwrap(),
                    status: e["status"].as_str().unwrap().to_owned(),
                    progress: e["progress"].as_u64().unwrap(),
                    message: e["message"].as_str().map(str::to_owned),
                    at_us: micros(e["at"].as_str().unwrap()),
                })
                .collect();
            ops.push(FinalOp {
                id,
                request_id: op["request_id"].as_str().map(str::to_owned),
                version: op["version"].as_u64().unwrap(),
                events,
            });
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = next.to_owned(),
            _ => return ops,
        }
    }
}
