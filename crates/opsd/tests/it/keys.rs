//! API keys end to end with the real binary: the first admin key, the CLI on the data
//! directory, and that no plaintext key ever reaches the database file or the logs.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::{Value, json};

use crate::process::Opsd;

fn opsd_cli(data_dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .arg("keys")
        .arg("--data-dir")
        .arg(data_dir)
        .args(opsd_store_suite::process_store_args(data_dir))
        .args(args)
        .output()
        .expect("run opsd keys");
    assert!(
        out.status.success(),
        "opsd keys {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_creates_one_admin_key_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = Opsd::start(dir.path());
    assert!(opsd.admin_key.starts_with("opsd_"), "{}", opsd.admin_key);
    assert!(
        opsd.banner.iter().any(|l| l == &opsd.admin_key),
        "the key is printed once: {:?}",
        opsd.banner
    );
    let mode = std::fs::metadata(dir.path().join("admin.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = opsd.admin_key.clone();
    drop(opsd);

    let again = Opsd::start(dir.path());
    assert!(
        again.banner.is_empty(),
        "a second start prints no key: {:?}",
        again.banner
    );
    assert_eq!(again.admin_key, key, "admin.key is left alone");
    let resp = again
        .client()
        .get(format!("{}/v1/api_keys", again.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let keys: Value = resp.json().await.unwrap();
    assert_eq!(keys["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_keys_on_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = opsd_cli(
        dir.path(),
        &[
            "create",
            "--name",
            "ci-reader",
            "--role",
            "reader",
            "--projects",
            "p1,p2",
        ],
    );
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("opsd_"), "{out}");
    let id = out.split_whitespace().nth(2).unwrap().to_owned();
    let listed = opsd_cli(dir.path(), &["list"]);
    assert!(
        listed.contains("ci-reader") && listed.contains("p1,p2"),
        "{listed}"
    );
    assert!(
        !listed.contains(&secret),
        "list never shows secrets: {listed}"
    );

    // A key created before the first start means the server creates no admin key.
    let opsd_dir = dir.path();
    let reader = Opsd::client_with(&secret);
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(opsd_dir)
            .args(opsd_store_suite::process_store_args(opsd_dir))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let first = lines.next().unwrap().unwrap();
        let base = first
            .strip_prefix("opsd listening on ")
            .expect("no admin key banner")
            .to_owned();
        assert!(!opsd_dir.join("admin.key").exists());
        let ok = reader
            .get(format!("{base}/v1/operations?project_id=p1"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let other = reader
            .get(format!("{base}/v1/operations?project_id=p3"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 403);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let revoked = opsd_cli(dir.path(), &["revoke", &id]);
    assert!(revoked.contains("revoked="), "{revoked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_key_in_the_database_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("opsd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let opsd = Opsd::start_logging_to(dir.path(), log);
    let admin = opsd.client();
    let mut secrets = vec![opsd.admin_key.clone()];
    for role in ["reader", "producer", "admin"] {
        let resp = admin
            .post(format!("{}/v1/api_keys", opsd.base))
            .json(&json!({"name": format!("k-{role}"), "role": role, "projects": ["p"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        secrets.push(body["key_secret"].as_str().unwrap().to_owned());
    }
    // Use every key, good and bad, so that each passes through authentication and logging.
    for secret in &secrets {
        let client = Opsd::client_with(secret);
        let _ = client
            .get(format!("{}/v1/operations?project_id=p", opsd.base))
            .send()
            .await
            .unwrap();
        let _ = client
            .get(format!("{}/v1/operations?project_id=p", opsd.base))
            .bearer_auth(format!("{secret}x"))
            .send()
            .await;
        let _ = reqwest::get(format!(
            "{}/deploymentmanager/v2/projects/p/global/operations?key={secret}",
            opsd.base
        ))
        .await;
    }
    drop(opsd); // flushes nothing special: SQLite and the log are written as they go

    let mut haystacks = vec![("log", std::fs::read(&log_path).unwrap())];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("opsd.db") {
            haystacks.push((
                Box::leak(name.into_boxed_str()),
                std::fs::read(&path).unwrap(),
            ));
        }
    }
    if let Some(dump) = opsd_store_suite::dump_database(dir.path()).await {
        haystacks.push(("PostgreSQL tables", dump));
    }
    assert!(
        haystacks.len() >= 2,
        "expected the database (files or tables) and the log"
    );
    assert!(
        !haystacks[0].1.is_empty(),
        "the log is empty: is logging on?"
    );
    for secret in &secrets {
        // The recognisable part after the prefix must not appear anywhere.
        let needle = &secret.as_bytes()["opsd_".len()..];
        for (name, hay) in &haystacks {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle),
                "a plaintext key appears in {name}"
            );
        }
    }
}
