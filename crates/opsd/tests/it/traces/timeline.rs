//! Renders the spans of one operation's life as a timeline page (the README's picture
//! is a screenshot of it: no trace UI can be installed where opsd is built).
//!
//! Shown: every span of the trace, the spans linked to its spans (a claim's own trace)
//! and the writer batches its writes link to, each as a bar on one time axis.

use std::collections::HashSet;
use std::fmt::Write;

use opentelemetry_proto::tonic::trace::v1::Span;

use super::receiver::{hex, string};

/// The page for the trace `trace_id` (hex) among `spans`.
pub fn html(spans: &[(String, Span)], trace_id: &str) -> String {
    let in_trace: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let ids: HashSet<Vec<u8>> = in_trace.iter().map(|s| s.span_id.clone()).collect();
    // Spans outside the trace that link into it (a claim), and those linked from it
    // (the writer batches).
    let linked_from_trace: HashSet<Vec<u8>> = in_trace
        .iter()
        .flat_map(|s| s.links.iter().map(|l| l.span_id.clone()))
        .collect();
    let mut shown: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| {
            ids.contains(&s.span_id)
                || linked_from_trace.contains(&s.span_id)
                || s.links.iter().any(|l| ids.contains(&l.span_id))
        })
        .collect();
    // The store calls of those linked requests, and the batches those calls link to.
    loop {
        let known: HashSet<Vec<u8>> = shown.iter().map(|s| s.span_id.clone()).collect();
        let linked: HashSet<Vec<u8>> = shown
            .iter()
            .flat_map(|s| s.links.iter().map(|l| l.span_id.clone()))
            .collect();
        let more: Vec<&Span> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| !known.contains(&s.span_id))
            .filter(|s| known.contains(&s.parent_span_id) || linked.contains(&s.span_id))
            .collect();
        if more.is_empty() {
            break;
        }
        shown.extend(more);
    }
    shown.sort_by_key(|s| s.start_time_unix_nano);
    let start = shown
        .iter()
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = shown
        .iter()
        .map(|s| s.end_time_unix_nano)
        .max()
        .unwrap_or(1);
    let total = (end - start).max(1) as f64;
    let mut rows = String::new();
    for span in &shown {
        let left = (span.start_time_unix_nano - start) as f64 / total * 100.0;
        let width = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / total * 100.0;
        let ms = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6;
        let class = if span.name.starts_with("store.batch") {
            "batch"
        } else if span.name.starts_with("store.") {
            "store"
        } else if hex(&span.trace_id) == trace_id {
            "server"
        } else {
            "other"
        };
        let depth = if span.name.starts_with("store.") && class == "store" {
            1
        } else {
            0
        };
        let mut notes = Vec::new();
        if let Some(status) = string(&span.attributes, "http.response.status_code") {
            notes.push(format!("status {status}"));
        }
        if let Some(n) = string(&span.attributes, "opsd.batch.writes") {
            notes.push(format!("{n} writes"));
        }
        if hex(&span.trace_id) != trace_id {
            notes.push(format!("own trace {}…", &hex(&span.trace_id)[..8]));
        }
        for link in &span.links {
            let target = spans
                .iter()
                .map(|(_, s)| s)
                .find(|s| s.span_id == link.span_id)
                .map_or("a span of the caller", |s| s.name.as_str());
            notes.push(format!("↪ link to {target}"));
        }
        let _ = write!(
            rows,
            "<tr><td class=\"name d{depth}\">{}</td><td class=\"lane\">\
             <div class=\"bar {class}\" style=\"left:{left:.3}%;width:max({width:.3}%,3px)\"></div>\
             </td><td class=\"ms\">{ms:.2} ms</td><td class=\"notes\">{}</td></tr>",
            escape(&span.name),
            escape(&notes.join(" · "))
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>One operation's life</title>\
         <style>\
         body{{font:13px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}}\
         h1{{font-size:17px;margin:0 0 4px}} p{{margin:0 0 14px;color:#555}}\
         table{{border-collapse:collapse;width:1180px}} td{{padding:3px 6px;border-bottom:1px solid #eef0f4;white-space:nowrap}}\
         td.name{{width:330px;font-family:ui-monospace,monospace;font-size:12px}} td.d1{{padding-left:22px;color:#445}}\
         td.lane{{position:relative;width:430px}} .bar{{position:absolute;top:5px;height:12px;border-radius:3px}}\
         .server{{background:#3b6fd8}} .store{{background:#2ea37a}} .batch{{background:#e08a1e}} .other{{background:#8a5cc8}}\
         td.ms{{width:70px;text-align:right;color:#555}} td.notes{{color:#555;font-size:12px}}\
         </style></head><body><h1>One operation's life in one trace</h1>\
         <p>trace {trace_id} · create → claim (SDK worker) → heartbeat → done · blue: requests in the trace, \
         purple: linked from another trace, green: store calls, orange: writer batches</p>\
         <table>{rows}</table></body></html>"
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
