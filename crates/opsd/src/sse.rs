//! A small Server-Sent Events parser for `opsd ops watch`: feed it bytes as they
//! arrive, get complete events back. Follows the WHATWG rules that matter here: lines
//! end in LF, CRLF or CR; `:` starts a comment; `data` lines join with newlines; an
//! event is dispatched at a blank line if it has data; `id` sets the last event id even
//! on events that are not dispatched.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The data lines, joined with `\n`.
    pub data: String,
    /// The last event id at dispatch time.
    pub id: Option<String>,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    last_id: Option<String>,
    skip_lf: bool,
}

impl Parser {
    /// Feeds `bytes`, returning every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.skip_lf) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.skip_lf = b == b'\r';
                    let line = std::mem::take(&mut self.pending);
                    if let Some(e) = self.line(&String::from_utf8_lossy(&line)) {
                        out.push(e);
                    }
                }
                _ => self.pending.push(b),
            }
        }
        out
    }

    /// The id to resume from (`Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            let data = self.data.take()?;
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".into()),
                data,
                id: self.last_id.clone(),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks() {
        let mut p = Parser::default();
        assert!(p.push(b": keep-alive\n\nevent: opera").is_empty());
        assert!(p.push(b"tion\nid: 7\r\ndata: {\"a\":").is_empty());
        let got = p.push(b"1}\n\ndata: x\ndata: y\n\n");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "operation".into(),
                    data: "{\"a\":1}".into(),
                    id: Some("7".into())
                },
                SseEvent {
                    event: "message".into(),
                    data: "x\ny".into(),
                    id: Some("7".into())
                },
            ]
        );
        assert_eq!(p.push(b"id: 9\n\n"), vec![]);
        assert_eq!(p.last_event_id(), Some("9"));
    }
}
