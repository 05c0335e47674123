//! The PostgreSQL password given to the binary never shows: not when the database cannot
//! be reached, not in `--help` (which would print the environment's value), not in the
//! log. These run without a database: the URL points at a closed port.

use std::process::Command;

const PASSWORD: &str = "hunter2-never-print-me";

fn url() -> String {
    // Port 1 on loopback: connection refused at once.
    format!("postgres://opsd:{PASSWORD}@127.0.0.1:1/opsd")
}

#[test]
fn an_unreachable_database_is_reported_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let url = url();
    for args in [
        vec!["migrate", "--database-url", &url, "--data-dir", data_dir],
        vec![
            "keys",
            "--database-url",
            &url,
            "--data-dir",
            data_dir,
            "list",
        ],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--data-dir",
            data_dir,
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args(&args)
            .env("OPSD_LOG", "debug")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} cannot succeed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(PASSWORD),
            "{args:?} printed the password:\n{text}"
        );
        assert!(
            text.contains("postgres://opsd:***@127.0.0.1:1/opsd"),
            "{args:?} names the database it could not reach:\n{text}"
        );
    }
}

#[test]
fn help_does_not_show_the_url_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .args(["serve", "--help"])
        .env("OPSD_DATABASE_URL", url())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--database-url"));
    assert!(!text.contains(PASSWORD), "{text}");
}
