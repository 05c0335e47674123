//! `opsd ops …`, `opsd work` and `opsd completions` as a user types them: the real
//! binary against a real server, output and exit codes checked.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::Opsd;

struct Cli<'a> {
    opsd: &'a Opsd,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args([
                "ops",
                "--url",
                &self.opsd.base,
                "--key",
                &self.opsd.admin_key,
            ])
            .args(args)
            .output()
            .expect("run opsd ops")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "opsd ops {args:?} exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// `wait -o json`, whatever its exit code (3 for a failed operation).
    fn wait(&self, id: &str, timeout: &str) -> Value {
        let out = self.run(&["wait", id, "--timeout", timeout, "-o", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stderr)))
    }

    fn create(&self, project: &str, resource: &str) -> String {
        let op = self.json(&[
            "create",
            "--project-id",
            project,
            "--kind",
            "vm",
            "--type",
            "update",
            "--resource-id",
            resource,
        ]);
        op["id"].as_str().unwrap().to_owned()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn start(dir: &Path) -> Opsd {
    Opsd::start_logging_to(dir, Stdio::null())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_for_people_and_json_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = start(dir.path());
    let cli = Cli { opsd: &opsd };
    let id = cli.create("proj-t", "vm-table");

    let table = cli.ok(&["get", &id]);
    assert!(table.contains('│') && table.contains("status"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("status") && l.contains("pending")),
        "{table}"
    );
    assert!(table.contains("vm-table"), "{table}");
    let json = cli.json(&["get", &id]);
    assert_eq!(json["status"], "pending");
    assert_eq!(json["resource_id"], "vm-table");

    let out = cli.run(&["list", "--project-id", "proj-t"]);
    let listed = text(&out.stdout);
    assert!(
        listed.contains("resource") && listed.contains("vm-table"),
        "{listed}"
    );
    assert!(
        text(&out.stderr).contains("1 of 1 operations"),
        "{}",
        text(&out.stderr)
    );

    cli.ok(&[
        "update",
        &id,
        "--status",
        "running",
        "--progress",
        "40",
        "--message",
        "resizing",
    ]);
    let events = cli.ok(&["events", &id]);
    assert!(
        events.contains("resizing") && events.contains("40%"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_all_follows_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = start(dir.path());
    let cli = Cli { opsd: &opsd };
    for i in 0..7 {
        cli.create("proj-all", &format!("vm-{i}"));
    }
    let page = cli.json(&["list", "--project-id", "proj-all", "--limit", "2"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = cli.json(&[
        "list",
        "--project-id",
        "proj-all",
        "--limit",
        "2",
        "--cursor",
        &cursor,
    ]);
    assert_eq!(next["items"].as_array().unwrap().len(), 2);
    let all = cli.json(&["list", "--project-id", "proj-all", "--limit", "2", "--all"]);
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 7, "four pages of two");
    let mut resources: Vec<_> = items
        .iter()
        .map(|o| o["resource_id"].as_str().unwrap())
        .collect();
    resources.sort_unstable();
    resources.dedup();
    assert_eq!(resources.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = start(dir.path());
    let cli = Cli { opsd: &opsd };

    let done = cli.create("proj-w", "vm-done");
    cli.ok(&["update", &done, "--status", "done"]);
    assert_eq!(cli.run(&["wait", &done]).status.code(), Some(0));

    let failed = cli.create("proj-w", "vm-failed");
    cli.ok(&[
        "update",
        &failed,
        "--status",
        "failed",
        "--error-code",
        "QUOTA",
        "--error-message",
        "no quota",
    ]);
    let out = cli.run(&["wait", &failed]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stdout).contains("QUOTA: no quota"),
        "{}",
        text(&out.stdout)
    );

    let pending = cli.create("proj-w", "vm-pending");
    let started = Instant::now();
    let out = cli.run(&["wait", &pending, "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        text(&out.stderr).contains("still pending"),
        "{}",
        text(&out.stderr)
    );

    let out = cli.run(&["wait", &uuid::Uuid::now_v7().to_string()]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not_found"),
        "{}",
        text(&out.stderr)
    );

    // Finished while waiting: the wait is woken by the write.
    let later = cli.create("proj-w", "vm-later");
    let child = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .args([
            "ops",
            "--url",
            &opsd.base,
            "--key",
            &opsd.admin_key,
            "wait",
            &later,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cli.ok(&["update", &later, "--status", "running", "--progress", "50"]);
    cli.ok(&["update", &later, "--status", "done"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("100%"), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_errors_carry_the_servers_message_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = start(dir.path());
    let cli = Cli { opsd: &opsd };
    let id = cli.create("proj-c", "vm-1");
    let out = cli.ok(&["cancel", &id]);
    assert!(out.contains("failed") && out.contains("CANCELLED"), "{out}");

    let again = cli.run(&["cancel", &id]);
    assert_eq!(again.status.code(), Some(1));
    let e = text(&again.stderr);
    assert!(
        e.contains("already failed") && e.contains("already_finished"),
        "{e}"
    );
    assert!(e.contains("field status"), "{e}");

    let bad = cli.run(&[
        "create",
        "--project-id",
        "no spaces",
        "--kind",
        "vm",
        "--type",
        "create",
        "--resource-id",
        "x",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let e = text(&bad.stderr);
    assert!(
        e.contains("may only contain") && e.contains("field project_id"),
        "{e}"
    );
}

/// A running `opsd work`, killed if the test ends before it stops (a failing assertion
/// must not leave a worker behind).
struct Worker(Option<std::process::Child>);

impl Worker {
    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().unwrap()
    }

    fn take(&mut self) -> std::process::Child {
        self.0.take().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn work(opsd: &Opsd, project: &str, lease: &str, command: &str) -> Worker {
    let child = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .args(["work", "--url", &opsd.base])
        .env("OPSD_KEY", &opsd.admin_key)
        .args([
            "--project-id",
            project,
            "--lease",
            lease,
            "--idle-poll",
            "100ms",
        ])
        .args(["--concurrency", "2", "--", command])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Worker(Some(child))
}

fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsd_work_runs_a_command_per_operation() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = start(dir.path());
    let cli = Cli { opsd: &opsd };
    let ids: Vec<String> = ["vm-a", "vm-b", "bad"]
        .iter()
        .map(|r| cli.create("proj-work", r))
        .collect();
    let log = dir.path().join("ran.txt");
    let command = format!(
        "echo progress 50 halfway; sleep 0.3; case $OPSD_RESOURCE_ID in bad) echo boom >&2; exit 3;; esac; \
         echo $OPSD_OPERATION_ID ${{OPSD_KEY:-no-key}} >> {}",
        log.display()
    );
    let mut worker = work(&opsd, "proj-work", "3s", &command);
    let mut statuses = Vec::new();
    for id in &ids {
        let op = cli.wait(id, "20s");
        statuses.push(op);
    }
    sigterm(worker.child());
    let out = worker.take().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("2 done, 1 failed"),
        "{}",
        text(&out.stderr)
    );

    assert_eq!(statuses[0]["status"], "done");
    assert_eq!(statuses[1]["status"], "done");
    assert_eq!(statuses[2]["status"], "failed");
    assert_eq!(statuses[2]["error"]["errors"][0]["code"], "EXIT_3");
    assert_eq!(statuses[2]["error"]["errors"][0]["message"], "boom");
    let mut ran: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    let mut expected: Vec<String> = ids[..2].iter().map(|id| format!("{id} no-key")).collect();
    expected.sort();
    assert_eq!(ran, expected, "each once, without the worker's key");
    let events = cli.ok(&["events", &ids[0]]);
    assert!(
        events
            .lines()
            .any(|l| l.contains("running") && l.contains("50%") && l.contains("halfway")),
        "progress from the command's output: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsd_work_stops_a_cancelled_command_and_a_killed_worker_leaves_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = start(dir.path());
    let cli = Cli { opsd: &opsd };
    let id = cli.create("proj-stop", "vm-1");
    let mut worker = work(&opsd, "proj-stop", "1s", "sleep 20");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli.json(&["get", &id])["status"] != "running" {
        assert!(Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cli.ok(&["cancel", &id]);
    let started = Instant::now();
    let ended = cli.wait(&id, "10s");
    assert_eq!(ended["status"], "failed");
    assert_eq!(ended["error"]["errors"][0]["code"], "CANCELLED");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped, not waited out"
    );

    // kill -9 mid-operation: no heartbeat, the lease expires, the operation is unknown.
    let id = cli.create("proj-stop", "vm-2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli.json(&["get", &id])["status"] != "running" {
        assert!(Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.child().kill().unwrap();
    worker.child().wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let op = cli.json(&["get", &id]);
        if op["status"] == "unknown" {
            assert!(
                op["status_message"]
                    .as_str()
                    .unwrap()
                    .contains("stopped heartbeating")
            );
            break;
        }
        assert!(Instant::now() < deadline, "still {}", op["status"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn completions_for_three_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = text(&out.stdout);
        assert!(
            script.contains("opsd") && script.contains("wait"),
            "{shell}: {script}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_trusts_a_self_signed_server_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (cert, key) = (fixtures.join("tls-cert.pem"), fixtures.join("tls-key.pem"));
    let opsd = Opsd::start_with(
        dir.path(),
        Stdio::null(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    // The test certificate names localhost.
    let port = opsd.base.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}");
    let list = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args(["ops", "--url", &url, "--key", &opsd.admin_key])
            .args(extra)
            .args(["list", "--project-id", "p", "-o", "json"])
            .output()
            .unwrap()
    };
    let trusted = list(&["--ca-cert", cert.to_str().unwrap()]);
    assert!(trusted.status.success(), "{}", text(&trusted.stderr));
    let page: Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(page["pagination"]["total_count"], 0);

    let untrusted = list(&[]);
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        text(&untrusted.stderr).contains("cannot reach opsd"),
        "{}",
        text(&untrusted.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_readable_lines_or_json_lines() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let opsd = start(dir.path());
    let cli = Cli { opsd: &opsd };
    let id = cli.create("proj-watch", "vm-1");
    cli.ok(&[
        "update",
        &id,
        "--status",
        "running",
        "--progress",
        "30",
        "--message",
        "resizing",
    ]);
    for (format, check) in [
        (
            "table",
            (|line: &str, id: &str| {
                assert!(line.contains(id) && line.contains("vm-1"), "{line}");
            }) as fn(&str, &str),
        ),
        ("json", |line: &str, id: &str| {
            let op: Value = serde_json::from_str(line).unwrap();
            assert_eq!(op["id"], id);
        }),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args([
                "ops",
                "--url",
                &opsd.base,
                "--key",
                &opsd.admin_key,
                "-o",
                format,
            ])
            .args(["watch", "--project-id", "proj-watch", "--after", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let second = lines.next().unwrap().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        check(&first, &id);
        check(&second, &id);
        if format == "table" {
            assert!(
                first.contains("pending") && second.contains("running"),
                "{first}\n{second}"
            );
            assert!(
                second.contains("30%") && second.contains("resizing"),
                "{second}"
            );
        }
    }
}
