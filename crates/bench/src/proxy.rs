//! `opsd-bench proxy`: the delaying proxy of `opsd_proxy` on its own (`link` starts one
//! per scenario instead), printing the round trip it measures now and then.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// `opsd-bench proxy`: a delaying proxy until killed.
pub fn run(
    listen: SocketAddr,
    upstream: &str,
    rtt: Duration,
    control: Option<SocketAddr>,
    every: Duration,
) -> Result<(), String> {
    let upstream = upstream
        .to_socket_addrs()
        .map_err(|e| format!("--upstream {upstream}: {e}"))?
        .next()
        .ok_or_else(|| format!("--upstream {upstream} has no address"))?;
    let proxy = opsd_proxy::Proxy::start(opsd_proxy::ProxyConfig {
        listen,
        upstream,
        rtt,
        control,
    })
    .map_err(|e| format!("cannot start the proxy on {listen}: {e}"))?;
    let control = proxy
        .control_addr()
        .map(|a| format!("; control API on http://{a}"))
        .unwrap_or_default();
    eprintln!(
        "opsd-bench proxy: {} → {upstream}, round trip {}{control}",
        proxy.addr(),
        opsd_proxy::format_rtt(rtt)
    );
    let mut chunks = 0;
    loop {
        std::thread::sleep(every.max(Duration::from_millis(100)));
        let s = proxy.stats();
        // Quiet while nothing moves.
        if s.up.chunks + s.down.chunks == chunks {
            continue;
        }
        chunks = s.up.chunks + s.down.chunks;
        eprintln!(
            "opsd-bench proxy: measured round trip p50 {} µs, p99 {} µs (asked {} µs); \
             {} connections ({} open), {} round trips, {} chunks, {} bytes{}",
            s.measured_rtt_p50_us,
            s.measured_rtt_p99_us,
            s.rtt_us,
            s.connections,
            s.open_connections,
            s.turns,
            chunks,
            s.up.bytes + s.down.bytes,
            if s.blackholed { "; blackholed" } else { "" },
        );
    }
}
