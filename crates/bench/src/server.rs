//! Server processes under test: `opsd serve` and the HTTP and gRPC ceilings, each a
//! child process started on the server core, found by the `… listening on http://ADDR`
//! line it prints first, measured by its peak RSS (`VmHWM`) and killed at the end of its
//! scenario.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use opsd_store_open::DatabaseUrl;

use crate::machine::Pinning;

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server process; killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `opsd serve` on an OS-chosen loopback port with `data_dir` (and the
    /// PostgreSQL database at `database_url`, if given: the data directory then holds only
    /// the first admin key); its log goes to `opsd.log` in the data directory (read it
    /// when a scenario reports errors).
    pub fn opsd(
        opsd: &Path,
        data_dir: &Path,
        database_url: Option<&DatabaseUrl>,
        pinning: &Pinning,
    ) -> Result<Server, String> {
        Self::opsd_with_env(opsd, data_dir, database_url, pinning, &[])
    }

    /// [`opsd`](Self::opsd) with extra environment variables (opsd's settings).
    pub fn opsd_with_env(
        opsd: &Path,
        data_dir: &Path,
        database_url: Option<&DatabaseUrl>,
        pinning: &Pinning,
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let server = Self::replica_with_env(opsd, data_dir, database_url, pinning, env)?;
        // A fresh data directory gets an admin key on opsd's first start.
        let key = std::fs::read_to_string(data_dir.join("admin.key"))
            .map_err(|e| format!("cannot read opsd's admin.key: {e}"))?;
        crate::loadgen::set_api_key(key.trim())?;
        Ok(server)
    }

    /// Starts `opsd serve` like [`opsd`](Self::opsd) without reading an admin key: a
    /// further replica on a database that already has one creates none.
    pub fn opsd_replica(
        opsd: &Path,
        data_dir: &Path,
        database_url: Option<&DatabaseUrl>,
        pinning: &Pinning,
    ) -> Result<Server, String> {
        Self::replica_with_env(opsd, data_dir, database_url, pinning, &[])
    }

    fn replica_with_env(
        opsd: &Path,
        data_dir: &Path,
        database_url: Option<&DatabaseUrl>,
        pinning: &Pinning,
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let log = std::fs::File::create(data_dir.join("opsd.log"))
            .map_err(|e| format!("cannot create opsd.log: {e}"))?;
        let mut cmd = Command::new(opsd);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stderr(log)
            // `wait_many` parks up to 50,000 waits; the default cap (20,000) would shed them.
            .env("OPSD_MAX_LONG_LIVED_REQUESTS", "100000")
            // The load generator sends everything with one key; the per-key rate limit
            // (50,000/s by default) would answer 429 to what opsd can serve. The limiter
            // still runs on every request, at a rate no scenario reaches.
            .env("OPSD_RATE_LIMIT", "10000000")
            .env("OPSD_RATE_BURST", "10000000")
            .envs(env.iter().copied());
        if let Some(url) = database_url {
            // In the environment rather than on the command line, where `ps` shows it.
            cmd.env("OPSD_DATABASE_URL", url.expose());
        } else {
            cmd.env_remove("OPSD_DATABASE_URL");
        }
        Self::start(cmd, pinning)
    }

    /// Starts this binary's HTTP ceiling server answering every request with `body`.
    pub fn ceiling(body_file: &Path, pinning: &Pinning) -> Result<Server, String> {
        Self::ceiling_process("ceiling-http", body_file, pinning)
    }

    /// The gRPC ceiling (`opsd-bench ceiling-grpc`) on the server core.
    pub fn ceiling_grpc(body_file: &Path, pinning: &Pinning) -> Result<Server, String> {
        Self::ceiling_process("ceiling-grpc", body_file, pinning)
    }

    /// `opsd-bench <subcommand> --body-file <body_file>`: a ceiling server of this
    /// binary (`ceiling_servers`).
    fn ceiling_process(
        subcommand: &str,
        body_file: &Path,
        pinning: &Pinning,
    ) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args([subcommand, "--body-file"])
            .arg(body_file)
            .stderr(Stdio::inherit());
        Self::start(cmd, pinning)
    }

    fn start(mut cmd: Command, pinning: &Pinning) -> Result<Server, String> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = pinning.spawn_on_server_core(&mut cmd)?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        // Read the first line on a thread so that a server that never prints cannot hang
        // the harness; the pipe stays open (the thread keeps draining it) afterwards.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // opsd's first start prints its new admin key before the listening line.
            let mut lines = BufReader::new(stdout).lines();
            let listening =
                lines.find(|l| l.as_ref().map_or(true, |l| l.contains(" listening on ")));
            let _ = tx.send(listening);
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("server did not print its address: {other:?}"));
            }
        };
        let addr = line
            .rsplit_once("http://")
            .and_then(|(_, a)| a.trim().parse().ok())
            .ok_or_else(|| format!("unexpected first line from server: {line:?}"))?;
        Ok(Server { child, addr })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now, in MiB (`VmRSS`).
    pub fn rss_mb(&self) -> Option<f64> {
        proc_status_kb(self.pid(), "VmRSS:").map(|kb| kb as f64 / 1024.0)
    }

    /// Peak resident set size so far, in MiB (`VmHWM`).
    pub fn peak_rss_mb(&self) -> Option<f64> {
        proc_status_kb(self.pid(), "VmHWM:").map(|kb| kb as f64 / 1024.0)
    }

    /// CPUs the process may run on (`Cpus_allowed_list`), to prove the pinning.
    pub fn cpus_allowed(&self) -> Option<String> {
        proc_status_field(self.pid(), "Cpus_allowed_list:")
    }

    /// Kills the server and returns its peak RSS in MiB.
    pub fn stop(mut self) -> Option<f64> {
        let peak = self.peak_rss_mb();
        let _ = self.child.kill();
        let _ = self.child.wait();
        peak
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_field(pid: u32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    proc_status_field(pid, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
