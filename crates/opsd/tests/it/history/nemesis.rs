//! The nemesis: the replicas it can kill and restart, and the faults it injects in
//! turn — `kill -9` of a replica, a full disk (SQLite), PostgreSQL restarted, the
//! database black-holed and its connections cut (through opsd-proxy).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::clients::Shared;
use crate::process::Opsd;

/// The opsd processes of a run, each restartable on its own data directory.
pub struct Replicas {
    dirs: Vec<PathBuf>,
    store: Vec<String>,
    procs: Vec<Option<Opsd>>,
    pub shared: Option<Arc<Shared>>,
}

impl Replicas {
    /// `dirs.len()` replicas with the store flags `store`; the first creates the key.
    pub fn start(dirs: Vec<PathBuf>, store: Vec<String>) -> Replicas {
        let mut r = Replicas {
            procs: dirs.iter().map(|_| None).collect(),
            dirs,
            store,
            shared: None,
        };
        for i in 0..r.dirs.len() {
            r.spawn(i);
        }
        r
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    pub fn admin_key(&self) -> String {
        self.procs[0]
            .as_ref()
            .expect("replica 0 runs")
            .admin_key
            .clone()
    }

    pub fn base(&self, i: usize) -> Option<String> {
        self.procs[i].as_ref().map(|p| p.base.clone())
    }

    fn spawn(&mut self, i: usize) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dirs[i].join("opsd.log"))
            .unwrap();
        let opsd = tokio::task::block_in_place(|| {
            Opsd::spawn(&self.dirs[i], &self.store, log, &[], &self.dirs[0])
        });
        if let Some(shared) = &self.shared {
            shared.bases.write().unwrap()[i] = Some(opsd.base.clone());
        }
        self.procs[i] = Some(opsd);
    }

    /// `kill -9` of replica `i`, and a fresh process on its data directory after a
    /// moment (a supervisor restarting it).
    pub async fn kill_and_restart(&mut self, i: usize) {
        if let Some(shared) = &self.shared {
            shared.bases.write().unwrap()[i] = None;
        }
        if let Some(p) = self.procs[i].take() {
            p.kill_9();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.spawn(i);
    }

    /// The end of each replica's log (for a failing run).
    pub fn log_tails(&self) -> String {
        self.dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let text = std::fs::read_to_string(d.join("opsd.log")).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- replica {i} ---\n{}",
                    lines[lines.len().saturating_sub(30)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A filesystem the SQLite replica's data lives on, that the nemesis fills.
pub struct SmallDisk {
    pub mount: TempDir,
}

impl SmallDisk {
    /// A 32 MiB tmpfs; `None` where mounting is not permitted.
    pub fn mount() -> Option<SmallDisk> {
        let mount = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
            .arg(mount.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { mount })
    }

    fn ballast(&self) -> PathBuf {
        self.mount.path().join("ballast")
    }

    /// Fills every free byte.
    pub fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "count=64"])
            .arg(format!("of={}", self.ballast().display()))
            .stderr(Stdio::null())
            .status();
    }

    pub fn free(&self) {
        let _ = std::fs::remove_file(self.ballast());
    }

    pub fn path(&self) -> &Path {
        self.mount.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .status();
    }
}

/// A fault the nemesis can inject.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Kill9,
    DiskFull,
    RestartPostgres,
    Blackhole,
    Cut,
    /// The primary killed, the standby promoted (`scripts/pg-ha`); once per run.
    Failover,
}

/// What the nemesis acts on.
pub struct Targets<'a> {
    pub replicas: &'a mut Replicas,
    pub disk: Option<&'a SmallDisk>,
    pub proxy: Option<&'a opsd_proxy::Proxy>,
    /// The private cluster's directory, for `scripts/pg restart`.
    pub pg_dir: Option<&'a Path>,
    /// The primary/standby pair's directory, for `scripts/pg-ha`.
    pub pg_ha: Option<&'a Path>,
    /// How long after the promotion a write was acknowledged again by every replica.
    pub resumed_after: Option<Duration>,
}

/// Injects `faults` in turn, one every `every`, until `duration` has passed; each fault
/// is healed before the next. Returns how many of each were injected.
pub async fn run(
    targets: &mut Targets<'_>,
    faults: &[Fault],
    every: Duration,
    duration: Duration,
) -> BTreeMap<String, usize> {
    let until = tokio::time::Instant::now() + duration;
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    let mut turn = 0usize;
    while tokio::time::Instant::now() + every < until {
        tokio::time::sleep(every).await;
        let fault = faults[turn % faults.len()];
        turn += 1;
        match fault {
            Fault::Kill9 => {
                let i = turn % targets.replicas.len();
                targets.replicas.kill_and_restart(i).await;
            }
            Fault::DiskFull => {
                let Some(disk) = targets.disk else { continue };
                tokio::task::block_in_place(|| disk.fill());
                tokio::time::sleep(Duration::from_secs(3)).await;
                disk.free();
            }
            Fault::RestartPostgres => {
                let Some(dir) = targets.pg_dir else { continue };
                crate::replicas::pg_restart::pg_async(dir, "restart").await;
            }
            Fault::Blackhole => {
                let Some(proxy) = targets.proxy else { continue };
                proxy.blackhole();
                tokio::time::sleep(Duration::from_secs(4)).await;
                proxy.flow();
            }
            Fault::Cut => {
                let Some(proxy) = targets.proxy else { continue };
                proxy.cut();
            }
            Fault::Failover => {
                let Some(dir) = targets.pg_ha else { continue };
                if targets.resumed_after.is_some() {
                    continue;
                }
                pg_ha(dir, "kill-primary").await;
                // No primary for a moment: writes answer 503 meanwhile.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let promote = if std::env::var_os("OPSD_FAILOVER_WITHOUT_RECIPE").is_some() {
                    "promote-without-recipe"
                } else {
                    "promote"
                };
                pg_ha(dir, promote).await;
                let promoted = tokio::time::Instant::now();
                for i in 0..targets.replicas.len() {
                    let base = targets.replicas.base(i).expect("replica runs");
                    await_a_write(&base, &targets.replicas.admin_key()).await;
                }
                targets.resumed_after = Some(promoted.elapsed());
            }
        }
        *injected.entry(format!("{fault:?}")).or_default() += 1;
    }
    injected
}

/// Runs `scripts/pg-ha <command>` on the pair in `dir`; its stdout, trimmed.
pub async fn pg_ha(dir: &Path, command: &'static str) -> String {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg-ha"))
            .arg(command)
            .env("OPSD_PG_DIR", &dir)
            .output()
            .expect("run scripts/pg-ha");
        assert!(
            out.status.success(),
            "scripts/pg-ha {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
    .await
    .unwrap()
}

/// Creates an operation through `base` until one is acknowledged (at most 60 s).
async fn await_a_write(base: &str, key: &str) {
    let http = crate::replicas::cluster::client(key);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body = serde_json::json!({"project_id": "failover-probe", "kind": "vm",
                                      "type": "update", "resource_id": "probe"});
        let created = http
            .post(format!("{base}/v1/operations"))
            .json(&body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if created {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base} acknowledged no write within 60 s of the promotion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
