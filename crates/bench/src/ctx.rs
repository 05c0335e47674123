//! What every scenario shares: the plan, the pinning, the load generator's runtime, the
//! backend, the seeded template database (`template`: copied for each scenario, so each
//! starts a fresh opsd on its own data directory, and on PostgreSQL its own database),
//! the round trips to PostgreSQL a run measures (`link`) and helpers to run phases
//! against a server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tempfile::TempDir;
use tokio::runtime::Runtime;

use crate::backend::Backend;
use crate::link::Link;
use crate::loadgen::{self, Conn, Limits, MakeReq, Req, Stats};
use crate::machine::Pinning;
use crate::pg::PgDb;
use crate::plan::Plan;
use crate::seed;
use crate::server::Server;
use crate::storage_ceiling::StorageCeiling;
use crate::template::{Copy, Template};

/// The shared state of a run.
pub struct Ctx {
    pub plan: Plan,
    pub pinning: Pinning,
    /// The opsd binary under test.
    pub opsd: PathBuf,
    /// The load generator's runtime (pinned to the client core).
    pub rt: Runtime,
    /// The backend under test.
    pub backend: Backend,
    /// Scratch space for data directories; removed at the end.
    pub work: TempDir,
    pub template: Template,
    /// The round trips to PostgreSQL every scenario is measured at (`--pg-rtt`; one,
    /// zero, on SQLite).
    pub rtts: Vec<Duration>,
    /// The PostgreSQL server a proxy forwards to (when a round trip is above zero).
    pub upstream: Option<SocketAddr>,
    /// How opsd and the storage ceiling reach PostgreSQL in the scenario running now.
    pub link: Link,
    /// What scenarios measured at the round trip running now, for later ones.
    pub at: AtRtt,
    /// The same for every round trip, while another one runs.
    pub saved: Vec<AtRtt>,
    /// The CPUs the first opsd was actually allowed (proof of the pinning).
    pub opsd_cpus: std::sync::OnceLock<String>,
}

/// What one scenario leaves for another at the same round trip (a ratio at round trip
/// r is to the ceiling measured through the same proxy at r).
#[derive(Default)]
pub struct AtRtt {
    /// The storage ceiling in rows/s, once measured (create_durable and transition
    /// share it).
    pub storage_ceiling: Option<f64>,
    /// What results.json says about how the storage ceiling was measured.
    pub storage_ceiling_notes: Vec<(&'static str, Value)>,
    /// Open-loop rate and p50 of list_first_page, for list_deep_page to compare with.
    pub first_page: Option<(f64, f64)>,
}

/// What [`Ctx::at_rtt`] says about the link: keys and values for results.json.
pub type LinkNotes = Vec<(&'static str, Value)>;

impl Ctx {
    /// The ratio of the storage ceiling a write scenario must reach: `sqlite` (the SQLite
    /// target) on SQLite; on PostgreSQL those at a distance, 0.6 direct and 0.5 through the
    /// delaying proxy (where the ceiling, measured through the same proxy, pipelines
    /// freely and opsd's writer waits for its read before it writes).
    pub fn write_ratio_target(&self, sqlite: f64) -> f64 {
        match (&self.backend, self.link.rtt.is_zero()) {
            (Backend::Sqlite, _) => sqlite,
            (Backend::Postgres(_), true) => 0.6,
            (Backend::Postgres(_), false) => 0.5,
        }
    }

    /// Runs `f` at round trip `self.rtts[i]`: behind a fresh proxy (above zero), with what
    /// earlier scenarios measured at that round trip. Returns what `f` did and what the
    /// link measured meanwhile (nothing on SQLite).
    pub fn at_rtt<T>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Ctx) -> T,
    ) -> Result<(T, LinkNotes), String> {
        self.link = Link::start(self.rtts[i], self.upstream)?;
        std::mem::swap(&mut self.at, &mut self.saved[i]);
        let done = f(self);
        std::mem::swap(&mut self.at, &mut self.saved[i]);
        let link = std::mem::replace(&mut self.link, Link::direct());
        let notes = match self.backend {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres(_) => link.notes(),
        };
        Ok((done, notes))
    }

    /// The URL through which opsd and the storage ceiling reach `db` now.
    pub fn db_url(&self, db: &PgDb) -> Result<opsd_store_open::DatabaseUrl, String> {
        self.link.url(&db.url)
    }

    /// A fresh data directory holding a copy of the template (on PostgreSQL, with a
    /// fresh copy of the template database).
    pub fn copy_template(&self, name: &str) -> Result<Copy, String> {
        let dir = tempfile::Builder::new()
            .prefix(name)
            .tempdir_in(self.work.path())
            .map_err(|e| e.to_string())?;
        let db = match (&self.backend, &self.template.db) {
            (Backend::Postgres(pg), Some(template)) => Some(pg.create(name, Some(template))?),
            _ => {
                seed::copy_db(&self.template.dir, dir.path())?;
                None
            }
        };
        Ok(Copy { dir, db })
    }

    /// A fresh opsd on a fresh copy of the template.
    pub fn fresh_opsd(&self, name: &str) -> Result<(Copy, Server), String> {
        let copy = self.copy_template(name)?;
        let url = copy.db.as_ref().map(|db| self.db_url(db)).transpose()?;
        let server = Server::opsd(&self.opsd, copy.dir.path(), url.as_ref(), &self.pinning)?;
        if let Some(cpus) = server.cpus_allowed() {
            let _ = self.opsd_cpus.set(cpus);
        }
        Ok((copy, server))
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
    /// closed loop alternating with rounds of the storage ceiling
    /// ([`alternating_with_storage_ceiling`](Self::alternating_with_storage_ceiling)).
    pub fn closed_vs_storage_ceiling(
        &mut self,
        opsd: SocketAddr,
        conns: usize,
        make: MakeReq,
        batch: usize,
    ) -> Result<(Stats, f64), String> {
        let mut ours = Stats::empty();
        let ceiling = self.alternating_with_storage_ceiling(batch, |ctx, round| {
            let this = ctx.closed(opsd, conns, round, make.clone());
            ours.add(this);
            Ok(())
        })?;
        Ok((ours, ceiling))
    }

    /// [`ROUNDS`] rounds of `ours` (called with each round's limits, a share of the write
    /// phase) alternating with rounds of the storage ceiling: raw inserts in batches of
    /// `batch` into a copy of the template, on the server core (on PostgreSQL both ways of
    /// `storage_ceiling_pg`, through the link of the scenario). Returns the ceiling in
    /// rows/s and keeps it for later scenarios at this round trip.
    pub fn alternating_with_storage_ceiling(
        &mut self,
        batch: usize,
        mut ours: impl FnMut(&Ctx, Limits) -> Result<(), String>,
    ) -> Result<f64, String> {
        let copy = self.copy_template("storage-ceiling")?;
        let round = round_of(self.plan.write);
        let mut ceiling = StorageCeiling::new(&copy, batch, &self.link)?;
        for _ in 0..ROUNDS {
            ours(self, round)?;
            ceiling.round(&self.pinning, round.duration)?;
        }
        Ok(self.keep(ceiling))
    }

    /// The storage ceiling measured alongside create_durable, or now on its own.
    pub fn storage_ceiling(&mut self, batch: usize) -> Result<f64, String> {
        if let Some(c) = self.at.storage_ceiling {
            return Ok(c);
        }
        let copy = self.copy_template("storage-ceiling")?;
        let mut ceiling = StorageCeiling::new(&copy, batch, &self.link)?;
        ceiling.round(&self.pinning, self.plan.write.duration)?;
        Ok(self.keep(ceiling))
    }

    fn keep(&mut self, ceiling: StorageCeiling) -> f64 {
        let (rows_per_s, notes) = ceiling.result();
        self.at.storage_ceiling = Some(rows_per_s);
        self.at.storage_ceiling_notes = notes;
        rows_per_s
    }
}

/// Rounds of alternation between opsd and a ceiling.
pub const ROUNDS: u32 = 3;

/// One round's limits: a shorter warm-up (connections are already warm after the first)
/// and a share of the measured time.
pub fn round_of(limits: Limits) -> Limits {
    Limits {
        warmup: limits.warmup / 2,
        duration: limits.duration / ROUNDS,
        ..limits
    }
}
