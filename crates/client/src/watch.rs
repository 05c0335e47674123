//! The watch stream: a project's changes as they commit, over Server-Sent Events,
//! parsed by `eventsource-stream`. The stream reconnects by itself when the connection
//! drops or goes silent (the server sends a keep-alive every 15 s) and resumes with
//! `Last-Event-ID`, so the caller sees every change once, in commit order. It ends only
//! with an error a reconnection cannot fix (a bad filter, a revoked key…).

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt, stream};

use crate::error::ApiError;
use crate::{Client, Error, Operation, Result};

/// Silence longer than this means the connection is dead (three keep-alives missed).
const IDLE_LIMIT: Duration = Duration::from_secs(45);
/// The longest pause between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

crate::query::filtered_query! {
    /// What to watch and where to start. Build it with [`WatchQuery::new`].
    pub struct WatchQuery {
        /// Start after this event (`0`: every retained change first); `None`: from now.
        pub after: Option<u64>,
    }
    new: "The changes of `project_id` from now on."
}

impl WatchQuery {
    /// Start after event `seq` (`0`: from the oldest retained change).
    pub fn after(mut self, seq: u64) -> Self {
        self.after = Some(seq);
        self
    }
}

/// One item of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// An operation changed; `seq` is the event's id (resume after it).
    Changed {
        /// The event's sequence number.
        seq: u64,
        /// The operation as the change left it.
        operation: Box<Operation>,
    },
    /// The changes after the requested start are no longer all retained: list again,
    /// then keep reading; the stream goes on after event `seq`.
    Reset {
        /// The newest event id when the reset was sent.
        seq: u64,
        /// The server's explanation.
        message: String,
    },
}

impl WatchEvent {
    /// The event id to resume after.
    pub fn seq(&self) -> u64 {
        match self {
            WatchEvent::Changed { seq, .. } | WatchEvent::Reset { seq, .. } => *seq,
        }
    }
}

type Events = Pin<
    Box<
        dyn Stream<
                Item = std::result::Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

struct State {
    client: Client,
    query: WatchQuery,
    /// The last event delivered (or the requested start).
    last: Option<EventId>,
    events: Option<Events>,
    /// Failed connection attempts in a row.
    failures: u32,
    done: bool,
}

impl Client {
    /// A project's changes as they commit, as a stream that never ends on its own
    /// (drop it to stop). Connection losses, server restarts and silent connections
    /// are handled inside: the stream reconnects with `Last-Event-ID` and goes on with
    /// exactly the changes after the last one it delivered.
    ///
    /// A stream started "from now" that loses its connection before delivering its first
    /// event resumes from the moment it reconnects; start it with
    /// [`WatchQuery::after`] to make that gap impossible.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use opsd_client::{WatchEvent, WatchQuery};
    /// # async fn run(client: opsd_client::Client) -> opsd_client::Result<()> {
    /// let mut changes = Box::pin(client.watch(WatchQuery::new("proj-1")));
    /// while let Some(event) = changes.next().await {
    ///     if let WatchEvent::Changed { operation, .. } = event? {
    ///         println!("{} is {} ({}%)", operation.id, operation.status, operation.progress);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(
        &self,
        query: WatchQuery,
    ) -> impl Stream<Item = Result<WatchEvent>> + Send + 'static {
        let state = State {
            client: self.clone(),
            last: query.after.map(|seq| EventId { epoch: None, seq }),
            query,
            events: None,
            failures: 0,
            done: false,
        };
        stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            match s.next().await {
                Ok(event) => Some((Ok(event), s)),
                Err(e) => {
                    s.done = true;
                    Some((Err(e), s))
                }
            }
        })
    }
}

impl State {
    /// The next event, reconnecting as often as needed; an error ends the stream.
    async fn next(&mut self) -> Result<WatchEvent> {
        loop {
            let Some(events) = self.events.as_mut() else {
                self.connect().await?;
                continue;
            };
            match tokio::time::timeout(IDLE_LIMIT, events.next()).await {
                Ok(Some(Ok(event))) => {
                    if let Some(item) = self.accept(event)? {
                        return Ok(item);
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "watch stream broke; resuming");
                    self.lost();
                }
                Ok(None) => {
                    tracing::debug!("watch stream ended (server restart?); resuming");
                    self.lost();
                }
                Err(_) => {
                    tracing::debug!("watch stream silent for too long; reconnecting");
                    self.lost();
                }
            }
        }
    }

    /// Drops a broken connection; the next attempt waits a first backoff, so a server
    /// that keeps closing streams is not hammered.
    fn lost(&mut self) {
        self.events = None;
        self.failures = 1;
    }

    /// Turns one SSE event into a stream item; `None` for what the caller need not see
    /// (unknown event types, an event already delivered).
    fn accept(&mut self, event: eventsource_stream::Event) -> Result<Option<WatchEvent>> {
        let id = EventId::parse(&event.id);
        match event.event.as_str() {
            "operation" => {
                let id = id.ok_or_else(|| Error::Decode("watch event without an id".into()))?;
                if self.last.as_ref().is_some_and(|last| id.not_after(last)) {
                    return Ok(None);
                }
                let seq = id.seq;
                let operation: Operation = serde_json::from_str(&event.data)
                    .map_err(|e| Error::Decode(format!("watch event {seq}: {e}")))?;
                self.last = Some(id);
                Ok(Some(WatchEvent::Changed {
                    seq,
                    operation: Box::new(operation),
                }))
            }
            "reset" => {
                let id = id.ok_or_else(|| Error::Decode("reset event without an id".into()))?;
                let seq = id.seq;
                self.last = Some(id);
                let message = serde_json::from_str::<serde_json::Value>(&event.data)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or(event.data);
                Ok(Some(WatchEvent::Reset { seq, message }))
            }
            _ => Ok(None),
        }
    }

    /// Opens the stream (after a pause if the previous attempt failed); an answer that
    /// a reconnection cannot change is returned as the stream's last item.
    async fn connect(&mut self) -> Result<()> {
        if self.failures > 0 {
            let pause = self
                .client
                .inner
                .retry
                .backoff(self.failures - 1)
                .min(MAX_RECONNECT_DELAY);
            tokio::time::sleep(pause).await;
        }
        let mut request = self
            .client
            .inner
            .http
            .get(self.client.url("/v1/operations/watch"))
            // Only the filters: the starting point goes as `Last-Event-ID`.
            .query(&self.query.filter_pairs())
            .header("accept", "text/event-stream");
        if let Some(last) = &self.last {
            request = request.header("last-event-id", last.to_string());
        }
        let request = self.client.traced(request);
        let error = match request.send().await {
            Ok(r) if r.status().is_success() => {
                self.failures = 0;
                self.events = Some(Box::pin(r.bytes_stream().eventsource()));
                return Ok(());
            }
            Ok(r) => ApiError::from_response(r).await,
            Err(e) => {
                tracing::debug!(error = %e, "cannot open the watch stream; retrying");
                self.failures = self.failures.saturating_add(1);
                return Ok(());
            }
        };
        let transient = match error.should_retry {
            Some(said) => said,
            None => matches!(error.status, 408 | 429 | 500..=599),
        };
        if transient {
            self.failures = self.failures.saturating_add(1);
            Ok(())
        } else {
            Err(Error::Api(error))
        }
    }
}

/// A watch event's id as the server sent it: `<epoch>-<seq>` (a bare seq from servers
/// before epochs, or a caller's starting point). The epoch is the store's: after a
/// restore or a copy the same seq may name another change, so the id is sent back
/// whole and the server decides.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EventId {
    epoch: Option<String>,
    seq: u64,
}

impl EventId {
    fn parse(raw: &str) -> Option<Self> {
        match raw.rsplit_once('-') {
            Some((epoch, seq)) => Some(EventId {
                epoch: Some(epoch.to_owned()),
                seq: seq.parse().ok()?,
            }),
            None => Some(EventId {
                epoch: None,
                seq: raw.parse().ok()?,
            }),
        }
    }

    /// Whether this event was already delivered: same epoch (or one side without) and
    /// no later seq. An event of another epoch follows a reset and is always new.
    fn not_after(&self, last: &EventId) -> bool {
        let same_epoch = match (&self.epoch, &last.epoch) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        same_epoch && self.seq <= last.seq
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.epoch {
            Some(epoch) => write!(f, "{epoch}-{}", self.seq),
            None => write!(f, "{}", self.seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventId;

    #[test]
    fn event_ids_round_trip_and_order_within_an_epoch() {
        let id = EventId::parse("0a1b2c3d4e5f6071-42").unwrap();
        assert_eq!(id.to_string(), "0a1b2c3d4e5f6071-42");
        assert_eq!(EventId::parse("7").unwrap().to_string(), "7");
        assert!(EventId::parse("x-y").is_none());
        let earlier = EventId::parse("aa-41").unwrap();
        assert!(earlier.not_after(&id) || earlier.epoch != id.epoch);
        assert!(
            !EventId::parse("bb-1")
                .unwrap()
                .not_after(&EventId::parse("aa-9").unwrap())
        );
        assert!(
            EventId::parse("aa-9")
                .unwrap()
                .not_after(&EventId::parse("aa-9").unwrap())
        );
        assert!(
            EventId::parse("aa-3")
                .unwrap()
                .not_after(&EventId::parse("5").unwrap())
        );
    }
}
