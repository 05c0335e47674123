//! `opsd backup` and `opsd restore` on the real binary (SQLite only: on PostgreSQL the
//! server refuses backups, tested in the server's suite).
//!
//! The first test is the backup guarantee: a backup taken from the file while writers
//! hammer the server holds every write acknowledged before it started. It fails if the
//! backup copies the database file without its WAL (acknowledged writes live in the WAL
//! until a checkpoint), or copies pages across several read transactions.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsd_store_suite::{TestBackend, backend};
use serde_json::{Value, json};

use crate::process::Opsd;

/// Acknowledged writes: operation id → highest acknowledged version.
type Acked = Arc<Mutex<HashMap<String, u64>>>;

async fn writer(base: String, client: reqwest::Client, worker: usize, acked: Acked) {
    for i in 0.. {
        let body = json!({"project_id": "backup", "kind": "vm", "type": "create",
                          "resource_id": format!("vm-{worker}-{i}")});
        let Ok(resp) = client
            .post(format!("{base}/v1/operations"))
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        let Ok(op) = resp.json::<Value>().await else {
            return;
        };
        let id = op["id"].as_str().unwrap().to_owned();
        acked.lock().unwrap().insert(id.clone(), 1);
        if i % 2 == 0 {
            let resp = client
                .patch(format!("{base}/v1/operations/{id}"))
                .json(&json!({"status": "running", "progress": 10}))
                .send()
                .await;
            if resp.is_ok_and(|r| r.status() == 200) {
                acked.lock().unwrap().insert(id, 2);
            }
        }
    }
}

fn opsd(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opsd"));
    command.args(args);
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run opsd")
}

fn ok_json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "opsd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_writes_holds_every_write_acknowledged_before_it_started() {
    if backend() == TestBackend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Opsd::start(&data);
    let acked: Acked = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(writer(
                server.base.clone(),
                server.client(),
                w,
                acked.clone(),
            ))
        })
        .collect();
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = acked.lock().unwrap().clone();
    let file = dir.path().join("backup.db");
    let (data_arg, file_arg) = (data.display().to_string(), file.display().to_string());
    let out = tokio::task::spawn_blocking(move || {
        opsd(
            &[
                "backup",
                "--data-dir",
                &data_arg,
                "--to",
                &file_arg,
                "-o",
                "json",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    // Over the API too, while the writers go on.
    let remote = dir.path().join("remote.db");
    let (url, key, remote_arg) = (
        server.base.clone(),
        server.admin_key.clone(),
        remote.display().to_string(),
    );
    let remote_out = tokio::task::spawn_blocking(move || {
        opsd(
            &["backup", "--to", &remote_arg],
            &[("OPSD_URL", &url), ("OPSD_KEY", &key)],
        )
    })
    .await
    .unwrap();
    for w in writers {
        w.abort();
    }
    let lines = ok_json_lines(&out);
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "done", "{lines:?}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l["event"] == "progress")
    );
    let operations = done["summary"]["operations"].as_u64().unwrap();
    assert!(operations >= before.len() as u64, "{done}");
    assert!(
        remote_out.status.success(),
        "{}",
        String::from_utf8_lossy(&remote_out.stderr)
    );
    assert!(String::from_utf8_lossy(&remote_out.stdout).contains("integrity_check ok"));
    assert_eq!(integrity(&file), "ok");
    assert_eq!(integrity(&remote), "ok");
    eprintln!(
        "{} writes acknowledged before the backup, {during} during it",
        before.len()
    );

    // Restored into a new directory and served: every write acknowledged before the
    // backup started is there, at least at its acknowledged version.
    let restored = dir.path().join("restored");
    let out = opsd(
        &[
            "restore",
            "--from",
            &file.display().to_string(),
            "--data-dir",
            &restored.display().to_string(),
            "-o",
            "json",
        ],
        &[],
    );
    let report = &ok_json_lines(&out)[0];
    assert_eq!(report["summary"]["operations"].as_u64(), Some(operations));
    std::fs::copy(data.join("admin.key"), restored.join("admin.key")).unwrap();
    let again = Opsd::start(&restored);
    let client = again.client();
    for (id, version) in &before {
        let resp = client
            .get(format!("{}/v1/operations/{id}", again.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{id} missing from the restored store");
        let op: Value = resp.json().await.unwrap();
        assert!(op["version"].as_u64().unwrap() >= *version, "{op}");
    }
    drop(again);
    assert_eq!(integrity(&restored.join("opsd.db")), "ok");
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

fn refused(out: &Output, words: &str) {
    assert!(!out.status.success(), "should have failed: {:?}", out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(words), "expected {words:?} in: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_bad_files_and_non_empty_targets_and_changes_nothing() {
    if backend() == TestBackend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = Opsd::start(&data);
        let client = server.client();
        for i in 0..5 {
            client
                .post(format!("{}/v1/operations", server.base))
                .json(&json!({"project_id": "p", "kind": "vm", "type": "create",
                              "resource_id": format!("vm-{i}")}))
                .send()
                .await
                .unwrap();
        }
    }
    let p = |path: &Path| path.display().to_string();
    let good = dir.path().join("good.db");
    assert!(
        opsd(&["backup", "--data-dir", &p(&data), "--to", &p(&good)], &[])
            .status
            .success()
    );
    // A second backup to the same name is refused: nothing is overwritten.
    refused(
        &opsd(&["backup", "--data-dir", &p(&data), "--to", &p(&good)], &[]),
        "already exists",
    );
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let corrupted = dir.path().join("corrupted.db");
    let mut damaged = bytes.clone();
    // Pages 2 to 4 (the first tables' b-trees): damage to free space alone would be
    // harmless, and integrity_check rightly passes it.
    for b in &mut damaged[4096..4 * 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&corrupted, &damaged).unwrap();
    let newer = dir.path().join("newer.db");
    std::fs::write(&newer, &bytes).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute("INSERT INTO schema_migrations VALUES (999, 0)", [])
        .unwrap();
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let text = dir.path().join("text.db");
    std::fs::write(&text, "x".repeat(4096)).unwrap();

    let target = dir.path().join("target");
    let restore = |from: &Path, extra: &[&str]| {
        let mut args = vec!["restore", "--from"];
        let from = p(from);
        let target = p(&target);
        args.push(&from);
        args.extend(["--data-dir", &target]);
        args.extend(extra);
        opsd(&args, &[])
    };
    assert!(restore(&good, &[]).status.success());
    let db = target.join("opsd.db");
    let before = sha(&db);
    for (file, words) in [
        (&truncated, "is truncated"),
        (&corrupted, "is corrupted"),
        (&newer, "newer opsd"),
        (&other, "not an opsd store"),
        (&text, "not an SQLite database"),
    ] {
        refused(&restore(file, &["--force"]), words);
        assert_eq!(sha(&db), before, "{} changed the target", file.display());
    }
    // The target now holds 5 operations: refused without --force, replaced with it.
    refused(&restore(&good, &[]), "--force");
    assert_eq!(sha(&db), before);
    assert!(restore(&good, &["--force"]).status.success());

    // A snapshot from before the epoch migration is migrated on restore.
    let older = dir.path().join("older.db");
    std::fs::write(&older, &bytes).unwrap();
    rusqlite::Connection::open(&older)
        .unwrap()
        .execute_batch("DROP TABLE store_meta; DELETE FROM schema_migrations WHERE version = 14;")
        .unwrap();
    let out = restore(&older, &["--force", "-o", "json"]);
    let report = &ok_json_lines(&out)[0];
    assert_eq!(report["migrations_applied"], json!([14]), "{report}");
    assert_eq!(report["summary"]["operations"], 5);
}
