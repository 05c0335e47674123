//! `opsd ops wait`: a live progress bar and status message while an operation runs.
//! Completion comes from the server-side wait (exact, no polling); the watch stream of
//! the operation's resource only feeds the bar, so a slow or broken stream can delay
//! a redraw but never the answer. The bar is drawn on stderr, and only on a terminal.

use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use opsd_client::{Client, Operation, Status, WatchEvent, WatchQuery};

use super::{Exit, Output, render};
use crate::BoxError;

/// Exit code: the operation failed.
pub const EXIT_FAILED: u8 = 3;
/// Exit code: the timeout passed first.
pub const EXIT_TIMED_OUT: u8 = 4;
/// Exit code: there is no such operation (or the key cannot see it).
pub const EXIT_NOT_FOUND: u8 = 5;

fn describe(op: &Operation) -> String {
    let mut s = op.status.to_string();
    if op.cancel_requested && !op.is_finished() {
        s.push_str(" (cancel requested)");
    }
    if let Some(m) = &op.status_message {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

fn show(bar: &ProgressBar, op: &Operation) {
    bar.set_position(u64::from(op.progress));
    bar.set_message(describe(op));
}

/// Waits for `id` for at most `timeout`; prints the operation as it ends.
pub async fn run(
    client: &Client,
    out: Output,
    id: uuid::Uuid,
    timeout: Duration,
) -> Result<Exit, BoxError> {
    let first = match client.get(id).await {
        Err(e) if e.status() == Some(404) => {
            eprintln!("opsd: {e}");
            return Ok(Exit::Code(EXIT_NOT_FOUND));
        }
        other => other?,
    };
    let bar = ProgressBar::new(100).with_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {pos:>3}% {wide_msg}")?
            .progress_chars("=> "),
    );
    bar.set_prefix(id.to_string());
    show(&bar, &first);
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut current = first.clone();
    if !first.is_finished() {
        let query = WatchQuery {
            resource_id: Some(first.resource_id.clone()),
            ..WatchQuery::new(&first.project_id)
        };
        let mut changes = Box::pin(client.watch(query));
        let mut watching = true;
        let waited = client.wait(id, timeout);
        tokio::pin!(waited);
        loop {
            tokio::select! {
                result = &mut waited => {
                    current = result?;
                    break;
                }
                event = changes.next(), if watching => match event {
                    Some(Ok(WatchEvent::Changed { operation, .. })) if operation.id == id
                        && operation.version > current.version => {
                        show(&bar, &operation);
                        current = *operation;
                    }
                    Some(Ok(_)) => {}
                    // The bar stops moving; the wait still decides.
                    Some(Err(_)) | None => watching = false,
                },
            }
        }
    }
    show(&bar, &current);
    bar.finish();
    render::operation(out, &current)?;
    Ok(match current.status {
        Status::Done => Exit::Ok,
        Status::Failed => Exit::Code(EXIT_FAILED),
        _ => {
            eprintln!(
                "opsd: operation {id} is still {} after {}",
                current.status,
                humantime::format_duration(timeout)
            );
            Exit::Code(EXIT_TIMED_OUT)
        }
    })
}
