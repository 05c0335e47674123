//! A watch stream as a client reads it (parsed by `eventsource-stream`, as the SDK
//! does), and the checks every replica watch test makes.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;

type Events = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// One `operation` event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event seq (`id:`).
    pub seq: u64,
    /// The operation JSON.
    pub data: Value,
}

impl Event {
    /// (operation id, version): what a change is.
    pub fn change(&self) -> (String, u64) {
        change_of(&self.data)
    }
}

/// (operation id, version) of an operation JSON.
pub fn change_of(op: &Value) -> (String, u64) {
    (
        op["id"].as_str().unwrap().to_owned(),
        op["version"].as_u64().unwrap(),
    )
}

/// What reading a stream gave.
pub enum Next {
    Event(Event),
    /// Nothing arrived for the idle time given.
    Idle,
    /// The server ended the stream (or the connection broke).
    End,
}

/// An open `GET /v1/operations/watch` of one project.
pub struct Watch {
    events: Events,
}

impl Watch {
    /// Opens the stream on `base`; `Err(status)` if it is refused.
    pub async fn open(
        key: &str,
        base: &str,
        project: &str,
        last_event_id: Option<u64>,
    ) -> Result<Watch, StatusCode> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut req = client
            .get(format!("{base}/v1/operations/watch?project_id={project}"))
            .bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
        if resp.status() != StatusCode::OK {
            return Err(resp.status());
        }
        let events = resp
            .bytes_stream()
            .eventsource()
            .map(|e| e.map_err(|e| e.to_string()));
        Ok(Watch {
            events: Box::pin(events),
        })
    }

    /// The next event, waiting at most `idle` for it.
    pub async fn next(&mut self, idle: Duration) -> Next {
        match tokio::time::timeout(idle, self.events.next()).await {
            Err(_) => Next::Idle,
            Ok(None | Some(Err(_))) => Next::End,
            Ok(Some(Ok(e))) => {
                assert_eq!(e.event, "operation", "unexpected event: {e:?}");
                Next::Event(Event {
                    seq: e
                        .id
                        .rsplit_once('-')
                        .map_or(e.id.as_str(), |(_, seq)| seq)
                        .parse()
                        .expect("every event id ends with its seq"),
                    data: serde_json::from_str(&e.data).unwrap(),
                })
            }
        }
    }

    /// Reads until `done(events so far)` holds, or nothing arrives for `idle`, or the
    /// stream ends; appends to `events`.
    pub async fn read_until(
        &mut self,
        events: &mut Vec<Event>,
        idle: Duration,
        done: impl Fn(&[Event]) -> bool,
    ) {
        while !done(events) {
            match self.next(idle).await {
                Next::Event(e) => events.push(e),
                Next::Idle | Next::End => return,
            }
        }
    }
}

/// Whether `events` hold every change in `acked`.
pub fn covers(events: &[Event], acked: &HashMap<(String, u64), Value>) -> bool {
    let seen: HashSet<(String, u64)> = events.iter().map(Event::change).collect();
    acked.keys().all(|k| seen.contains(k))
}

/// The guarantees of a watch, as a client sees them: seqs strictly increase (commit
/// order), no change comes twice, each operation's versions come in order, and every
/// acknowledged change is there, with exactly the JSON its write returned. With `exact`,
/// nothing else is there either.
pub fn assert_stream(events: &[Event], acked: &HashMap<(String, u64), Value>, exact: bool) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "event ids are not strictly increasing: {seqs:?}"
    );
    let mut seen = HashSet::new();
    let mut last_version: HashMap<String, u64> = HashMap::new();
    for e in events {
        let (id, version) = e.change();
        assert!(
            seen.insert((id.clone(), version)),
            "{id} v{version} delivered twice"
        );
        let prev = last_version.insert(id.clone(), version).unwrap_or(0);
        assert!(
            version > prev,
            "{id}: v{version} after v{prev}, not in commit order"
        );
        if let Some(body) = acked.get(&(id.clone(), version)) {
            assert_eq!(
                &e.data, body,
                "{id} v{version} differs from its write's answer"
            );
        } else {
            assert!(!exact, "{id} v{version} was never written (seq {})", e.seq);
        }
    }
    let missing: Vec<_> = acked.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged changes never arrived, e.g. {:?} ({} events received)",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)],
        events.len()
    );
}
