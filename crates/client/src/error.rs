//! The SDK's one error type. A refusal by the server keeps everything the server said
//! (`code`, `message`, `field`, `request_id`) so that a program can branch on the code
//! and a person can read the message; transport failures keep reqwest's error.

use std::time::Duration;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error (after any retries).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The request timed out (after any retries).
    #[error("request timed out: {}", chain(.0))]
    Timeout(#[source] reqwest::Error),
    /// The server could not be reached or the connection broke (after any retries).
    #[error("cannot reach opsd: {}", chain(.0))]
    Connection(#[source] reqwest::Error),
    /// The server's answer was not what this SDK understands.
    #[error("unexpected answer from opsd: {0}")]
    Decode(String),
    /// The client was configured wrongly (bad URL, key, certificate).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The server's error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The server's error code (`not_found`, `lease_not_held`, …), if the server refused.
    pub fn code(&self) -> Option<&str> {
        self.api().map(|e| e.code.as_str())
    }

    /// The HTTP status of a server refusal.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Error::Timeout(e)
        } else if e.is_decode() {
            Error::Decode(e.to_string())
        } else if e.is_builder() {
            Error::Config(e.to_string())
        } else {
            Error::Connection(e)
        }
    }
}

/// reqwest's message followed by its causes ("error sending request …: client error
/// (Connect): tcp connect error: Connection refused"), which say what actually failed.
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// An error answer of the server: `{code, message, field?, request_id?}` and its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code}, HTTP {status}{})", field_suffix(.field))]
pub struct ApiError {
    /// HTTP status, e.g. 409.
    pub status: u16,
    /// Machine-readable code, e.g. `invalid_transition`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// The request field at fault, when there is one (e.g. `details.changes.cpu.to`).
    pub field: Option<String>,
    /// The server's request id (`x-request-id`), to find the request in its logs.
    pub request_id: Option<String>,
    /// How long the server asked to wait before retrying (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Whether the server said a retry could help (`x-should-retry`), when it said so.
    pub should_retry: Option<bool>,
}

fn field_suffix(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|f| format!(", field {f}"))
        .unwrap_or_default()
}

/// The error body as the server sends it.
#[derive(serde::Deserialize)]
struct Body {
    code: String,
    message: String,
    field: Option<String>,
    request_id: Option<String>,
}

impl ApiError {
    /// Reads an error response; a body that is not opsd's shape still gives an error
    /// naming the status (a proxy's HTML page, for example).
    pub(crate) async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let should_retry = match header("x-should-retry") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        let header_request_id = header("x-request-id").map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<Body>(&text) {
            Ok(b) => ApiError {
                status,
                code: b.code,
                message: b.message,
                field: b.field,
                request_id: b.request_id.or(header_request_id),
                retry_after,
                should_retry,
            },
            Err(_) => ApiError {
                status,
                code: format!("http_{status}"),
                message: if text.trim().is_empty() {
                    format!("the server answered HTTP {status}")
                } else {
                    format!(
                        "the server answered HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )
                },
                field: None,
                request_id: header_request_id,
                retry_after,
                should_retry,
            },
        }
    }
}

/// Result of an SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
