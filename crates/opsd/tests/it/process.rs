//! Starting and stopping the real binary on a port chosen by the OS.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `opsd serve`.
pub struct Opsd {
    pub child: Child,
    pub base: String,
    /// The admin key the first start wrote to `<data-dir>/admin.key`.
    pub admin_key: String,
    /// What the first start printed on stdout before listening (the admin key, once).
    pub banner: Vec<String>,
}

impl Opsd {
    /// Starts `opsd serve` on 127.0.0.1:0 with `data_dir` and waits for its address.
    pub fn start(data_dir: &Path) -> Opsd {
        Self::start_logging_to(data_dir, Stdio::inherit())
    }

    /// Like [`start`](Self::start), with the server's log (stderr) sent to `log`.
    pub fn start_logging_to(data_dir: &Path, log: impl Into<Stdio>) -> Opsd {
        Self::start_with(data_dir, log, &[])
    }

    /// Starts `opsd serve` with extra flags.
    pub fn start_with(data_dir: &Path, log: impl Into<Stdio>, extra: &[&str]) -> Opsd {
        let store = opsd_store_suite::process_store_args(data_dir);
        Self::spawn(data_dir, &store, log, extra, data_dir)
    }

    /// Starts `opsd serve` on `data_dir` with the store flags `store` (one of several
    /// replicas on one database), reading the admin key from `key_dir/admin.key`: only
    /// the process that created the key wrote it.
    pub fn spawn(
        data_dir: &Path,
        store: &[String],
        log: impl Into<Stdio>,
        extra: &[&str],
        key_dir: &Path,
    ) -> Opsd {
        Self::spawn_as(
            Command::new(env!("CARGO_BIN_EXE_opsd")),
            data_dir,
            store,
            log,
            extra,
            key_dir,
        )
    }

    /// Like [`spawn`](Self::spawn), with `command` (the binary, or a wrapper that
    /// execs it with its arguments) and its environment.
    pub fn spawn_as(
        mut command: Command,
        data_dir: &Path,
        store: &[String],
        log: impl Into<Stdio>,
        extra: &[&str],
        key_dir: &Path,
    ) -> Opsd {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(store)
            .args(extra)
            .env("OPSD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start opsd");
        let stdout = child.stdout.take().expect("stdout");
        // The first start prints the new admin key before the listening line.
        let mut banner = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("opsd exited before listening")
                .expect("read stdout");
            if let Some(base) = line.strip_prefix("opsd listening on ") {
                // `http://…` or `https://…`
                break base.to_owned();
            }
            banner.push(line);
        };
        let admin_key = std::fs::read_to_string(key_dir.join("admin.key"))
            .expect("admin.key")
            .trim()
            .to_owned();
        Opsd {
            child,
            base,
            admin_key,
            banner,
        }
    }

    /// An HTTP client that sends `key` as a bearer token.
    pub fn client_with(key: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// An HTTP client that sends the admin key.
    pub fn client(&self) -> reqwest::Client {
        Self::client_with(&self.admin_key)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Opsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an unlabelled metric of the opsd at `base` (`None` if it cannot be read).
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
