//! Tracing through an operation's whole life: the real binary exporting over OTLP to a
//! receiver in the test, a worker of the SDK, and `opsd work` passing the context on.

mod receiver;
mod timeline;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opsd_client::{Client, Task, TaskError, Worker, WorkerConfig};
use opsd_grpc_proto::google::longrunning::GetOperationRequest;
use opsd_grpc_proto::google::longrunning::operations_client::OperationsClient;
use receiver::{Receiver, hex, render, string};
use serde_json::{Value, json};

use crate::process::Opsd;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Creates an operation in `project`, sending `headers`.
async fn create(opsd: &Opsd, project: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = opsd
        .client()
        .post(format!("{}/v1/operations", opsd.base))
        .json(
            &json!({"project_id": project, "kind": "vm", "type": "update", "resource_id": "vm-1"}),
        );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The spans named `name`.
fn named<'a>(spans: &'a [(String, Span)], name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == name)
        .collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    string(&span.attributes, key)
}

/// Whether `span` links to the span `span_id` of trace `trace_id`.
fn links_to(span: &Span, trace_id: &[u8], span_id: &[u8]) -> bool {
    span.links
        .iter()
        .any(|l| l.trace_id == trace_id && l.span_id == span_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_creating_request_to_the_worker_that_finished() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("opsd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let opsd = Opsd::start_with(
        dir.path(),
        log,
        &["--otlp-endpoint", receiver.endpoint.as_str()],
    );

    // 1. A control plane creates the operation inside its own trace.
    let parent = traceparent();
    let (status, op) = create(
        &opsd,
        "proj-trace",
        &[("traceparent", &parent), ("tracestate", "cp=1")],
    )
    .await;
    assert_eq!(status, 201, "{op}");
    let id = op["id"].as_str().unwrap().to_owned();
    let stored = op["trace_context"]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stored.starts_with(&format!("00-{TRACE_ID}-")), "{stored}");
    assert_ne!(
        stored, parent,
        "the server span's context, child of the caller's"
    );
    assert_eq!(op["trace_context"]["tracestate"], "cp=1");
    let creation_span = stored.split('-').nth(2).unwrap().to_owned();

    // 2. A worker of the SDK claims it, reports progress (a heartbeat) and finishes.
    let client = Client::new(&opsd.base, &opsd.admin_key).unwrap();
    let watcher = client.clone();
    let worker = Worker::new(
        client,
        WorkerConfig::new("proj-trace").idle_poll(Duration::from_millis(100)),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handler = move |task: Task| {
        let watcher = watcher.clone();
        async move {
            let id = task.operation().id;
            task.progress(50, "halfway");
            // Wait until the heartbeat that carried the progress has landed.
            let deadline = Instant::now() + Duration::from_secs(60);
            while watcher.get(id).await.map(|o| o.progress).unwrap_or(0) < 50 {
                assert!(
                    Instant::now() < deadline,
                    "the progress heartbeat never landed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<(), TaskError>(())
        }
    };
    let running = tokio::spawn(async move {
        worker
            .run(handler, async {
                let _ = stop_rx.await;
            })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let op: Value = opsd
            .client()
            .get(format!("{}/v1/operations/{id}", opsd.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if op["status"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "never done: {op}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    let summary = running.await.unwrap().unwrap();
    assert_eq!(summary.done, 1);

    // A Google-style client reads it over gRPC, in the same trace.
    let channel = tonic::transport::Endpoint::from_shared(opsd.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(GetOperationRequest {
        name: format!("projects/proj-trace/operations/{id}"),
    });
    let metadata = request.metadata_mut();
    let bearer = format!("Bearer {}", opsd.admin_key);
    metadata.insert("authorization", bearer.parse().unwrap());
    metadata.insert("traceparent", parent.parse().unwrap());
    let got = OperationsClient::new(channel)
        .get_operation(request)
        .await
        .unwrap()
        .into_inner();
    assert!(got.done);

    // 3. A clean stop exports what is still queued.
    let mut opsd = opsd;
    sigterm(&opsd.child);
    assert!(opsd.child.wait().unwrap().success());
    let spans = receiver.spans();
    assert!(!spans.is_empty(), "nothing exported");
    assert!(spans.iter().all(|(service, _)| service == "opsd"));
    if let Ok(path) = std::env::var("OPSD_TRACE_TIMELINE") {
        std::fs::write(&path, timeline::html(&spans, TRACE_ID)).unwrap();
    }
    let trace_id = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>();

    // The creating request: a server span continuing the caller's, with the HTTP
    // semantic conventions' attributes and the key's id.
    let creates = named(&spans, "POST /v1/operations");
    assert_eq!(creates.len(), 1);
    let create = creates[0];
    assert_eq!(create.trace_id, trace_id);
    assert_eq!(hex(&create.parent_span_id), CALLER_SPAN);
    assert_eq!(hex(&create.span_id), creation_span);
    assert_eq!(create.kind, SpanKind::Server as i32);
    assert_eq!(attr(create, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(
        attr(create, "http.route").as_deref(),
        Some("/v1/operations")
    );
    assert_eq!(
        attr(create, "http.response.status_code").as_deref(),
        Some("201")
    );
    assert_eq!(attr(create, "url.path").as_deref(), Some("/v1/operations"));
    let key_id = attr(create, "opsd.api_key.id").expect("the key's id");
    assert!(uuid::Uuid::parse_str(&key_id).is_ok(), "{key_id}");

    // Its store call is a child span, linked to the writer batch that committed it.
    let store_creates: Vec<&Span> = named(&spans, "store.create")
        .into_iter()
        .filter(|s| s.parent_span_id == create.span_id)
        .collect();
    assert_eq!(store_creates.len(), 1, "one store.create under the request");
    let store_create = store_creates[0];
    assert_eq!(store_create.trace_id, trace_id);
    assert_eq!(
        attr(store_create, "db.system.name").as_deref(),
        Some(backend())
    );
    let batches = named(&spans, "store.batch");
    assert!(
        batches
            .iter()
            .any(|b| links_to(store_create, &b.trace_id, &b.span_id)),
        "store.create links to its batch"
    );

    // The claim, the heartbeat and the final PATCH link to the creating request. The
    // heartbeat and the PATCH, sent with the operation's context, are in its trace.
    let claim = named(&spans, "POST /v1/operations/claim");
    assert!(
        claim.iter().any(|s| links_to(s, &trace_id, &create.span_id)
            && attr(s, "http.response.status_code").as_deref() == Some("200")),
        "a claim links to the creation"
    );
    for name in [
        "POST /v1/operations/{operation_id}/heartbeat",
        "PATCH /v1/operations/{operation_id}",
    ] {
        let found = named(&spans, name);
        assert!(!found.is_empty(), "no {name} span");
        for span in found {
            assert_eq!(span.trace_id, trace_id, "{name} joins the trace");
            assert!(links_to(span, &trace_id, &create.span_id), "{name} links");
            assert_eq!(
                attr(span, "http.route").as_deref(),
                Some(&name[name.find(' ').unwrap() + 1..])
            );
        }
    }

    // The gRPC call: named and described as the RPC conventions say.
    let gets = named(&spans, "google.longrunning.Operations/GetOperation");
    assert_eq!(gets.len(), 1, "one span for the gRPC call");
    assert_eq!(gets[0].trace_id, trace_id);
    assert_eq!(hex(&gets[0].parent_span_id), CALLER_SPAN);
    assert_eq!(attr(gets[0], "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attr(gets[0], "rpc.service").as_deref(),
        Some("google.longrunning.Operations")
    );
    assert_eq!(attr(gets[0], "rpc.method").as_deref(), Some("GetOperation"));

    // The key's secret appears nowhere: not in an attribute, not on the wire.
    let secret = opsd.admin_key.as_str();
    for (_, span) in &spans {
        for a in &span.attributes {
            let v = a.value.as_ref().map(render).unwrap_or_default();
            assert!(!v.contains(secret), "{} holds the secret", a.key);
        }
    }
    for body in receiver.bodies() {
        assert!(
            !body.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "an export carried the secret"
        );
    }

    // The log lines written inside the traced request carry its ids.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("operation created"))
        .expect("the creation's log line");
    assert!(line.contains(&format!("trace_id={TRACE_ID}")), "{line}");
    assert!(line.contains(&format!("span_id={creation_span}")), "{line}");
}

fn backend() -> &'static str {
    match opsd_store_suite::backend() {
        opsd_store_suite::TestBackend::Postgres => "postgresql",
        _ => "sqlite",
    }
}

/// Export off: the caller's context is still kept with the operation, an invalid one is
/// ignored (a new trace, not a refusal), and `opsd work` hands the kept one to its
/// command in `TRACEPARENT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_the_callers_context_is_kept_and_handed_to_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = Opsd::start(dir.path());
    let (status, bad) = create(&opsd, "proj-bad", &[("traceparent", "00-nonsense-01")]).await;
    assert_eq!(status, 201, "{bad}");
    assert!(bad.get("trace_context").is_none(), "{bad}");
    let (_, plain) = create(&opsd, "proj-bad", &[]).await;
    assert!(plain.get("trace_context").is_none(), "{plain}");

    let parent = traceparent();
    let (status, op) = create(&opsd, "proj-cmd", &[("traceparent", &parent)]).await;
    assert_eq!(status, 201, "{op}");
    assert_eq!(op["trace_context"], json!({"traceparent": parent}));
    let id = op["id"].as_str().unwrap().to_owned();

    let seen = dir.path().join("traceparent.txt");
    let command = format!("echo \"$TRACEPARENT\" > {}", seen.display());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .args(["work", "--url", &opsd.base, "--project-id", "proj-cmd"])
        .args(["--idle-poll", "100ms", "--", &command])
        .env("OPSD_KEY", &opsd.admin_key)
        // The worker's own context must not leak into the operation's command.
        .env(
            "TRACEPARENT",
            "00-11111111111111111111111111111111-2222222222222222-01",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let op: Value = opsd
            .client()
            .get(format!("{}/v1/operations/{id}", opsd.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if op["status"] == "done" {
            break;
        }
        if Instant::now() > deadline {
            let _ = worker.kill();
            panic!("never done: {op}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&worker);
    let _ = worker.wait();
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), parent);
}
