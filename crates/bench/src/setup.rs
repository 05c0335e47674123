//! Getting a benchmark run ready: the open-files limit, the machine and the pinning, the
//! backend, the seeded template and the [`Ctx`] every scenario shares; and how the run
//! was set up, as both reports say it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::backend::Backend;
use crate::cli::{BackendName, Cli};
use crate::ctx::{AtRtt, Ctx};
use crate::link::Link;
use crate::machine::{Machine, Pinning};
use crate::pg;
use crate::plan::{Mode, Plan};
use crate::template::Template;

/// A run ready to measure.
pub struct Prepared {
    pub ctx: Ctx,
    pub machine: Machine,
    /// The runtime seeding ran on (`scale` seeds more on it).
    pub seed_rt: Runtime,
}

/// Raises the open-files limit, opens the backend and seeds the template under a fresh
/// work directory, printing what it does on stderr.
pub fn prepare(
    cli: &Cli,
    plan: Plan,
    rtts: Vec<Duration>,
    upstream: Option<SocketAddr>,
) -> Result<Prepared, String> {
    // 10,000 waiters (50,000 in the full run's wait_many) are as many sockets here and in
    // opsd, which inherits this limit when it is spawned below; wait_many runs fewer, and
    // says so, where the hard limit is lower.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string())?;
    let machine = Machine::detect();
    let pinning = Pinning::plan(!cli.no_pin);
    let opsd = std::fs::canonicalize(&cli.opsd)
        .map_err(|e| format!("opsd binary {}: {e}", cli.opsd.display()))?;
    eprintln!(
        "opsd-bench: mode {:?}, {} × {}, {}; open files ≤ {nofile}",
        cli.mode, machine.cores, machine.cpu_model, pinning.note
    );
    if cli.mode == Mode::Smoke {
        eprintln!("opsd-bench: smoke mode proves the harness works; its numbers mean nothing");
    }
    let backend = match (cli.backend, &cli.database_url) {
        (BackendName::Sqlite, _) => Backend::Sqlite,
        (BackendName::Postgres, Some(url)) => Backend::Postgres(pg::Pg::connect(url)?),
        (BackendName::Postgres, None) => {
            return Err(
                "--backend postgres needs --database-url (scripts/bench starts a \
                        throwaway server and passes it)"
                    .into(),
            );
        }
    };
    if let Backend::Postgres(pg) = &backend {
        eprintln!(
            "opsd-bench: backend {}; round trips {}",
            pg.describe,
            rtts.iter()
                .map(|r| opsd_proxy::format_rtt(*r))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    std::fs::create_dir_all(&cli.out).map_err(|e| e.to_string())?;
    let seed_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let work = tempfile::Builder::new()
        .prefix("opsd-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    eprintln!("opsd-bench: seeding the template");
    let template = Template::build(&plan, &work.path().join("template"), &backend, &seed_rt)?;
    let ctx = Ctx {
        rt: pinning.client_runtime().map_err(|e| e.to_string())?,
        plan,
        pinning,
        opsd,
        backend,
        work,
        template,
        saved: rtts.iter().map(|_| AtRtt::default()).collect(),
        rtts,
        upstream,
        link: Link::direct(),
        at: AtRtt::default(),
        opsd_cpus: std::sync::OnceLock::new(),
    };
    Ok(Prepared {
        ctx,
        machine,
        seed_rt,
    })
}

/// Where servers and load generator ran, as the report says it.
pub fn pinning_note(ctx: &Ctx, backend: BackendName) -> String {
    let pinning = match ctx.opsd_cpus.get() {
        Some(cpus) => format!("{} (opsd's Cpus_allowed_list: {cpus})", ctx.pinning.note),
        None => ctx.pinning.note.clone(),
    };
    match backend {
        BackendName::Sqlite => pinning,
        BackendName::Postgres if ctx.rtts.iter().any(|r| !r.is_zero()) => format!(
            "{pinning}; PostgreSQL's processes and the delaying proxy's threads unpinned \
             (they share both CPUs with whatever runs)"
        ),
        BackendName::Postgres => format!(
            "{pinning}; PostgreSQL's processes unpinned (they share both CPUs with \
             whatever runs)"
        ),
    }
}

/// How opsd was built, as the report says it.
pub fn binaries_note(profile: &str) -> String {
    format!(
        "{profile} build of opsd ({})",
        if profile == "release" {
            "numbers comparable between runs on the same machine"
        } else {
            "smoke run: numbers are meaningless, only the harness is tested"
        }
    )
}
