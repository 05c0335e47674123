//! The command line: the benchmark run's flags, and the subcommands that run the ceiling
//! servers, the soak, the OTLP sink and the delaying proxy on their own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::plan::Mode;

/// opsd's benchmark harness.
#[derive(Parser)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Sizes and durations.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    pub mode: Mode,
    /// The opsd binary to measure.
    #[arg(long, default_value = "target/release/opsd")]
    pub opsd: PathBuf,
    /// Where results.json, results.md and the charts go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Run only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Do not pin servers and load generator to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// How the binaries were built, for the report (`release` or `debug`).
    #[arg(long, default_value = "release")]
    pub profile: String,
    /// The storage backend opsd runs on.
    #[arg(long, value_enum, default_value_t = BackendName::Sqlite)]
    pub backend: BackendName,
    /// The PostgreSQL server for `--backend postgres` (its user needs CREATEDB: every
    /// scenario gets a database of its own).
    #[arg(long, env = "OPSD_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// With `--backend postgres`: measure 1 and this many `opsd serve` replicas on one
    /// database (get/list/create throughput, wait_wakeup across replicas) instead of
    /// the single-server scenarios.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// With `--backend postgres`: the round trips between opsd (and the storage ceiling)
    /// and PostgreSQL to measure every scenario at, comma-separated (`0,0.5ms,2ms`; a
    /// bare number is milliseconds). Above 0, a delaying proxy in this process sits in
    /// between; 0 connects as the URL says. Default: 0 and 0.5 ms, and 2 ms in the full
    /// run.
    #[arg(long, value_delimiter = ',', value_parser = opsd_proxy::parse_rtt)]
    pub pg_rtt: Vec<Duration>,
}

/// `--backend`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendName {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
pub enum Command {
    /// The HTTP ceiling server: answers every request with the given body.
    CeilingHttp {
        #[arg(long)]
        body_file: PathBuf,
    },
    /// The gRPC ceiling server: answers every GetOperation with the given message.
    CeilingGrpc {
        #[arg(long)]
        body_file: PathBuf,
    },
    /// A long mixed load at half capacity; fails if memory, files or tasks keep growing.
    Soak {
        /// The opsd binary to soak.
        #[arg(long, default_value = "target/release/opsd")]
        opsd: PathBuf,
        /// How long, e.g. 60s or 30m.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
    /// A collector that accepts OTLP/HTTP trace exports and discards them, until
    /// killed (for measuring what export costs: point OTEL_EXPORTER_OTLP_ENDPOINT here).
    OtlpSink {
        /// Where opsd sends its spans, e.g. 127.0.0.1:4318.
        #[arg(long)]
        listen: SocketAddr,
        /// How often to print what arrived.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        every: Duration,
    },
    /// A delaying TCP proxy (`opsd_proxy`) until killed: every byte to and from the
    /// upstream server half the round trip late each way; prints the round trip it
    /// measures to stderr now and then.
    Proxy {
        /// Where clients connect, e.g. 127.0.0.1:6432.
        #[arg(long)]
        listen: SocketAddr,
        /// The server to forward to, host:port.
        #[arg(long)]
        upstream: String,
        /// The round trip to add, e.g. 0.5ms, 500us, 2ms.
        #[arg(long, value_parser = opsd_proxy::parse_rtt)]
        rtt: Duration,
        /// Where to serve the control API: POST /blackhole, /flow, /cut; GET /stats.
        #[arg(long)]
        control: Option<SocketAddr>,
        /// How often to print the measured round trip.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        every: Duration,
    },
}
