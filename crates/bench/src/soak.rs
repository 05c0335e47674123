//! `opsd-bench soak`: a long mixed load at about half of the capacity measured at its
//! start, with parked waiters and open watch streams, sampling the server's resident
//! memory, open files and live Tokio tasks. It fails if any of them keeps growing (the
//! median of the last third of the samples above the first third's by more than 25%
//! plus a small absolute slack) or if more than 1% of requests fail. `scripts/soak`
//! runs it; CI for one minute, the documented run for thirty.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::loadgen::{self, Conn, Limits, MakeReq, Rng};
use crate::machine::Pinning;
use crate::server::Server;
use crate::workload;

const PROJECT: &str = "soak";
const WAITERS: usize = 50;
const WATCHERS: usize = 10;

/// One sample of the server's footprint.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_mb: f64,
    fds: f64,
    tasks: f64,
}

/// Runs the soak against `opsd` for `duration`; `Err` says what grew or failed.
pub fn run(opsd: &Path, duration: Duration) -> Result<(), String> {
    rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::opsd(opsd, dir.path(), None, &Pinning::plan(false))?;
    let key = std::fs::read_to_string(dir.path().join("admin.key"))
        .map_err(|e| e.to_string())?
        .trim()
        .to_owned();
    let result = rt.block_on(soak(&server, &key, duration));
    if let Ok(log) = std::fs::read_to_string(dir.path().join("opsd.log"))
        && result.is_err()
    {
        eprintln!("opsd log (last lines):");
        for line in log
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("  {line}");
        }
    }
    result
}

async fn soak(server: &Server, key: &str, duration: Duration) -> Result<(), String> {
    let addr = server.addr;
    let ids = Arc::new(seed(addr, 200).await?);
    let counter = Arc::new(AtomicU64::new(1_000));
    let make: MakeReq = {
        let (ids, counter) = (ids.clone(), counter.clone());
        Arc::new(move |rng: &mut Rng| {
            Some(match rng.below(10) {
                0..=3 => {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    workload::create(&workload::new_operation(PROJECT, "soak", i))
                }
                4..=6 => workload::get(ids[rng.below(ids.len())]),
                _ => workload::list(PROJECT, "pending", 10, None),
            })
        })
    };
    let capacity = loadgen::closed_loop(
        addr,
        8,
        Limits {
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(3),
            max_requests: u64::MAX,
        },
        make.clone(),
    )
    .await
    .ops_per_s();
    let rate = (capacity / 2.0).max(10.0);
    eprintln!(
        "soak: capacity {capacity:.0} requests/s (mixed: 40% creates, 30% gets, 30% lists); \
         running at {rate:.0}/s for {duration:?} with {WAITERS} waiters and {WATCHERS} watch streams"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut background = Vec::new();
    for i in 0..WAITERS {
        let (ids, stop) = (ids.clone(), stop.clone());
        background.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let mut rng = Rng::new(7_000 + i as u64);
            while !stop.load(Ordering::Relaxed) {
                // Seeded operations stay pending: each wait runs its full 2 s.
                let _ = conn
                    .send(workload::wait(ids[rng.below(ids.len())], 2))
                    .await;
            }
        }));
    }
    for _ in 0..WATCHERS {
        let (stop, key) = (stop.clone(), key.to_owned());
        background.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = watch_for(addr, &key, Duration::from_secs(10)).await;
            }
        }));
    }
    let sampler = {
        let (stop, key, pid) = (stop.clone(), key.to_owned(), server.pid());
        let every = (duration / 24).max(Duration::from_secs(2));
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                if let Some(s) = sample(addr, &key, pid).await {
                    samples.push(s);
                }
            }
            samples
        })
    };
    let stats = loadgen::open_loop(
        addr,
        16,
        rate,
        Limits {
            warmup: Duration::from_secs(1),
            duration,
            max_requests: u64::MAX,
        },
        make,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.map_err(|e| e.to_string())?;
    for task in background {
        task.abort();
    }
    let total = stats.ok + stats.errors;
    eprintln!(
        "soak: {} requests ({:.0}/s), {} failed, p50 {:.2} ms, p99 {:.2} ms",
        total,
        stats.ops_per_s(),
        stats.errors,
        stats.quantile_ms(0.5),
        stats.quantile_ms(0.99)
    );
    for (i, s) in samples.iter().enumerate() {
        eprintln!(
            "soak: sample {i:2}: RSS {:6.1} MiB, open files {:4}, tasks {:5}",
            s.rss_mb, s.fds, s.tasks
        );
    }
    if stats.errors * 100 > total.max(1) {
        return Err(format!(
            "{} of {total} requests failed, e.g. {}",
            stats.errors,
            stats.first_error.unwrap_or_default()
        ));
    }
    growth(&samples)
}

/// Reads one resource out of a sample.
type Measure = fn(&Sample) -> f64;

/// Fails if a resource keeps growing: the last third's median above the first third's
/// (after the first sixth, warm-up) by more than 25% plus an absolute slack.
fn growth(samples: &[Sample]) -> Result<(), String> {
    let steady = &samples[samples.len() / 6..];
    if steady.len() < 6 {
        return Err(format!(
            "only {} samples: run longer (at least a minute)",
            samples.len()
        ));
    }
    let third = steady.len() / 3;
    let median = |part: &[Sample], f: Measure| {
        let mut v: Vec<f64> = part.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let checks: [(&str, Measure, f64); 3] = [
        ("resident memory (MiB)", |s| s.rss_mb, 16.0),
        ("open files", |s| s.fds, 16.0),
        ("live tasks", |s| s.tasks, 32.0),
    ];
    for (what, f, slack) in checks {
        let (first, last) = (
            median(&steady[..third], f),
            median(&steady[steady.len() - third..], f),
        );
        eprintln!("soak: {what}: {first:.1} → {last:.1}");
        if last > first * 1.25 + slack {
            return Err(format!("{what} kept growing: {first:.1} → {last:.1}"));
        }
    }
    Ok(())
}

/// Creates `n` operations; their ids.
async fn seed(addr: SocketAddr, n: u64) -> Result<Vec<Uuid>, String> {
    let mut conn = Conn::new(addr);
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = conn
            .send(workload::create(&workload::new_operation(
                PROJECT, "seed", i,
            )))
            .await?;
        let op: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let id = op["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| format!("create answered {status}: {op}"))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Reads a watch stream of the project for `how_long`, then closes it.
async fn watch_for(addr: SocketAddr, key: &str, how_long: Duration) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    let head = format!(
        "GET /v1/operations/watch?project_id={PROJECT} HTTP/1.1\r\nhost: x\r\n\
         authorization: Bearer {key}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(how_long, async {
        while s.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
    Ok(())
}

/// RSS and open files from `/proc`, live tasks from `/metrics`.
async fn sample(addr: SocketAddr, key: &str, pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64;
    let mut s = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "GET /metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let tasks = text
        .lines()
        .find_map(|l| l.strip_prefix("opsd_tasks "))?
        .trim()
        .parse()
        .ok()?;
    Some(Sample {
        rss_mb: rss_kb / 1024.0,
        fds,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(n: usize, f: impl Fn(usize) -> f64) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                rss_mb: f(i),
                fds: 40.0,
                tasks: 100.0,
            })
            .collect()
    }

    #[test]
    fn steady_passes_growth_fails() {
        assert!(growth(&flat(24, |i| 50.0 + (i % 3) as f64)).is_ok());
        assert!(growth(&flat(24, |i| 50.0 + 10.0 * i as f64)).is_err());
        assert!(growth(&flat(3, |_| 50.0)).is_err());
    }
}
