//! The run's results: `results.json` (scenario names as top-level keys beside the run's
//! context) and the markdown table printed on stdout.
//! On PostgreSQL each scenario's key holds a list, one entry per round trip of the run
//! (`pg_rtts_ms`), and the table puts the round trips side by side.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::machine::Machine;
use crate::outcome::Entry;
use crate::plan::Mode;

/// The scenarios, in the order they run and are reported.
pub const SCENARIOS: [&str; 11] = [
    "get_by_id",
    "google_get",
    "grpc_get",
    "list_first_page",
    "list_deep_page",
    "create_durable",
    "transition",
    "wait_wakeup",
    "wait_many",
    "backup",
    "scale",
];

/// Everything a run reports.
pub struct Report {
    pub mode: Mode,
    /// The PostgreSQL server, when the run measured that backend (`None`: SQLite).
    pub database: Option<String>,
    pub machine: Machine,
    pub pinning: String,
    pub seeding: String,
    pub binaries: String,
    pub db_bytes_per_million_ops: Option<f64>,
    /// The scenarios, once per round trip to PostgreSQL (one group on SQLite).
    pub groups: Vec<Group>,
    pub seconds: f64,
}

/// The scenarios measured at one round trip.
pub struct Group {
    /// The round trip to PostgreSQL (`None`: SQLite).
    pub rtt: Option<Duration>,
    pub entries: Vec<(String, Entry)>,
}

impl Group {
    /// `prefix` and the round trip (`" at RTT 0.5ms"`), or nothing on SQLite.
    pub fn label(&self, prefix: &str) -> String {
        self.rtt
            .map(|r| format!("{prefix}{}", opsd_proxy::format_rtt(r)))
            .unwrap_or_default()
    }
}

impl Report {
    /// results.json.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("mode".into(), json!(self.mode));
        if let Some(database) = &self.database {
            m.insert("backend".into(), json!("postgres"));
            m.insert("database".into(), json!(database));
        }
        m.insert("machine".into(), json!(self.machine));
        m.insert("pinning".into(), json!(self.pinning));
        m.insert("seeding".into(), json!(self.seeding));
        m.insert("binaries".into(), json!(self.binaries));
        m.insert(
            "db_bytes_per_million_ops".into(),
            json!(self.db_bytes_per_million_ops),
        );
        m.insert("run_seconds".into(), json!(self.seconds.round()));
        if self.database.is_some() {
            let rtts: Vec<f64> = self
                .groups
                .iter()
                .filter_map(|g| g.rtt)
                .map(crate::link::ms)
                .collect();
            m.insert("pg_rtts_ms".into(), json!(rtts));
            for (name, _) in self.groups.first().map_or(&[][..], |g| &g.entries) {
                let at_each: Vec<Value> = self
                    .groups
                    .iter()
                    .filter_map(|g| g.entries.iter().find(|(n, _)| n == name))
                    .map(|(_, e)| e.to_json())
                    .collect();
                m.insert(name.clone(), Value::Array(at_each));
            }
        } else {
            for (name, entry) in self.groups.iter().flat_map(|g| &g.entries) {
                m.insert(name.clone(), entry.to_json());
            }
        }
        Value::Object(m)
    }

    /// The markdown summary.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        if let Some(database) = &self.database {
            s.push_str(&format!("Backend: **PostgreSQL** ({database}).\n\n"));
            s.push_str(&self.rtt_table());
        } else {
            s.push_str(&self.table());
        }
        s.push('\n');
        if let Some(b) = self.db_bytes_per_million_ops {
            // The size target on SQLite (600 MiB per million), and on PostgreSQL (800).
            let target = if self.database.is_some() {
                800.0
            } else {
                600.0
            };
            s.push_str(&format!(
                "Database size: {:.0} MiB per million operations (target ≤ {target}: {}).\n",
                b / 1024.0 / 1024.0,
                if b / 1024.0 / 1024.0 <= target {
                    "met"
                } else {
                    "**not met**"
                }
            ));
        }
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

    /// One row per scenario (SQLite: one group).
    fn table(&self) -> String {
        let mut s = String::from(
            "| scenario | ops/s | p50 ms | p99 ms | ceiling ops/s | ratio | target | met | peak RSS MiB |\n\
             |---|--:|--:|--:|--:|--:|---|---|--:|\n",
        );
        for (name, entry) in self.groups.iter().flat_map(|g| &g.entries) {
            match entry {
                Entry::Done(o) => s.push_str(&format!(
                    "| `{name}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    num(o.ops_per_s, 0),
                    num(o.p50_ms, 2),
                    num(o.p99_ms, 2),
                    o.ceiling_ops_per_s.map_or("–".into(), |c| num(c, 0)),
                    o.ratio.map_or("–".into(), |r| num(r, 2)),
                    o.target,
                    met(o.met),
                    o.peak_rss_mb.map_or("–".into(), |r| num(r, 0)),
                )),
                Entry::Skipped(why) => {
                    s.push_str(&format!("| `{name}` | skipped: {why} ||||||||\n"));
                }
                Entry::Failed(why) => {
                    s.push_str(&format!("| `{name}` | failed: {why} ||||||||\n"));
                }
            }
        }
        s
    }

    /// PostgreSQL: one row per scenario, one group of columns per round trip, then the
    /// target (the same at every round trip).
    fn rtt_table(&self) -> String {
        let mut s = String::from(
            "Round trip between opsd (and the storage ceiling) and PostgreSQL: `@0` \
             direct, otherwise through opsd-bench's delaying proxy; `RTT µs` is the \
             round trip the proxy measured under the scenario's load (p50 / p99). The \
             ratio at each round trip is to the ceiling measured at that round trip.\n\n",
        );
        let columns = |g: &Group| {
            let at = g.label("@");
            let mut c = vec![
                format!("ops/s {at}"),
                format!("p50 / p99 ms {at}"),
                format!("ratio (ceiling) {at}"),
                format!("met {at}"),
                format!("RSS MiB {at}"),
            ];
            if g.rtt.is_some_and(|r| !r.is_zero()) {
                c.push(format!("RTT µs {at}"));
            }
            c
        };
        let mut header = vec!["scenario".to_owned()];
        let mut align = vec!["---"];
        for g in &self.groups {
            let c = columns(g);
            align.extend(std::iter::repeat_n("--:", c.len()));
            header.extend(c);
        }
        header.push("target".into());
        align.push("---");
        s.push_str(&format!(
            "| {} |\n|{}|\n",
            header.join(" | "),
            align.join("|")
        ));
        let names = self.groups.first().map_or(&[][..], |g| &g.entries);
        for (name, _) in names {
            let mut row = vec![format!("`{name}`")];
            let mut target = String::new();
            for g in &self.groups {
                let width = columns(g).len();
                let mut cells = match g.entries.iter().find(|(n, _)| n == name) {
                    Some((_, Entry::Done(o))) => {
                        target.clone_from(&o.target);
                        vec![
                            num(o.ops_per_s, 0),
                            format!("{} / {}", num(o.p50_ms, 2), num(o.p99_ms, 2)),
                            match (o.ratio, o.ceiling_ops_per_s) {
                                (Some(r), Some(c)) => format!("{} ({})", num(r, 2), num(c, 0)),
                                _ => "–".into(),
                            },
                            met(o.met).into(),
                            o.peak_rss_mb.map_or("–".into(), |r| num(r, 0)),
                            proxy_rtt(&o.extra),
                        ]
                    }
                    Some((_, Entry::Skipped(why))) => vec![format!("skipped: {why}")],
                    Some((_, Entry::Failed(why))) => vec![format!("failed: {why}")],
                    None => vec![],
                };
                cells.resize(width, "–".into());
                row.extend(cells);
            }
            row.push(target);
            s.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        s
    }
}

/// The lines under a table (this report's and the replicas'): the mode, how long the run
/// took, the machine, and how the run was set up.
pub fn run_context(
    mode: Mode,
    seconds: f64,
    machine: &Machine,
    pinning: &str,
    seeding: &str,
    binaries: &str,
) -> String {
    format!(
        "Mode `{}`, {:.0} s. Machine: {} × {}, {} GiB, Linux {}.\n\
         Pinning: {}.\nSeeding: {}.\nBinaries: {}.\n",
        json!(mode).as_str().unwrap_or(""),
        seconds,
        machine.cores,
        machine.cpu_model,
        machine.memory_gib,
        machine.kernel,
        pinning,
        seeding,
        binaries,
    )
}

/// The round trip the delaying proxy measured under a row's load, `p50 / p99` in µs
/// (the keys `link` adds to a scenario's fields), or `–` when it did not run.
pub fn proxy_rtt(extra: &Map<String, Value>) -> String {
    let measured = |k: &str| extra.get(k).and_then(Value::as_u64);
    match (measured("proxy_rtt_p50_us"), measured("proxy_rtt_p99_us")) {
        (Some(p50), Some(p99)) => format!("{p50} / {p99}"),
        _ => "–".into(),
    }
}

fn met(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    }
}

/// A number with thousands separators and `decimals` decimals.
pub fn num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let text = format!("{v:.decimals$}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(num(1234567.891, 0), "1,234,568");
        assert_eq!(num(0.1234, 2), "0.12");
        assert_eq!(num(-1000.0, 1), "-1,000.0");
        assert_eq!(num(f64::NAN, 1), "–");
    }
}
