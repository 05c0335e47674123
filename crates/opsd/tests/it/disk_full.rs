//! The data directory on a full filesystem: writes answer a retryable 503 with
//! `Retry-After` (never a 500), reads keep working, nothing acknowledged is lost, the
//! database stays intact, and writes succeed again by themselves once space is freed.
//! The filesystem is a 24 MiB tmpfs this test mounts; where mounting is not permitted
//! (not root, no CAP_SYS_ADMIN) the test says so and does nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::process::{Opsd, metric};

/// Mounts a tmpfs of `size` on `dir`; false when not permitted.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn body(i: usize) -> Value {
    json!({
        "project_id": "full",
        "kind": "volume",
        "type": "update",
        "resource_id": format!("vol-{i}"),
        "description": "x".repeat(2000),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_retryable_503_and_writes_recover_when_space_is_freed() {
    if opsd_store_suite::backend() != opsd_store_suite::TestBackend::Sqlite {
        // On PostgreSQL the data directory holds only the admin key; a full disk on the
        // database server is the replica suite's restart test's kind of failure.
        eprintln!("SKIPPED a_full_disk_…: the data directory holds the database only on SQLite");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    if !mount_tmpfs(mnt.path(), "24m") {
        eprintln!("SKIPPED a_full_disk_…: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    }
    let _unmount = Unmount(mnt.path());
    let data = mnt.path().join("data");
    let opsd = Opsd::start_logging_to(&data, Stdio::null());
    let client = opsd.client();
    let base = opsd.base.clone();
    // Ballast: fill most of the filesystem, so that the database meets the limit soon.
    let ballast = mnt.path().join("ballast");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", ballast.display()))
        .stderr(Stdio::null())
        .status();
    // dd stopped when the filesystem was full; give the database 3 MiB back.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&ballast)
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(3 << 20)).unwrap();
    drop(file);

    let mut acked: Vec<String> = Vec::new();
    let mut refused = 0;
    let mut i = 0;
    while refused < 20 && i < 20_000 {
        i += 1;
        let resp = client
            .post(format!("{base}/v1/operations"))
            .json(&body(i))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            201 => acked.push(
                resp.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .into(),
            ),
            503 => {
                assert!(
                    resp.headers().contains_key("retry-after"),
                    "503 without Retry-After"
                );
                let e: Value = resp.json().await.unwrap();
                assert_eq!(e["code"], "unavailable", "{e}");
                refused += 1;
            }
            other => panic!(
                "a write on a full disk answered {other}: {}",
                resp.text().await.unwrap()
            ),
        }
    }
    assert!(refused > 0, "the disk never filled after {i} writes");
    assert!(
        !acked.is_empty(),
        "no write succeeded before the disk filled"
    );
    eprintln!(
        "disk full: {} writes acknowledged, then {refused} refused with 503",
        acked.len()
    );
    // Reads keep working while the disk is full.
    for id in acked.iter().rev().take(20) {
        let resp = client
            .get(format!("{base}/v1/operations/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "read of {id} while the disk is full");
    }

    // Free space: writes succeed again, without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let resp = client
            .post(format!("{base}/v1/operations"))
            .json(&body(0))
            .send()
            .await
            .unwrap();
        if resp.status() == 201 {
            acked.push(
                resp.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .into(),
            );
            recovered = true;
            break;
        }
        assert_eq!(resp.status(), 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "writes did not recover after space was freed");

    // Nothing acknowledged is lost, across a kill -9 and a restart, and the file is intact.
    opsd.kill_9();
    let opsd = Opsd::start_logging_to(&data, Stdio::null());
    let client = opsd.client();
    for id in &acked {
        let resp = client
            .get(format!("{}/v1/operations/{id}", opsd.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "acknowledged operation {id} lost");
    }
    opsd.kill_9();
    let conn = rusqlite::Connection::open(data.join("opsd.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// A full disk under log and database, without privileges: the log on the same "disk" as the
/// database, and that disk full. A file-size limit (`RLIMIT_FSIZE`, set on the running
/// process with `prlimit --pid`, which needs no privilege for one's own process) makes
/// every write past 4 MiB in any file fail as a full disk does; the log file already
/// holds 4 MiB, so every log line fails from the start, and the database fails once its
/// WAL or file reaches the limit. SIGXFSZ, which would otherwise kill the process, is
/// ignored by the `sh` that execs opsd (an ignored signal stays ignored across exec).
/// Raising the limit again is "freeing space". Expected: only answers (201 or 503 with
/// Retry-After; never a 500 or a dropped connection), `/readyz` 503 while writes cannot
/// succeed and 200 again by itself afterwards, writes working again without a restart,
/// and the failed log lines counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_log_on_the_full_disk_only_answers_and_writes_recover_without_a_restart() {
    if opsd_store_suite::backend() != opsd_store_suite::TestBackend::Sqlite {
        eprintln!("SKIPPED with_the_log_on_the_full_disk_…: the database is on SQLite only");
        return;
    }
    const LIMIT: u64 = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let log_path = data.join("server.log");
    std::fs::File::create(&log_path)
        .unwrap()
        .set_len(LIMIT)
        .unwrap();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut sh = Command::new("sh");
    sh.args([
        "-c",
        "trap '' XFSZ; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_opsd"),
    ]);
    let store = opsd_store_suite::process_store_args(&data);
    let mut opsd = Opsd::spawn_as(sh, &data, &store, log, &[], &data);
    let pid = opsd.child.id().to_string();
    let limit = |fsize: &str| {
        let ok = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--fsize={fsize}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "prlimit --pid {pid} --fsize={fsize} failed");
    };
    limit(&format!("{LIMIT}:unlimited"));
    let client = opsd.client();
    let base = opsd.base.clone();
    let readyz = async |client: &reqwest::Client| {
        let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap())
    };

    // Fill until writes fail and /readyz says so. A refusal does not always mean the
    // disk stays full: while the database file still has room, a checkpoint can empty
    // the WAL and the next writes succeed again (and /readyz's probe rightly passes).
    // Once the database file too is at the limit, nothing is written any more.
    let mut acked = 0;
    let mut refused = 0;
    let mut refused_in_a_row = 0;
    let mut i = 0;
    let ready = loop {
        i += 1;
        assert!(
            i < 20_000,
            "after {i} writes ({refused} refused) /readyz never said 503"
        );
        let resp = client
            .post(format!("{base}/v1/operations"))
            .json(&body(i))
            .send()
            .await
            .expect("a write on a full disk got no answer");
        match resp.status().as_u16() {
            201 => {
                acked += 1;
                refused_in_a_row = 0;
            }
            503 => {
                assert!(resp.headers().contains_key("retry-after"));
                let e: Value = resp.json().await.unwrap();
                assert_eq!(e["code"], "unavailable", "{e}");
                refused += 1;
                refused_in_a_row += 1;
            }
            other => panic!(
                "a write on a full disk answered {other}: {}",
                resp.text().await.unwrap()
            ),
        }
        if refused_in_a_row >= 5 {
            let (status, ready) = readyz(&client).await;
            if status == 503 {
                break ready;
            }
        }
    };
    eprintln!("file-size limit: {acked} writes acknowledged, {refused} refused with 503");
    assert_eq!(ready["ready"], false, "{ready}");
    assert_ne!(ready["checks"]["disk"], "ok", "{ready}");
    assert_eq!(ready["checks"]["writer"], "ok", "{ready}");
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");

    // Free space: /readyz turns ready by itself (its probe write succeeds), and writes
    // work again, without a restart.
    limit("unlimited:unlimited");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, ready) = readyz(&client).await;
        if status == 200 {
            assert_eq!(ready["checks"]["disk"], "ok", "{ready}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz still {status} after space was freed: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = client
        .post(format!("{base}/v1/operations"))
        .json(&body(0))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let log_errors = metric(&client, &base, "opsd_log_write_errors_total").await;
    assert!(
        log_errors.is_some_and(|n| n > 0.0),
        "no failed log line counted: {log_errors:?}"
    );
    assert!(opsd.child.try_wait().unwrap().is_none(), "opsd exited");
}
