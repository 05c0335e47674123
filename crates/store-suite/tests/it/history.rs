//! Compact history (ARCHITECTURE.md, "History encoding") converts databases made before
//! it without changing a byte of what they answer. The fixture under
//! `tests/fixtures/history-0006` was made by opsd 34b0dbb (schema 0006, a JSON snapshot
//! per event) with [`write_history_fixture`], once per backend: `opsd.db` (SQLite) and
//! `postgres.sql` (`pg_dump --inserts --no-owner --no-privileges -n <schema>` of the
//! test schema, with psql's `\restrict` lines, the `search_path` reset and `CREATE
//! SCHEMA` removed and the schema renamed `opsd_fixture`), each with its `ids*.txt` and
//! what that release answered, `expected*.txt`. Opening the fixture migrates it;
//! [`render`] must then give the expected text back byte for byte: each operation's
//! events list and every project's watch replay from seq 0 (each replayed operation in
//! its canonical serde JSON, which is what watch and GET render from).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opsd_domain::lease::ClaimRequest;
use opsd_domain::{ErrorItem, Kind, OpType, OperationError, Patch, Status, Warning, WarningData};
use opsd_store::{Heartbeat, Preconditions, Store, StoreError};
use opsd_store_open::{DatabaseUrl, StoreConfig};
use opsd_store_suite::{TestBackend, TestDb, backend};
use uuid::Uuid;

use crate::support::{new_op, status};

pub const PROJECTS: [&str; 2] = ["hist-a", "hist-b"];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history-0006")
}

/// What the store answers about `ids` and [`PROJECTS`], as text.
async fn render(store: &Arc<dyn Store>, ids: &[Uuid]) -> String {
    let mut out = String::new();
    for id in ids {
        match store.events(*id).await {
            Ok(events) => {
                writeln!(out, "events {id}").unwrap();
                for e in events {
                    writeln!(out, "  {e:?}").unwrap();
                }
            }
            Err(e) => writeln!(out, "events {id}: {e}").unwrap(),
        }
    }
    for project in PROJECTS {
        let b = store.events_since(project, 0, 1000).await.unwrap();
        writeln!(out, "watch {project} horizon={} head={}", b.horizon, b.head).unwrap();
        for c in b.changes {
            let json = serde_json::to_string(&*c.operation).unwrap();
            writeln!(out, "  {} {json}", c.event_seq).unwrap();
        }
    }
    out
}

#[tokio::test]
async fn a_database_made_before_compact_history_answers_byte_for_byte() {
    let db = TestDb::new().await;
    let suffix = load_fixture(&db, "").await;
    let store: Arc<dyn Store> = db.open().await;
    let ids = fixture_ids(suffix);
    let expected =
        std::fs::read_to_string(fixture_dir().join(format!("expected{suffix}.txt"))).unwrap();
    let got = render(&store, &ids).await;
    assert!(got.len() > 2000 && got.contains("\"cancel_requested\":true"));
    assert_eq!(got, expected);
}

/// The idempotency fingerprint shrank from a hex SHA-256 to its first 16 bytes
/// (ARCHITECTURE.md, "Storage size"): a retry of a create stored before that still
/// replays the same operation, and a different body under its request_id still
/// conflicts. The fixture's creates named no request_id, so one is given one here, with
/// the hash that release stored (hex SHA-256 of the canonical body).
#[tokio::test]
async fn a_retry_of_a_request_stored_before_the_short_fingerprint_replays() {
    let mut retry = new_op(PROJECTS[0], Kind::Volume, OpType::Update, "vol-1");
    retry.request_id = Some("resize-vol-1".into());
    let old_hash = opsd_store::rules::hex_sha256(&retry.canonical_json());
    let db = TestDb::new().await;
    // The fixture's only vol-1 operation, created with exactly `retry`'s body.
    let set = format!(
        "UPDATE operations SET request_id = 'resize-vol-1', request_hash = '{old_hash}' \
         WHERE resource_id = 'vol-1'"
    );
    let suffix = load_fixture(&db, &set).await;
    let store: Arc<dyn Store> = db.open().await;
    let original = fixture_ids(suffix)[1];
    let stored = store.get(original).await.unwrap().unwrap();
    assert_eq!(stored.resource_id, "vol-1");
    let replayed = store.create(retry.clone()).await.unwrap();
    assert!(!replayed.created, "the retry made a second operation");
    assert_eq!(replayed.operation.id, original);

    let mut different = retry;
    different.description = Some("another body".into());
    let err = store.create(different).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::IdempotencyConflict { existing, .. } if *existing == original),
        "{err}"
    );
}

/// The fixture's operations, in the order `write_history_fixture` made them.
pub fn fixture_ids(suffix: &str) -> Vec<Uuid> {
    std::fs::read_to_string(fixture_dir().join(format!("ids{suffix}.txt")))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Copies the fixture into `db`'s backend, runs `sql` on it (before opsd migrates it),
/// and returns the suffix of the backend's expected files.
pub async fn load_fixture(db: &TestDb, sql: &str) -> &'static str {
    let dir = fixture_dir();
    match (backend(), &db.config) {
        (TestBackend::Sqlite, _) => {
            let path = db.dir.path().join("opsd.db");
            std::fs::copy(dir.join("opsd.db"), &path).unwrap();
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(sql)
                .unwrap();
            ""
        }
        (TestBackend::Postgres, StoreConfig::Postgres { url, .. }) => {
            load_postgres_fixture(url, &dir, sql).await;
            "-postgres"
        }
        (TestBackend::Postgres, StoreConfig::Sqlite { .. }) => unreachable!(),
    }
}

/// Loads `postgres.sql` into the test's (empty) schema, then runs `sql`.
async fn load_postgres_fixture(url: &DatabaseUrl, dir: &Path, sql: &str) {
    let (client, connection) = url.config().connect(tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(connection);
    let schema: String = client
        .query_one("SELECT current_schema()", &[])
        .await
        .unwrap()
        .get(0);
    let fixture = std::fs::read_to_string(dir.join("postgres.sql")).unwrap();
    client
        .batch_execute(&fixture.replace("opsd_fixture", &schema))
        .await
        .unwrap();
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = conn.await;
}

fn warning(code: &str) -> Warning {
    Warning {
        code: code.into(),
        message: format!("{code} happened"),
        data: vec![WarningData {
            key: "disk".into(),
            value: "sda".into(),
        }],
    }
}

/// Writes the fixture with the store of the checked-out release (run it on the release
/// the fixture stands for; see the module comment):
/// `OPSD_HISTORY_FIXTURE=dir cargo test -p opsd-store-open --test it write_history_fixture -- --ignored`,
/// then `sqlite3 dir/opsd.db 'PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;
/// PRAGMA page_size=1024; VACUUM'` (small pages keep the committed file at ~50 KB) and
/// drop the `-wal`/`-shm` files.
#[tokio::test]
#[ignore = "writes the fixture; run by hand"]
async fn write_history_fixture() {
    let out = PathBuf::from(std::env::var("OPSD_HISTORY_FIXTURE").unwrap());
    let db = TestDb::new().await;
    let store: Arc<dyn Store> = db.open().await;
    let [a, b] = PROJECTS;
    let mut ids = Vec::new();
    let create = |project: &'static str, kind: Kind, t: OpType, r: &'static str| {
        let store = store.clone();
        async move {
            store
                .create(new_op(project, kind, t, r))
                .await
                .unwrap()
                .operation
                .id
        }
    };
    // Done first and deleted by retention: the horizon moves above its events.
    let gone = create(a, Kind::Vm, OpType::Create, "vm-gone").await;
    store
        .update(gone, status(Status::Running), None)
        .await
        .unwrap();
    store
        .update(gone, status(Status::Done), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = opsd_domain::now();
    assert_eq!(store.purge_terminal(cutoff, 10).await.unwrap(), 1);
    ids.push(gone);

    // Progress, messages, warnings, then done.
    let done = create(a, Kind::Volume, OpType::Update, "vol-1").await;
    store
        .update(done, status(Status::Running), None)
        .await
        .unwrap();
    for p in [10u8, 55, 90] {
        let patch = Patch {
            progress: Some(p),
            status_message: Some(format!("copying {p}%")),
            warnings: if p == 55 {
                vec![warning("SLOW_DISK")]
            } else {
                vec![]
            },
            ..Patch::default()
        };
        store.update(done, patch, None).await.unwrap();
    }
    store
        .update(done, status(Status::Done), None)
        .await
        .unwrap();
    ids.push(done);

    // Failed with an error and an HTTP status.
    let failed = create(b, Kind::Vpc, OpType::Delete, "vpc-1").await;
    store
        .update(failed, status(Status::Running), None)
        .await
        .unwrap();
    let fail = Patch {
        status: Some(Status::Failed),
        status_message: Some("quota".into()),
        error: Some(OperationError {
            errors: vec![ErrorItem {
                code: "QUOTA_EXCEEDED".into(),
                message: "no more \"vpcs\"\nin region".into(),
                location: Some("spec.cidr".into()),
            }],
        }),
        http_error_status_code: Some(429),
        http_error_message: Some("Too Many Requests".into()),
        warnings: vec![warning("RETRIED"), warning("RETRIED_AGAIN")],
        ..Patch::default()
    };
    store.update(failed, fail, None).await.unwrap();
    ids.push(failed);

    // Claimed by a worker, beats, is asked to cancel, fails with CANCELLED.
    let leased = create(b, Kind::NksNodePool, OpType::Restart, "np-1").await;
    let claim = ClaimRequest {
        project_id: Some(b.into()),
        kinds: vec![Kind::NksNodePool],
        statuses: vec![Status::Pending],
        lease: Duration::from_secs(60),
        worker: "worker-1".into(),
    };
    let claimed = store.claim(claim).await.unwrap().unwrap();
    assert_eq!(claimed.operation.id, leased);
    let beat = Heartbeat {
        lease_token: claimed.lease_token.clone(),
        progress: Some(30),
        status_message: Some("draining".into()),
    };
    store.heartbeat(leased, beat).await.unwrap();
    store.cancel(leased).await.unwrap();
    let cancelled = Patch {
        status: Some(Status::Failed),
        error: Some(OperationError {
            errors: vec![ErrorItem {
                code: "CANCELLED".into(),
                message: "cancelled".into(),
                location: None,
            }],
        }),
        ..Patch::default()
    };
    let pre = Preconditions {
        expected_version: None,
        lease_token: Some(claimed.lease_token),
    };
    store.update_with(leased, cancelled, pre).await.unwrap();
    ids.push(leased);

    // Cancelled while pending (failed at once), and one still pending.
    let pending_cancel = create(a, Kind::Vm, OpType::Update, "vm-2").await;
    store.cancel(pending_cancel).await.unwrap();
    ids.push(pending_cancel);
    ids.push(create(a, Kind::Vm, OpType::Create, "vm-3").await);

    std::fs::create_dir_all(&out).unwrap();
    let text = render(&store, &ids).await;
    std::fs::write(out.join("expected.txt"), text).unwrap();
    let ids: String = ids.iter().map(|id| format!("{id}\n")).collect();
    std::fs::write(out.join("ids.txt"), ids).unwrap();
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let StoreConfig::Postgres { url, .. } = &db.config {
        // For `pg_dump --inserts --no-owner -n <schema>` (see `postgres.sql`).
        std::fs::write(out.join("postgres-url.txt"), url.expose()).unwrap();
        return;
    }
    for f in ["opsd.db", "opsd.db-wal"] {
        let from = db.dir.path().join(f);
        if from.exists() {
            std::fs::copy(from, out.join(f)).unwrap();
        }
    }
}
