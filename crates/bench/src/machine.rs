//! The machine the numbers come from, and CPU pinning: servers on one core, the load
//! generator on another, so that they do not steal each other's cycles and the ratio
//! against a ceiling compares like with like.

use std::process::{Child, Command};

use core_affinity::CoreId;
use serde::Serialize;

/// What the results were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// `MemTotal` in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads /proc.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
                .unwrap_or_else(|| "unknown".into()),
            memory_gib: (mem_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// Which core runs what (or why nothing is pinned).
#[derive(Debug, Clone)]
pub struct Pinning {
    server: Option<CoreId>,
    client: Option<CoreId>,
    /// Human description for the results.
    pub note: String,
}

impl Pinning {
    /// Servers on the first available core, the load generator on the second; no
    /// pinning with fewer than two cores (or when disabled).
    pub fn plan(enabled: bool) -> Pinning {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        match (enabled, cores.as_slice()) {
            (false, _) => Pinning::none("pinning disabled (--no-pin)"),
            (true, [server, client, ..]) => Pinning {
                server: Some(*server),
                client: Some(*client),
                note: format!(
                    "server processes (opsd, HTTP ceiling) and the storage ceiling on CPU {}; \
                     load generator on CPU {}; seeding unpinned",
                    server.id, client.id
                ),
            },
            (true, _) => Pinning::none("not pinned: fewer than two CPUs available"),
        }
    }

    fn none(why: &str) -> Pinning {
        Pinning {
            server: None,
            client: None,
            note: why.into(),
        }
    }

    /// Spawns `cmd` so that the child starts on the server core: a child inherits the
    /// CPU mask of the thread that forks it, so a short-lived pinned thread does the fork.
    pub fn spawn_on_server_core(&self, cmd: &mut Command) -> Result<Child, String> {
        let core = self.server;
        std::thread::scope(|s| {
            s.spawn(|| {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                cmd.spawn()
            })
            .join()
        })
        .map_err(|_| "spawning thread panicked".to_string())?
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))
    }

    /// Runs `f` on a thread pinned to the server core (the storage ceiling).
    pub fn run_on_server_core<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Option<T> {
        let core = self.server;
        std::thread::scope(|s| {
            s.spawn(|| {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                f()
            })
            .join()
            .ok()
        })
    }

    /// The load generator's runtime: one worker thread on the client core when pinned
    /// (so it cannot crowd the server's core), otherwise tokio's default.
    pub fn client_runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.enable_all();
        if let Some(core) = self.client {
            b.worker_threads(1).on_thread_start(move || {
                core_affinity::set_for_current(core);
            });
        }
        b.build()
    }
}
