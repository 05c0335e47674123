//! The control API: a tiny HTTP/1.1 server, one request per connection, answered in
//! turn on one thread. `POST /blackhole`, `POST /flow`, `POST /cut` and `GET /stats`;
//! every answer is JSON.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

use crate::Shared;

/// The most of a request that is read (its line and headers; a body is ignored).
const MAX_HEAD: usize = 8 * 1024;

pub(crate) fn serve(listener: &TcpListener, shared: &Shared) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        if let Ok(stream) = stream {
            handle(stream, shared);
        }
    }
}

fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    skip_body(&mut stream, &head);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = route(method, path, shared);
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

fn route(method: &str, path: &str, shared: &Shared) -> (u16, Value) {
    match (method, path) {
        ("POST", "/blackhole") => {
            shared.blackhole();
            (200, json!({ "blackholed": true }))
        }
        ("POST", "/flow") => {
            shared.flow();
            (200, json!({ "blackholed": false }))
        }
        ("POST", "/cut") => (200, json!({ "cut": shared.cut() })),
        ("GET", "/stats") => (200, shared.stats().to_json()),
        (_, "/blackhole" | "/flow" | "/cut" | "/stats") => (
            405,
            json!({ "error": format!("{method} is not allowed on {path}") }),
        ),
        _ => (
            404,
            json!({ "error": "POST /blackhole, POST /flow, POST /cut or GET /stats" }),
        ),
    }
}

/// Reads and drops the request's body (a socket closed with unread data would reset the
/// connection before the client read the answer).
fn skip_body(stream: &mut TcpStream, head: &str) {
    let (headers, already) = head.split_once("\r\n\r\n").unwrap_or((head, ""));
    let length: usize = headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let left = length.saturating_sub(already.len()).min(64 * 1024);
    let _ = std::io::copy(&mut stream.take(left as u64), &mut std::io::sink());
}

/// The request line and headers, up to the blank line (and whatever followed them in
/// the same reads).
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    (!head.is_empty()).then(|| String::from_utf8_lossy(&head).into_owned())
}
