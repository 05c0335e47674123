//! What every scenario shares: the plan, the pinning, the load generator's runtime, the
//! seeded template database (copied for each scenario, so each starts a fresh opsd on
//! its own data directory) and helpers to run phases against a server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use opsd_domain::Status;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::loadgen::{self, Conn, Limits, MakeReq, Req, Stats};
use crate::machine::Pinning;
use crate::plan::Plan;
use crate::seed::{self, Seeder};
use crate::server::Server;
use crate::workload::new_operation;

/// The project whose list the list scenarios read (half pending, half running).
pub const LIST_PROJECT: &str = "bench-list";
/// The project of running operations that `transition` and `wait_wakeup` finish.
pub const RUN_PROJECT: &str = "bench-run";

/// The seeded database every API scenario starts from.
pub struct Template {
    /// Its data directory.
    pub dir: PathBuf,
    /// Every operation in it.
    pub all: Arc<Vec<Uuid>>,
    /// The operations of [`RUN_PROJECT`], all `running` at version 2.
    pub running: Arc<Vec<Uuid>>,
    /// Writes issued to seed it, and how long they took (s).
    pub writes: u64,
    /// Seconds spent seeding.
    pub secs: f64,
}

impl Template {
    /// Seeds the template in `dir` through the store (see `seed`).
    pub fn build(plan: &Plan, dir: &Path, seed_rt: &Runtime) -> Result<Template, String> {
        let mut s = Seeder::open(dir)?;
        let (all, running) = seed_rt.block_on(async {
            let list = s
                .create(0..plan.list_ops, |i| new_operation(LIST_PROJECT, "list", i))
                .await?;
            let odd: Vec<Uuid> = list.iter().skip(1).step_by(2).copied().collect();
            s.set_status(&odd, Status::Running).await?;
            let running = s
                .create(0..plan.running_ops, |i| {
                    new_operation(RUN_PROJECT, "run", i)
                })
                .await?;
            s.set_status(&running, Status::Running).await?;
            let mut all = list;
            all.extend_from_slice(&running);
            Ok::<_, String>((all, running))
        })?;
        let (writes, secs) = (s.writes, s.elapsed.as_secs_f64());
        s.close(dir)?;
        Ok(Template {
            dir: dir.to_owned(),
            all: Arc::new(all),
            running: Arc::new(running),
            writes,
            secs,
        })
    }
}

/// The shared state of a run.
pub struct Ctx {
    pub plan: Plan,
    pub pinning: Pinning,
    /// The opsd binary under test.
    pub opsd: PathBuf,
    /// The load generator's runtime (pinned to the client core).
    pub rt: Runtime,
    /// Scratch space for data directories; removed at the end.
    pub work: TempDir,
    pub template: Template,
    /// The storage ceiling in rows/s, once measured (create_durable and transition
    /// share it).
    pub storage_ceiling: Option<f64>,
    /// Open-loop rate and p50 of list_first_page, for list_deep_page to compare with.
    pub first_page: Option<(f64, f64)>,
    /// The CPUs the first opsd was actually allowed (proof of the pinning).
    pub opsd_cpus: std::sync::OnceLock<String>,
}

impl Ctx {
    /// A fresh data directory holding a copy of the template.
    pub fn copy_template(&self, name: &str) -> Result<TempDir, String> {
        let dir = tempfile::Builder::new()
            .prefix(name)
            .tempdir_in(self.work.path())
            .map_err(|e| e.to_string())?;
        seed::copy_db(&self.template.dir, dir.path())?;
        Ok(dir)
    }

    /// A fresh opsd on a fresh copy of the template.
    pub fn fresh_opsd(&self, name: &str) -> Result<(TempDir, Server), String> {
        let dir = self.copy_template(name)?;
        let server = Server::opsd(&self.opsd, dir.path(), &self.pinning)?;
        if let Some(cpus) = server.cpus_allowed() {
            let _ = self.opsd_cpus.set(cpus);
        }
        Ok((dir, server))
    }

    /// One request, answered 2xx, returning its body.
    pub fn fetch(&self, addr: SocketAddr, req: Req) -> Result<Bytes, String> {
        self.rt.block_on(async move {
            let mut conn = Conn::new(addr);
            match conn.send(req).await? {
                (status, body) if status.is_success() => Ok(body),
                (status, body) => Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
            }
        })
    }

    /// A closed-loop phase.
    pub fn closed(&self, addr: SocketAddr, conns: usize, limits: Limits, make: MakeReq) -> Stats {
        self.rt
            .block_on(loadgen::closed_loop(addr, conns, limits, make))
    }

    /// An open-loop phase at `rate` requests/s.
    pub fn open(
        &self,
        addr: SocketAddr,
        conns: usize,
        rate: f64,
        limits: Limits,
        make: MakeReq,
    ) -> Stats {
        self.rt
            .block_on(loadgen::open_loop(addr, conns, rate, limits, make))
    }

    /// Closed-loop throughput of opsd at `opsd` and of the HTTP ceiling answering
    /// `body`, with the same requests, connections and limits, measured alternately in
    /// [`ROUNDS`] rounds so that a change in the shared machine's load hits both sides
    /// alike. Returns opsd's stats and the ceiling's requests/s.
    pub fn closed_vs_http_ceiling(
        &self,
        opsd: SocketAddr,
        body: &[u8],
        conns: usize,
        make: MakeReq,
    ) -> Result<(Stats, f64), String> {
        let file = self.work.path().join("ceiling-body.json");
        std::fs::write(&file, body).map_err(|e| e.to_string())?;
        let ceiling = Server::ceiling(&file, &self.pinning)?;
        let round = round_of(self.plan.read);
        let (mut ours, mut theirs) = (Stats::empty(), Stats::empty());
        for _ in 0..ROUNDS {
            ours = ours.combine(self.closed(opsd, conns, round, make.clone()));
            theirs = theirs.combine(self.closed(ceiling.addr, conns, round, make.clone()));
        }
        ceiling.stop();
        if theirs.errors > 0 {
            return Err(format!(
                "HTTP ceiling had {} errors: {:?}",
                theirs.errors, theirs.first_error
            ));
        }
        Ok((ours, theirs.ops_per_s()))
    }

    /// Like [`closed_vs_http_ceiling`](Self::closed_vs_http_ceiling) for writes: opsd's
    /// closed loop alternating with rounds of the storage ceiling (raw inserts in batches
    /// of `batch` into a copy of the template, on the server core). The ceiling is kept
    /// for later scenarios.
    pub fn closed_vs_storage_ceiling(
        &mut self,
        opsd: SocketAddr,
        conns: usize,
        make: MakeReq,
        batch: usize,
    ) -> Result<(Stats, f64), String> {
        let dir = self.copy_template("storage-ceiling")?;
        let db = dir.path().join("opsd.db");
        let round = round_of(self.plan.write);
        let (mut ours, mut rows, mut secs) = (Stats::empty(), 0u64, 0.0);
        for _ in 0..ROUNDS {
            ours = ours.combine(self.closed(opsd, conns, round, make.clone()));
            let (r, s) = self
                .pinning
                .run_on_server_core(|| crate::ceiling::storage(&db, batch, round.duration, rows))
                .ok_or("storage ceiling thread panicked")??;
            rows += r;
            secs += s;
        }
        let ceiling = rows as f64 / secs.max(1e-9);
        self.storage_ceiling = Some(ceiling);
        Ok((ours, ceiling))
    }

    /// The storage ceiling measured alongside create_durable, or now on its own.
    pub fn storage_ceiling(&mut self, batch: usize) -> Result<f64, String> {
        if let Some(c) = self.storage_ceiling {
            return Ok(c);
        }
        let dir = self.copy_template("storage-ceiling")?;
        let db = dir.path().join("opsd.db");
        let duration = self.plan.write.duration;
        let (rows, secs) = self
            .pinning
            .run_on_server_core(|| crate::ceiling::storage(&db, batch, duration, 0))
            .ok_or("storage ceiling thread panicked")??;
        let c = rows as f64 / secs.max(1e-9);
        self.storage_ceiling = Some(c);
        Ok(c)
    }
}

/// Rounds of alternation between opsd and a ceiling.
pub const ROUNDS: u32 = 3;

/// One round's limits: a shorter warm-up (connections are already warm after the first)
/// and a share of the measured time.
fn round_of(limits: Limits) -> Limits {
    Limits {
        warmup: limits.warmup / 2,
        duration: limits.duration / ROUNDS,
        ..limits
    }
}
