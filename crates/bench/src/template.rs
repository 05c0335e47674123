//! The seeded template every API scenario starts from (built once per run through the
//! store, see `seed`), and the copy of it each scenario gets: a fresh data directory
//! and, on PostgreSQL, a fresh database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opsd_domain::Status;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::backend::{Backend, place};
use crate::pg::PgDb;
use crate::plan::Plan;
use crate::seed::Seeder;
use crate::workload::new_operation;

/// The project whose list the list scenarios read (half pending, half running).
pub const LIST_PROJECT: &str = "bench-list";
/// The project of running operations that `transition` and `wait_wakeup` finish.
pub const RUN_PROJECT: &str = "bench-run";

/// A scenario's own copy of the seeded state.
pub struct Copy {
    /// Its data directory (the SQLite database, or only the first admin key).
    pub dir: TempDir,
    /// Its PostgreSQL database, on that backend.
    pub db: Option<PgDb>,
}

/// The seeded database every API scenario starts from.
pub struct Template {
    /// Its data directory.
    pub dir: PathBuf,
    /// Its PostgreSQL database (the template of every copy), on that backend.
    pub db: Option<PgDb>,
    /// Every operation in it.
    pub all: Arc<Vec<Uuid>>,
    /// The operations of [`LIST_PROJECT`], every other one `running`.
    pub listed: Arc<Vec<Uuid>>,
    /// The operations of [`RUN_PROJECT`], all `running` at version 2.
    pub running: Arc<Vec<Uuid>>,
    /// Writes issued to seed it, and how long they took (s).
    pub writes: u64,
    /// Seconds spent seeding.
    pub secs: f64,
}

impl Template {
    /// Seeds the template in `dir` (or a new PostgreSQL database) through the store (see
    /// `seed`).
    pub fn build(
        plan: &Plan,
        dir: &Path,
        backend: &Backend,
        seed_rt: &Runtime,
    ) -> Result<Template, String> {
        let db = backend.empty_db("template")?;
        let mut s = Seeder::open(place(dir, db.as_ref()), seed_rt)?;
        let (listed, running) = seed_rt.block_on(async {
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
            Ok::<_, String>((list, running))
        })?;
        let all = [&listed[..], &running[..]].concat();
        let (writes, secs) = (s.writes, s.elapsed.as_secs_f64());
        s.close(place(dir, db.as_ref()))?;
        Ok(Template {
            dir: dir.to_owned(),
            db,
            all: Arc::new(all),
            listed: Arc::new(listed),
            running: Arc::new(running),
            writes,
            secs,
        })
    }
}
