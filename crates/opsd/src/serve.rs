//! `opsd serve`: open the store (SQLite in the data directory, or PostgreSQL), bind, serve until SIGINT/SIGTERM,
//! then let in-flight requests finish. Beside the server run the background tasks of
//! live operations (lease expiry, retention), stopped after the server.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use opsd_server::background::{Background, LiveConfig};
use opsd_server::telemetry::Telemetry;
use opsd_server::{AppState, Config, RateLimit};
use tracing_subscriber::EnvFilter;

use crate::BoxError;
use crate::storage::StoreArgs;

/// Flags of `opsd serve`; each also reads an `OPSD_*` environment variable.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OPSD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// Refuse every write (503 `read_only`) until an admin sends
    /// `PUT /v1/admin/read_only {"read_only": false}`: for the last pass of `opsd copy`.
    #[arg(long, env = "OPSD_READ_ONLY")]
    read_only: bool,
    /// Longest an ordinary request may take (wait and watch excepted), e.g. 30s.
    #[arg(long, env = "OPSD_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Longest a client may take to send a request's head, and longest an idle
    /// keep-alive connection is kept (e.g. 10s).
    #[arg(long, env = "OPSD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
    /// Ordinary requests served at once; more are refused with 503 + Retry-After.
    #[arg(long, env = "OPSD_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    max_concurrent_requests: usize,
    /// Waits and watch streams open at once; more are refused with 503 + Retry-After.
    #[arg(long, env = "OPSD_MAX_LONG_LIVED_REQUESTS", default_value_t = 20_000)]
    max_long_lived_requests: usize,
    /// Requests per second each API key may make (0 disables the limit).
    #[arg(long, env = "OPSD_RATE_LIMIT", default_value_t = 50_000.0)]
    rate_limit: f64,
    /// Requests a key may make at once before its rate applies.
    #[arg(long, env = "OPSD_RATE_BURST", default_value_t = 50_000.0)]
    rate_burst: f64,
    /// Requests per second each client address may make with a missing, unknown or
    /// revoked key (0 disables the limit); above it, 429 before any key lookup.
    #[arg(long, env = "OPSD_AUTH_FAILURE_RATE", default_value_t = 100.0)]
    auth_failure_rate: f64,
    /// Failed authentications a client address may make at once before that rate applies.
    #[arg(long, env = "OPSD_AUTH_FAILURE_BURST", default_value_t = 1_000.0)]
    auth_failure_burst: f64,
    /// MiB of rendered GET and list responses kept in memory, so that polls of what did
    /// not change skip the store (0 turns the read cache off).
    #[arg(long, env = "OPSD_READ_CACHE_MIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=65_536))]
    read_cache_mib: u32,
    /// PEM certificate chain: serve HTTPS instead of HTTP (needs --tls-key).
    #[arg(long, env = "OPSD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "OPSD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "OPSD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// How long done and failed operations are kept after they end (e.g. 30d, 12h, 3s).
    #[arg(long, env = "OPSD_RETENTION", default_value = "30d", value_parser = parse_retention)]
    retention: Duration,
    /// Origins (comma-separated, e.g. https://app.example.com) whose pages may call the
    /// API from a browser with their own key (CORS). Default: none.
    // The help text shows the URL as written, without the brackets rustdoc would want.
    #[allow(rustdoc::bare_urls)]
    #[arg(long, env = "OPSD_CORS_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = opsd_server::http::parse_origin)]
    cors_allowed_origins: Vec<String>,
    /// Export traces over OTLP (HTTP/protobuf) to this collector, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is added). Default: no tracing at all. The
    /// service name comes from OTEL_SERVICE_NAME (default opsd), sampling from
    /// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

fn parse_retention(s: &str) -> Result<Duration, String> {
    opsd_domain::duration::parse_retention(s).map_err(|e| e.message)
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> Result<(), BoxError> {
    let telemetry = start_telemetry(args.otlp_endpoint.as_deref())?;
    init_logging(args.log_format, telemetry.as_ref());
    if std::env::var_os("OPSD_FAULT_HOOKS").is_some_and(|v| v == "1") {
        // Test-only: `POST /debug/faults/{worker}/panic` (opsd_store::supervise).
        opsd_store::supervise::enable_faults();
        tracing::warn!("fault hooks are on (OPSD_FAULT_HOOKS=1): for tests only");
    }
    let store = args.store.open().await?;
    crate::keys::ensure_first_admin(&*store, &args.store.data_dir).await?;
    let config = Config {
        request_timeout: args.request_timeout,
        max_concurrent_requests: args.max_concurrent_requests,
        max_long_lived_requests: args.max_long_lived_requests,
        rate_limit: (args.rate_limit > 0.0).then_some(RateLimit {
            per_second: args.rate_limit,
            burst: args.rate_burst.max(1.0),
        }),
        auth_failure_limit: (args.auth_failure_rate > 0.0).then_some(RateLimit {
            per_second: args.auth_failure_rate,
            burst: args.auth_failure_burst.max(1.0),
        }),
        header_read_timeout: args.header_read_timeout,
        tls: args.tls_cert.is_some(),
        cors_allowed_origins: args.cors_allowed_origins.clone(),
        read_cache_bytes: (args.read_cache_mib as usize) << 20,
        read_only: args.read_only,
    };
    // Read the certificate before binding, so a bad file fails the start cleanly.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(opsd_server::tls::load(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        store = %args.store.config().describe(),
        retention = %humantime::format_duration(args.retention),
        "opsd listening"
    );
    // Tests and scripts that pass port 0 read the chosen address from this line.
    let operations: std::sync::Arc<dyn opsd_store::Store> = if telemetry.is_some() {
        let system = match args.store.config() {
            opsd_store_open::StoreConfig::Sqlite { .. } => "sqlite",
            opsd_store_open::StoreConfig::Postgres { .. } => "postgresql",
        };
        std::sync::Arc::new(opsd_store::traced::TracedStore::new(store.clone(), system))
    } else {
        store.clone()
    };
    let state = AppState::from_parts(operations, store, &config);
    // Not println!, which panics when stdout cannot be written.
    let _ = writeln!(
        std::io::stdout(),
        "opsd listening on {}://{addr}",
        state.scheme
    );
    // For people; written after the line scripts read, and allowed to fail: a script that
    // stopped reading stdout after the listening line must not stop the server.
    let _ = writeln!(
        std::io::stdout(),
        "opsd console: {}://{addr}/console (sign in with the key in {})",
        state.scheme,
        args.store.data_dir.join("admin.key").display()
    );
    let live_config = LiveConfig {
        retention: args.retention,
    };
    let background = Background::start(state.background_handles(), &live_config);
    // A worker that keeps panicking (opsd_store::supervise) stops the server like a
    // signal would, and the process exits non-zero for its supervisor to restart it.
    let (gave_up_tx, gave_up_rx) = tokio::sync::oneshot::channel();
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            worker = opsd_store::supervise::gave_up() => {
                let _ = gave_up_tx.send(worker);
            }
        }
    };
    let served = match tls {
        Some(tls) => {
            let listener = opsd_server::tls::TlsListener::new(listener, tls);
            opsd_server::serve(listener, state, stop).await
        }
        None => opsd_server::serve(opsd_server::listener::plain(listener), state, stop).await,
    };
    background.stop().await;
    if let Some(telemetry) = telemetry {
        // The last spans go out before the process exits.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    served?;
    if let Ok(worker) = gave_up_rx.await {
        return Err(format!(
            "worker {worker} panicked {} times within {} s; exiting so that opsd is restarted",
            opsd_store::supervise::MAX_PANICS,
            opsd_store::supervise::PANIC_WINDOW.as_secs()
        )
        .into());
    }
    tracing::info!("opsd stopped");
    Ok(())
}

/// Starts trace export when an endpoint is given (flag or `OTEL_EXPORTER_OTLP_ENDPOINT`).
fn start_telemetry(endpoint: Option<&str>) -> Result<Option<Telemetry>, BoxError> {
    let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    let var = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let sampler = opsd_server::telemetry::sampler(
        var("OTEL_TRACES_SAMPLER").as_deref(),
        var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
    )?;
    let service = var("OTEL_SERVICE_NAME").unwrap_or_else(|| "opsd".to_owned());
    Ok(Some(Telemetry::start(endpoint, &service, sampler)?))
}

/// `opsd migrate`.
pub async fn migrate(store: &StoreArgs) -> Result<(), BoxError> {
    store.open().await?;
    let _ = writeln!(
        std::io::stdout(),
        "database {} is up to date",
        store.config().describe()
    );
    Ok(())
}

/// Logs go to stderr through `opsd_server::log`: a line that cannot be written (the
/// disk under the log is full) is dropped and counted, never raised, and a slow stderr
/// delays only the log thread. `log_internal_errors(false)`: tracing-subscriber would
/// otherwise report a failed write with `eprintln!`, which panics when stderr fails.
///
/// With trace export on, the subscriber is a registry with two layers: the log lines
/// (filtered by `OPSD_LOG` as before) and the OpenTelemetry layer, which sees every
/// span at info and above whatever the log level. Off, it is the plain formatter.
fn init_logging(format: LogFormat, telemetry: Option<&Telemetry>) {
    let filter = EnvFilter::try_from_env("OPSD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if let Some(telemetry) = telemetry {
        use tracing_subscriber::prelude::*;
        let otel = telemetry
            .layer()
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(opsd_server::log::non_blocking(std::io::stderr()))
            .log_internal_errors(false)
            .with_ansi(ansi);
        let registry = tracing_subscriber::registry().with(otel);
        match format {
            LogFormat::Text => registry.with(fmt.with_filter(filter)).init(),
            LogFormat::Json => registry.with(fmt.json().with_filter(filter)).init(),
        }
    } else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(opsd_server::log::non_blocking(std::io::stderr()))
            .log_internal_errors(false)
            .with_ansi(ansi);
        match format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
    }
    // Panic messages through the same log: the default hook writes stderr directly,
    // which blocks the panicking thread (a worker) when stderr is a pipe nobody reads.
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::capture();
        tracing::error!(panic = %info, %backtrace, "panic");
    }));
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
