//! The replica table: one row per scenario and replica count, printed on stdout and
//! written to `results-postgres-replicas.json` and `.md`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::loadgen::Stats;
use crate::machine::Machine;
use crate::outcome::r3;
use crate::plan::Mode;
use crate::report::{num, proxy_rtt, run_context};

/// One scenario with one number of replicas.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    pub replicas: usize,
    /// The round trip to PostgreSQL it ran at.
    pub rtt: Duration,
    /// Connections of the load generator, over all replicas.
    pub connections: usize,
    /// Closed-loop requests/s (wait_wakeup: waiters released per second).
    pub ops_per_s: f64,
    /// Open-loop latency (wait_wakeup: of the writes), ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Offered rate of the open-loop phase, requests/s.
    pub open_loop_rate: Option<f64>,
    /// wait_wakeup: p99 from the write's acknowledgement to the waiter's answer, ms.
    pub release_p99_ms: Option<f64>,
    /// wait_wakeup: parked waiters.
    pub waiters: Option<usize>,
    /// wait_wakeup: whether every waiter was released with p99 ≤ 100 ms.
    pub met: Option<bool>,
    /// create_durable: the storage ceiling at the same round trip, rows/s.
    pub storage_ceiling: Option<f64>,
    /// Largest peak RSS among the replicas, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Requests that failed or were answered otherwise than 2xx.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Why the row could not be measured at all.
    pub failed: Option<String>,
    extra: Map<String, Value>,
}

impl Row {
    /// An empty row of `scenario` on `replicas` replicas with `connections`.
    pub fn new(scenario: &str, replicas: usize, connections: usize) -> Row {
        Row {
            scenario: scenario.to_owned(),
            replicas,
            connections,
            ..Row::default()
        }
    }

    /// A row the harness could not measure.
    pub fn failed(scenario: &str, replicas: usize, why: String) -> Row {
        Row {
            failed: Some(why),
            ..Row::new(scenario, replicas, 0)
        }
    }

    /// Counts a phase's failures.
    pub fn add_errors(&mut self, s: &Stats) {
        self.errors += s.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&s.first_error);
        }
    }

    /// Adds a scenario-specific field.
    pub fn extra(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.insert(key.into(), value.into());
    }

    /// Closed-loop throughput as a fraction of the storage ceiling.
    pub fn vs_ceiling(&self) -> Option<f64> {
        self.storage_ceiling
            .filter(|c| *c > 0.0)
            .map(|c| self.ops_per_s / c)
    }

    /// The row in results-postgres-replicas.json.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("scenario".into(), json!(self.scenario));
        m.insert("replicas".into(), json!(self.replicas));
        m.insert("pg_rtt_ms".into(), json!(crate::link::ms(self.rtt)));
        if let Some(why) = &self.failed {
            m.insert("error".into(), json!(why));
            return Value::Object(m);
        }
        m.insert("connections".into(), json!(self.connections));
        m.insert("ops_per_s".into(), json!(r3(self.ops_per_s)));
        m.insert("p50_ms".into(), json!(r3(self.p50_ms)));
        m.insert("p99_ms".into(), json!(r3(self.p99_ms)));
        let optional = [
            (
                "open_loop_rate",
                self.open_loop_rate.map(r3).map(Value::from),
            ),
            (
                "release_p99_ms",
                self.release_p99_ms.map(r3).map(Value::from),
            ),
            ("waiters", self.waiters.map(Value::from)),
            ("met", self.met.map(Value::from)),
            ("peak_rss_mb", self.peak_rss_mb.map(r3).map(Value::from)),
            (
                "storage_ceiling",
                self.storage_ceiling.map(r3).map(Value::from),
            ),
            ("ratio", self.vs_ceiling().map(r3).map(Value::from)),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                m.insert(key.into(), v);
            }
        }
        m.insert("errors".into(), json!(self.errors));
        if let Some(e) = &self.first_error {
            m.insert("first_error".into(), json!(e));
        }
        m.extend(self.extra.clone());
        Value::Object(m)
    }
}

/// Everything a replica run reports.
pub struct ReplicaReport {
    pub mode: Mode,
    pub database: String,
    pub machine: Machine,
    pub pinning: String,
    pub seeding: String,
    pub binaries: String,
    /// `--replicas`.
    pub max_replicas: usize,
    /// The round trips to PostgreSQL every row ran at.
    pub rtts: Vec<Duration>,
    pub rows: Vec<Row>,
    pub seconds: f64,
}

impl ReplicaReport {
    /// results-postgres-replicas.json.
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode,
            "backend": "postgres",
            "database": self.database,
            "replicas": self.max_replicas,
            "pg_rtts_ms": self.rtts.iter().map(|r| crate::link::ms(*r)).collect::<Vec<_>>(),
            "machine": self.machine,
            "pinning": self.pinning,
            "seeding": self.seeding,
            "binaries": self.binaries,
            "run_seconds": self.seconds.round(),
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        })
    }

    /// The markdown table and what its columns mean.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Backend: **PostgreSQL** ({}), 1 and {} `opsd serve` replicas on one database.\n\n\
             | scenario | RTT | replicas | ops/s | vs 1 replica | vs ceiling | p50 ms | p99 ms | \
             release p99 ms | waiters | errors | RTT µs |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
            self.database, self.max_replicas
        );
        for row in &self.rows {
            if let Some(why) = &row.failed {
                s.push_str(&format!(
                    "| `{}` | {} | {} | failed: {why} |||||||||\n",
                    row.scenario,
                    opsd_proxy::format_rtt(row.rtt),
                    row.replicas
                ));
                continue;
            }
            let baseline = self
                .rows
                .iter()
                .find(|r| {
                    r.scenario == row.scenario
                        && r.rtt == row.rtt
                        && r.replicas == 1
                        && r.failed.is_none()
                })
                .map(|r| r.ops_per_s);
            let relative = match baseline {
                Some(b) if b > 0.0 => format!("{:.2}×", row.ops_per_s / b),
                _ => "–".into(),
            };
            let release = row.release_p99_ms.map_or("–".into(), |v| {
                let verdict = match row.met {
                    Some(true) => " (met)",
                    Some(false) => " (**not met**)",
                    None => "",
                };
                format!("{}{verdict}", num(v, 2))
            });
            let rtt_measured = proxy_rtt(&row.extra);
            let vs_ceiling = row.vs_ceiling().map_or("–".into(), |r| format!("{r:.2}"));
            s.push_str(&format!(
                "| `{}` | {} | {} | {} | {relative} | {vs_ceiling} | {} | {} | {release} | {} | {} | {rtt_measured} |\n",
                row.scenario,
                opsd_proxy::format_rtt(row.rtt),
                row.replicas,
                num(row.ops_per_s, 0),
                num(row.p50_ms, 2),
                num(row.p99_ms, 2),
                row.waiters.map_or("–".into(), |w| num(w as f64, 0)),
                row.errors,
            ));
        }
        s.push_str(
            "\nops/s: closed loop, the load generator's connections (32 for reads, 64 for \
             creates) dealt round-robin over the replicas; `wait_wakeup`: waiters released \
             per second; for the other rows, 1 and N replicas run side by side and their \
             closed loops alternate in three rounds. p50/p99: open loop at the 1-replica \
             row's open-loop rate, so both rows see the same offered load; `wait_wakeup`: \
             the PATCHes through replica 1. vs ceiling (`create_durable`): of the storage \
             ceiling at the same round trip (raw batched inserts through the same link, in \
             rounds between the replicas' while they idle), as in the single-server table. \
             release p99: from a write's acknowledgement by replica 1 to its waiter's answer \
             from another replica (with 1 replica: the same one); target ≤ 100 ms. RTT: \
             the round trip between the replicas and PostgreSQL (0: direct; above: through \
             opsd-bench's delaying proxy), vs 1 replica at the same round trip; RTT µs: \
             what the proxy measured under the scenario's load at that round trip, both \
             rows (p50 / p99).\n",
        );
        s.push_str(&run_context(
            self.mode,
            self.seconds,
            &self.machine,
            &self.pinning,
            &self.seeding,
            &self.binaries,
        ));
        s
    }
}
