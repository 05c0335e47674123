//! The run's results: `results.json` (scenario names as the issue gives them, as
//! top-level keys beside the run's context) and the markdown table printed on stdout.

use serde_json::{Map, Value, json};

use crate::machine::Machine;
use crate::outcome::Entry;
use crate::plan::Mode;

/// The scenarios, in the order they run and are reported.
pub const SCENARIOS: [&str; 8] = [
    "get_by_id",
    "list_first_page",
    "list_deep_page",
    "create_durable",
    "transition",
    "wait_wakeup",
    "wait_many",
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
    pub entries: Vec<(String, Entry)>,
    pub seconds: f64,
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
        for (name, entry) in &self.entries {
            m.insert(name.clone(), entry.to_json());
        }
        Value::Object(m)
    }

    /// The markdown summary.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        if let Some(database) = &self.database {
            s.push_str(&format!("Backend: **PostgreSQL** ({database}).\n\n"));
        }
        s.push_str(
            "| scenario | ops/s | p50 ms | p99 ms | ceiling ops/s | ratio | target | met | peak RSS MiB |\n\
             |---|--:|--:|--:|--:|--:|---|---|--:|\n",
        );
        for (name, entry) in &self.entries {
            match entry {
                Entry::Done(o) => s.push_str(&format!(
                    "| `{name}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    num(o.ops_per_s, 0),
                    num(o.p50_ms, 2),
                    num(o.p99_ms, 2),
                    o.ceiling_ops_per_s.map_or("–".into(), |c| num(c, 0)),
                    o.ratio.map_or("–".into(), |r| num(r, 2)),
                    o.target,
                    match o.met {
                        Some(true) => "yes",
                        Some(false) => "**no**",
                        None => "–",
                    },
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
        s.push('\n');
        if let Some(b) = self.db_bytes_per_million_ops {
            s.push_str(&format!(
                "Database size: {:.0} MiB per million operations (target ≤ 600: {}).\n",
                b / 1024.0 / 1024.0,
                if b / 1024.0 / 1024.0 <= 600.0 {
                    "met"
                } else {
                    "**not met**"
                }
            ));
        }
        s.push_str(&format!(
            "Mode `{}`, {:.0} s. Machine: {} × {}, {} GiB, Linux {}.\n\
             Pinning: {}.\nSeeding: {}.\nBinaries: {}.\n",
            json!(self.mode).as_str().unwrap_or(""),
            self.seconds,
            self.machine.cores,
            self.machine.cpu_model,
            self.machine.memory_gib,
            self.machine.kernel,
            self.pinning,
            self.seeding,
            self.binaries,
        ));
        s
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
