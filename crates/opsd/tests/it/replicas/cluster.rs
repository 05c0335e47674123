//! N replicas of the real binary on one database, and the small HTTP helpers the replica
//! tests share.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opsd_store_suite::{self as testing, TestBackend};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::process::Opsd;
pub use crate::process::metric;

/// True on PostgreSQL; otherwise says why `test` is skipped and returns false.
pub fn postgres_or_skip(test: &str) -> bool {
    if testing::backend() == TestBackend::Postgres {
        return true;
    }
    eprintln!(
        "skipping {test}: replicas share one PostgreSQL database; \
         run with OPSD_TEST_STORE=postgres (scripts/test does)"
    );
    false
}

/// Replicas of `opsd serve` on one database. Dropping it kills them; if the test is
/// failing, the end of each replica's log is printed first.
pub struct Cluster {
    replicas: Vec<Option<Opsd>>,
    dirs: Vec<TempDir>,
    /// Base URLs (`http://127.0.0.1:port`), by replica index; kept after a kill.
    pub bases: Vec<String>,
    /// The admin key the first replica created.
    pub admin_key: String,
}

impl Cluster {
    /// `n` replicas on a fresh schema of the suite's PostgreSQL (`OPSD_TEST_DATABASE_URL`).
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let first = tempfile::tempdir().unwrap();
        let store = testing::process_store_args(first.path());
        Self::start_in(first, &store, n, extra)
    }

    /// `n` replicas on the database at `url`.
    pub fn start_on(url: &str, n: usize, extra: &[&str]) -> Cluster {
        let store = vec!["--database-url".to_owned(), url.to_owned()];
        Self::start_in(tempfile::tempdir().unwrap(), &store, n, extra)
    }

    fn start_in(first: TempDir, store: &[String], n: usize, extra: &[&str]) -> Cluster {
        let mut dirs = vec![first];
        dirs.extend((1..n).map(|_| tempfile::tempdir().unwrap()));
        // A small pool per process: several tests run at once on the suite's cluster.
        let mut flags = vec!["--db-pool-size", "6"];
        flags.extend_from_slice(extra);
        let key_dir = dirs[0].path().to_owned();
        let replicas: Vec<Opsd> = dirs
            .iter()
            .map(|d| {
                let log = File::create(log_path(d.path())).unwrap();
                // Started one after another: the first creates the admin key (the others
                // find that one exists and create none), so its file is in dirs[0].
                Opsd::spawn(d.path(), store, log, &flags, &key_dir)
            })
            .collect();
        for (i, r) in replicas.iter().enumerate().skip(1) {
            assert!(
                r.banner.is_empty(),
                "replica {i} printed a key: {:?}",
                r.banner
            );
            assert!(
                !dirs[i].path().join("admin.key").exists(),
                "replica {i} wrote an admin key"
            );
        }
        Cluster {
            bases: replicas.iter().map(|r| r.base.clone()).collect(),
            admin_key: replicas[0].admin_key.clone(),
            replicas: replicas.into_iter().map(Some).collect(),
            dirs,
        }
    }

    /// Base URL of replica `i`.
    pub fn base(&self, i: usize) -> &str {
        &self.bases[i]
    }

    /// A client with the admin key, each request bounded to 20 s.
    pub fn client(&self) -> reqwest::Client {
        client(&self.admin_key)
    }

    /// `kill -9` replica `i`.
    pub fn kill_9(&mut self, i: usize) {
        self.replicas[i]
            .take()
            .expect("replica is running")
            .kill_9();
    }

    /// The last `lines` lines of replica `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(log_path(self.dirs[i].path())).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.dirs.len() {
                eprintln!(
                    "--- replica {i} ({}) log tail ---\n{}",
                    self.bases[i],
                    self.log_tail(i, 40)
                );
            }
        }
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("opsd.log")
}

/// A client sending `key`, each request bounded to 20 s (streams use their own).
pub fn client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends `req`, asserts the status, returns the JSON body (`null` for an empty one).
pub async fn call(req: reqwest::RequestBuilder, expect: StatusCode) -> Value {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, expect, "unexpected answer: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// Creates an operation in `project` through `base`.
pub async fn create(client: &reqwest::Client, base: &str, project: &str, resource: &str) -> Value {
    let body = json!({
        "project_id": project,
        "kind": "vm",
        "type": "update",
        "resource_id": resource,
    });
    call(
        client.post(format!("{base}/v1/operations")).json(&body),
        StatusCode::CREATED,
    )
    .await
}

/// PATCHes operation `id` through `base`, expecting 200.
pub async fn patch(client: &reqwest::Client, base: &str, id: &str, body: Value) -> Value {
    call(
        client
            .patch(format!("{base}/v1/operations/{id}"))
            .json(&body),
        StatusCode::OK,
    )
    .await
}

/// GETs operation `id` through `base`, expecting 200.
pub async fn get(client: &reqwest::Client, base: &str, id: &str) -> Value {
    call(
        client.get(format!("{base}/v1/operations/{id}")),
        StatusCode::OK,
    )
    .await
}

/// Polls `metric` on `base` until it is at least `at_least`, for up to 10 s.
pub async fn await_metric(client: &reqwest::Client, base: &str, name: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if metric(client, base, name).await.unwrap_or(0.0) >= at_least {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} on {base} did not reach {at_least} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
