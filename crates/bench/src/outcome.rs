//! What one scenario reports (the shape of its entry in `results.json`).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::loadgen::Stats;

/// A measured scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Throughput: closed loop, successful requests per second.
    pub ops_per_s: f64,
    /// Median latency (open loop unless said otherwise), ms.
    pub p50_ms: f64,
    /// 99th percentile latency (open loop unless said otherwise), ms.
    pub p99_ms: f64,
    /// The ceiling's throughput with the same load, where one applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_ops_per_s: Option<f64>,
    /// `ops_per_s / ceiling_ops_per_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The scenario's target, in words.
    pub target: String,
    /// The least `ratio` the target asks for, if it asks for one (drawn in the chart).
    #[serde(skip)]
    pub ratio_min: Option<f64>,
    /// Whether the target was met (absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// Peak RSS of the opsd process in this scenario (`VmHWM`), MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mb: Option<f64>,
    /// Connections of the load generator.
    pub connections: usize,
    /// Offered rate of the open-loop phase that gave p50/p99, requests/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_loop_rate: Option<f64>,
    /// Latency under the closed-loop (saturating) phase, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_loop_p50_ms: Option<f64>,
    /// Latency under the closed-loop (saturating) phase, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_loop_p99_ms: Option<f64>,
    /// Requests that failed or were not answered 2xx (all phases).
    pub errors: u64,
    /// One of those failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Scenario-specific fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// (quantile, ms) of the latency distribution, for the chart.
    #[serde(skip)]
    pub percentiles: Vec<(f64, f64)>,
}

/// Rounds to three decimals, so that results.json stays readable.
pub fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Quantiles drawn in the latency chart.
const CHART_QUANTILES: [f64; 9] = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0];

impl Outcome {
    /// Throughput from a closed-loop phase and latency from an open-loop phase.
    pub fn from_phases(closed: &Stats, open: Option<(&Stats, f64)>, connections: usize) -> Self {
        let latency = open.map_or(closed, |(s, _)| s);
        let mut o = Outcome {
            ops_per_s: r3(closed.ops_per_s()),
            p50_ms: r3(latency.quantile_ms(0.5)),
            p99_ms: r3(latency.quantile_ms(0.99)),
            connections,
            open_loop_rate: open.map(|(_, rate)| r3(rate)),
            closed_loop_p50_ms: open.map(|_| r3(closed.quantile_ms(0.5))),
            closed_loop_p99_ms: open.map(|_| r3(closed.quantile_ms(0.99))),
            percentiles: CHART_QUANTILES
                .iter()
                .map(|q| (*q, latency.quantile_ms(*q)))
                .collect(),
            ..Outcome::default()
        };
        o.add_errors(closed);
        if let Some((s, _)) = open {
            o.add_errors(s);
        }
        o
    }

    /// Counts the failures of another phase.
    pub fn add_errors(&mut self, s: &Stats) {
        self.errors += s.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&s.first_error);
        }
    }

    /// Sets the ceiling and the ratio to it.
    pub fn with_ceiling(&mut self, ceiling: f64) {
        self.ceiling_ops_per_s = Some(r3(ceiling));
        self.ratio = (ceiling > 0.0).then(|| r3(self.ops_per_s / ceiling));
    }

    /// A target of "ratio ≥ `min`".
    pub fn ratio_target(&mut self, min: f64, ceiling_name: &str) {
        self.target = format!("ratio ≥ {min} of the {ceiling_name} ceiling");
        self.ratio_min = Some(min);
        self.met = self.ratio.map(|r| r >= min);
    }

    /// Adds a scenario-specific field.
    pub fn extra(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.insert(key.into(), value.into());
    }
}

/// One entry of results.json.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Measured.
    Done(Box<Outcome>),
    /// Not run, and why (e.g. the wait endpoint does not exist in this build).
    Skipped(String),
    /// The harness could not run it.
    Failed(String),
}

impl Entry {
    /// The JSON written to results.json.
    pub fn to_json(&self) -> Value {
        match self {
            Entry::Done(o) => serde_json::to_value(o).unwrap_or(Value::Null),
            Entry::Skipped(why) => serde_json::json!({ "skipped": why }),
            Entry::Failed(why) => serde_json::json!({ "error": why }),
        }
    }
}
