//! `opsd copy` on the real binary: a SQLite → PostgreSQL → SQLite round trip whose API
//! answers are byte for byte the original's (PostgreSQL runs only), and a copy killed
//! with SIGKILL in the middle that resumes and verifies (SQLite runs only).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use opsd_domain::lease::ClaimRequest;
use opsd_domain::{
    Kind, NewApiKey, NewOperation, OpType, Patch, ProjectScope, Role, Status, TraceContext,
};
use opsd_store_open::{Backend, StoreConfig};
use opsd_store_suite::{TestBackend, backend};
use serde_json::Value;

use crate::process::Opsd;

const PROJECTS: usize = 5;

async fn open_sqlite(dir: &Path) -> Arc<dyn Backend> {
    opsd_store_open::open(&StoreConfig::Sqlite {
        data_dir: dir.to_owned(),
    })
    .await
    .unwrap()
}

/// `n` operations with histories in every state a store can hold: finished, failed by
/// cancellation, running with a cancellation asked, leased, with idempotency keys.
/// Writes the admin key's secret to `dir/admin.key`.
async fn seed(dir: &Path, n: usize) {
    let store = open_sqlite(dir).await;
    let (_, secret) = store
        .create_key(NewApiKey {
            name: "admin".into(),
            role: Role::Admin,
            projects: ProjectScope::All,
        })
        .await
        .unwrap();
    std::fs::write(dir.join("admin.key"), secret).unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        join_all(chunk.iter().map(|&i| {
            let store = store.clone();
            async move {
                let op = store
                    .create(NewOperation {
                        project_id: format!("proj-{}", i % PROJECTS),
                        kind: [Kind::Vm, Kind::Volume, Kind::Vpc][i % 3],
                        op_type: OpType::Create,
                        resource_id: format!("res-{i}"),
                        details: Default::default(),
                        description: (i % 2 == 0).then(|| format!("operation {i}")),
                        request_id: (i % 3 == 0).then(|| format!("req-{i}")),
                        user: Some("seed".into()),
                        region: Some("eu-1".into()),
                        zone: None,
                        target_link: None,
                        // Some operations carry their creator's trace context, which
                        // the copy must keep (the API shows it).
                        trace_context: (i % 4 == 0).then(|| TraceContext {
                            trace_id: [(i % 251) as u8 + 1; 16],
                            span_id: [7; 8],
                            flags: 1,
                            tracestate: (i % 8 == 0).then(|| "vendor=x".to_owned()),
                        }),
                    })
                    .await
                    .unwrap()
                    .operation;
                let set = |status, progress| Patch {
                    status: Some(status),
                    progress: Some(progress),
                    ..Patch::default()
                };
                if i % 10 == 1 {
                    store.cancel(op.id).await.unwrap();
                    return;
                }
                if i % 2 == 0 {
                    store
                        .update(op.id, set(Status::Running, 30), None)
                        .await
                        .unwrap();
                }
                if i % 4 == 0 {
                    store
                        .update(op.id, set(Status::Done, 100), None)
                        .await
                        .unwrap();
                } else if i % 10 == 2 {
                    store.cancel(op.id).await.unwrap();
                }
            }
        }))
        .await;
    }
    for _ in 0..20 {
        store
            .claim(ClaimRequest {
                project_id: Some("proj-3".into()),
                kinds: Vec::new(),
                statuses: vec![Status::Pending],
                lease: Duration::from_secs(3600),
                worker: "seeder".into(),
            })
            .await
            .unwrap();
    }
}

fn copy(from: &str, to: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opsd"))
        .arg("copy")
        .args(extra)
        .env("OPSD_COPY_FROM", from)
        .env("OPSD_COPY_TO", to)
        .output()
        .expect("run opsd copy")
}

fn passed(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "copy failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verification = lines.last().unwrap();
    assert_eq!(verification["event"], "verification");
    assert_eq!(verification["passed"], true, "{verification}");
    lines
}

/// Every API answer of `server` that the round trip must keep: each operation's GET and
/// history, and every page of each project's list.
async fn answers(server: &Opsd, ids: &[String]) -> Vec<String> {
    let client = server.client();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let resp = client.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            resp.text().await.unwrap()
        }
    };
    let mut out = Vec::new();
    for chunk in ids.chunks(64) {
        out.extend(join_all(chunk.iter().map(|id| get(format!("/v1/operations/{id}")))).await);
        out.extend(
            join_all(
                chunk
                    .iter()
                    .map(|id| get(format!("/v1/operations/{id}/events"))),
            )
            .await,
        );
    }
    for p in 0..PROJECTS {
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/operations?project_id=proj-{p}&limit=100");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = get(path).await;
            let next = serde_json::from_str::<Value>(&page).unwrap()["pagination"]["next_cursor"]
                .as_str()
                .map(str::to_owned);
            out.push(page);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    out
}

fn serve_sqlite(dir: &Path) -> Opsd {
    Opsd::spawn(dir, &[], Stdio::null(), &[], dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_to_postgres_to_sqlite_answers_byte_for_byte_the_same() {
    if backend() != TestBackend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let started = std::time::Instant::now();
    seed(&a, 10_000).await;
    eprintln!("seeded in {:?}", started.elapsed());
    let pg = opsd_store_suite::fresh_schema().await.expose().to_owned();
    let (a_arg, b_arg) = (a.display().to_string(), b.display().to_string());
    let there = tokio::task::spawn_blocking({
        let (a_arg, pg) = (a_arg.clone(), pg.clone());
        move || copy(&a_arg, &pg, &["-o", "json"])
    })
    .await
    .unwrap();
    let lines = passed(&there);
    assert_eq!(
        lines[lines.len() - 1]["source"]["counts"]["operations"],
        10_000
    );
    // The way back skips the copy's own verification: every answer is compared below,
    // which is stronger, and reading both stores in full again took about a quarter of
    // this test's time (the way there verified a PostgreSQL fingerprint already).
    let back =
        tokio::task::spawn_blocking(move || copy(&pg, &b_arg, &["--no-verify", "-o", "json"]))
            .await
            .unwrap();
    assert!(
        back.status.success(),
        "copy back failed: {}",
        String::from_utf8_lossy(&back.stderr)
    );
    std::fs::copy(a.join("admin.key"), b.join("admin.key")).unwrap();
    eprintln!("copied there and back in {:?}", started.elapsed());

    let (original, round_tripped) = (serve_sqlite(&a), serve_sqlite(&b));
    let ids: Vec<String> = {
        let store = opsd_store_sqlite::copy::SqliteCopy::source(&a.join("opsd.db")).unwrap();
        let events = opsd_store::copy::CopySource::events_after(&store, 0, 1_000_000)
            .await
            .unwrap();
        let mut ids: Vec<String> = events.iter().map(|e| e.operation_id.to_string()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    assert_eq!(ids.len(), 10_000);
    // Both servers at once: each is a process of its own, and the two cores share them.
    let (expected, got) = tokio::join!(answers(&original, &ids), answers(&round_tripped, &ids));
    assert_eq!(expected.len(), got.len());
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e, g);
    }
    eprintln!("{} answers compared in {:?}", got.len(), started.elapsed());
}

fn copy_state(db: &Path) -> Option<String> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(
        "SELECT value FROM store_meta WHERE key = 'copy_state'",
        [],
        |r| r.get(0),
    )
    .ok()
}

fn copy_after(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .ok()
        .and_then(|c| {
            c.query_row(
                "SELECT value FROM store_meta WHERE key = 'copy_after'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Killed with SIGKILL after some batches committed, the target refuses to be served;
/// the copy run again resumes from the last committed batch and the verification
/// passes. Without the progress committed with each batch, the second run would start
/// from the beginning and fail on operations it already holds (or, resuming from a
/// point past what was committed, miss events and fail the verification).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_midway_resumes_and_verifies() {
    if backend() == TestBackend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    seed(&a, 3_000).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .args(["copy", "--batch-size", "20", "--no-verify", "-o", "json"])
        .env("OPSD_COPY_FROM", &a)
        .env("OPSD_COPY_TO", &b)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let target = b.join("opsd.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while copy_after(&target) < 400 {
        assert!(
            std::time::Instant::now() < deadline,
            "the copy made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        copy_state(&target).as_deref(),
        Some("copying"),
        "killed too late"
    );
    let interrupted_at = copy_after(&target);

    // Not servable half-copied.
    let refused = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unfinished `opsd copy`"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let out = copy(
        &a.display().to_string(),
        &b.display().to_string(),
        &["-o", "json"],
    );
    let lines = passed(&out);
    let pass = lines.iter().find(|l| l["event"] == "pass").unwrap();
    assert_eq!(pass["report"]["resumed"], true, "{pass}");
    assert!(pass["report"]["after"].as_i64().unwrap() > interrupted_at);
    assert_eq!(copy_state(&target).as_deref(), Some("done"));

    // A target where an unused `opsd serve` made its first admin key is empty: the key
    // is replaced by the source's, and the copy says so.
    let d = dir.path().join("d");
    drop(serve_sqlite(&d));
    let out = copy(
        &a.display().to_string(),
        &d.display().to_string(),
        &["-o", "json"],
    );
    let lines = passed(&out);
    let pass = lines.iter().find(|l| l["event"] == "pass").unwrap();
    assert!(pass["report"]["replaced_first_key"].is_string(), "{pass}");

    // A target holding another store is refused, and so is a non-empty one.
    let c = dir.path().join("c");
    seed(&c, 5).await;
    let refused = copy(&c.display().to_string(), &b.display().to_string(), &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("another store"));
    let refused = copy(&a.display().to_string(), &c.display().to_string(), &[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// The switch-over: a first pass while the source serves writes, then the source made
/// read-only (writes answer 503 `read_only`), a final pass that copies what changed
/// since, and a verification that passes; the copy then serves every write the source
/// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_pass_while_serving_and_a_final_pass_read_only_miss_nothing() {
    if backend() == TestBackend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let source = serve_sqlite(&a);
    let client = source.client();
    let write = |i: usize| {
        let (client, base) = (client.clone(), source.base.clone());
        async move {
            let body = serde_json::json!({"project_id": "p", "kind": "vm", "type": "create",
                                          "resource_id": format!("vm-{i}")});
            let resp = client
                .post(format!("{base}/v1/operations"))
                .json(&body)
                .send()
                .await
                .ok()?;
            if resp.status() != 201 {
                return None;
            }
            let op: Value = resp.json().await.ok()?;
            let id = op["id"].as_str()?.to_owned();
            let resp = client
                .patch(format!("{base}/v1/operations/{id}"))
                .json(&serde_json::json!({"status": "running"}))
                .send()
                .await
                .ok()?;
            (resp.status() == 200).then_some(id)
        }
    };
    let mut acked: Vec<String> = join_all((0..200).map(write))
        .await
        .into_iter()
        .flatten()
        .collect();
    // The first pass, with writes going on.
    let (a_arg, b_arg) = (a.display().to_string(), b.display().to_string());
    let first = tokio::spawn({
        let (a_arg, b_arg) = (a_arg.clone(), b_arg.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                copy(&a_arg, &b_arg, &["--no-verify", "--batch-size", "50"])
            })
            .await
            .unwrap()
        }
    });
    let mut i = 200;
    while !first.is_finished() {
        acked.extend(join_all((i..i + 20).map(write)).await.into_iter().flatten());
        i += 20;
    }
    assert!(first.await.unwrap().status.success());
    acked.extend(join_all((i..i + 50).map(write)).await.into_iter().flatten());

    // Read-only: writes refused with a clear code.
    let resp = client
        .put(format!("{}/v1/admin/read_only", source.base))
        .json(&serde_json::json!({"read_only": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let refused = client
        .post(format!("{}/v1/operations", source.base))
        .json(&serde_json::json!({"project_id": "p", "kind": "vm", "type": "create", "resource_id": "late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "read_only");

    // The final pass, then the copy serves everything acknowledged.
    let out = tokio::task::spawn_blocking(move || copy(&a_arg, &b_arg, &["-o", "json"]))
        .await
        .unwrap();
    let lines = passed(&out);
    let pass = lines.iter().find(|l| l["event"] == "pass").unwrap();
    assert_eq!(pass["report"]["resumed"], true);
    drop(source);
    std::fs::copy(a.join("admin.key"), b.join("admin.key")).unwrap();
    let moved = serve_sqlite(&b);
    let client = moved.client();
    for id in &acked {
        let op: Value = client
            .get(format!("{}/v1/operations/{id}", moved.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(op["status"], "running", "{id}: {op}");
    }
    eprintln!("{} writes acknowledged, all in the copy", acked.len());
}
