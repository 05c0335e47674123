//! How results look: tables and short lines for people, JSON for scripts. Tables are
//! drawn by `comfy-table` without colours or terminal probing, so they read the same
//! in a pipe, a log and a terminal.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use opsd_client::{Event, Lease, Operation, Pagination};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Output;
use crate::BoxError;

fn json(value: &impl Serialize) -> Result<(), BoxError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

fn when(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// One operation: a two-column table of its fields.
pub fn operation(out: Output, op: &Operation) -> Result<(), BoxError> {
    if out == Output::Json {
        return json(op);
    }
    let mut t = table(&["field", "value"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![k.to_owned(), v]);
    };
    row("id", op.id.to_string());
    row("project", op.project_id.clone());
    row("kind / type", format!("{} / {}", op.kind, op.op_type));
    row("resource", op.resource_id.clone());
    row("status", status(op));
    row("progress", format!("{}%", op.progress));
    if let Some(m) = &op.status_message {
        row("message", m.clone());
    }
    if let Some(e) = &op.error {
        for item in &e.errors {
            row("error", format!("{}: {}", item.code, item.message));
        }
    }
    for (field, diff) in &op.details.changes {
        let v = |d: &opsd_client::FieldDiff| serde_json::to_string(&d.to).unwrap_or_default();
        let from = serde_json::to_string(&diff.from).unwrap_or_default();
        row("change", format!("{field}: {from} → {}", v(diff)));
    }
    if let Some(d) = &op.description {
        row("description", d.clone());
    }
    if let Some(u) = &op.user {
        row("user", u.clone());
    }
    if let Some(r) = &op.request_id {
        row("request id", r.clone());
    }
    row("created", when(op.created_at));
    row(
        "updated",
        format!("{} (version {})", when(op.updated_at), op.version),
    );
    if let Some(t) = op.ended_at {
        row("ended", when(t));
    }
    println!("{t}");
    Ok(())
}

/// The status column: the status, flagged when a cancellation is pending.
fn status(op: &Operation) -> String {
    if op.cancel_requested && !op.is_finished() {
        format!("{} (cancel requested)", op.status)
    } else {
        op.status.to_string()
    }
}

/// A list of operations; with `pagination`, where the next page is (on stderr).
pub fn operations(
    out: Output,
    items: &[Operation],
    pagination: Option<&Pagination>,
) -> Result<(), BoxError> {
    if out == Output::Json {
        #[derive(Serialize)]
        struct List<'a> {
            items: &'a [Operation],
            #[serde(skip_serializing_if = "Option::is_none")]
            pagination: Option<&'a Pagination>,
        }
        return json(&List { items, pagination });
    }
    let mut t = table(&[
        "id", "kind", "type", "resource", "status", "progress", "message", "updated",
    ]);
    for op in items {
        t.add_row(vec![
            op.id.to_string(),
            op.kind.to_string(),
            op.op_type.to_string(),
            op.resource_id.clone(),
            status(op),
            format!("{}%", op.progress),
            op.status_message.clone().unwrap_or_default(),
            when(op.updated_at),
        ]);
    }
    if let Some(col) = t.column_mut(5) {
        col.set_cell_alignment(CellAlignment::Right);
    }
    println!("{t}");
    match pagination {
        Some(p) => {
            eprintln!("{} of {} operations", items.len(), p.total_count);
            if let Some(next) = &p.next_cursor {
                eprintln!("next page: --cursor {next}   (or --all for every page)");
            }
        }
        None => eprintln!("{} operations", items.len()),
    }
    Ok(())
}

/// An operation's history.
pub fn events(out: Output, events: &[Event]) -> Result<(), BoxError> {
    if out == Output::Json {
        return json(&events);
    }
    let mut t = table(&["seq", "version", "status", "progress", "message", "at"]);
    for e in events {
        t.add_row(vec![
            e.seq.to_string(),
            e.version.to_string(),
            e.status.to_string(),
            format!("{}%", e.progress),
            e.message.clone().unwrap_or_default(),
            when(e.at),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// One watched change: a readable line, or the operation's JSON on one line.
pub fn change(out: Output, seq: u64, op: &Operation) -> Result<(), BoxError> {
    if out == Output::Json {
        println!("{}", serde_json::to_string(op)?);
        return Ok(());
    }
    // Fixed columns, so lines stay aligned; a failure shows its error, not the last
    // progress message.
    let error = op
        .error
        .as_ref()
        .and_then(|e| e.errors.first())
        .map(|e| format!("{}: {}", e.code, e.message));
    let message = error
        .or_else(|| op.status_message.clone())
        .map(|m| format!("  {m}"))
        .unwrap_or_default();
    let says_so = op.status_message.as_deref() == Some(opsd_domain::cancel::REQUESTED_MESSAGE);
    let flag = if op.cancel_requested && !op.is_finished() && !says_so {
        "  [cancel requested]"
    } else {
        ""
    };
    println!(
        "{}  #{seq:<6} {} {:<13} {:<7} {:<16} {:<7} {:>3}%{message}{flag}",
        when(op.updated_at),
        op.id,
        op.kind.as_str(),
        op.op_type.as_str(),
        op.resource_id,
        op.status.as_str(),
        op.progress,
    );
    Ok(())
}

/// A claimed operation and its lease token.
pub fn lease(out: Output, lease: &Lease) -> Result<(), BoxError> {
    if out == Output::Json {
        return json(lease);
    }
    operation(out, &lease.operation)?;
    println!("lease token: {}", lease.lease_token);
    println!("lease expires: {}", when(lease.lease_expires_at));
    Ok(())
}
