//! The distance between opsd and PostgreSQL (`--pg-rtt`). At a round trip of zero, opsd
//! and the storage ceiling connect to the server as the URL says (a remote server is
//! measured as it is). Above zero, every scenario (and every `scale` size) starts an
//! [`opsd_proxy::Proxy`] in this process, in front of the server the URL names, and
//! rewrites the host and port of the URLs that opsd and the storage ceiling get so that
//! every byte between them and PostgreSQL goes through it, delayed by half the round
//! trip each way. Seeding and the administrative statements (`CREATE DATABASE`, sizes)
//! stay direct. The proxy's threads are not pinned: like PostgreSQL's processes, they
//! share both CPUs with whatever runs.
//!
//! What the proxy measured under the scenario's load (the round trip it actually added,
//! the round trips the clients made) goes into the scenario's entry beside the round
//! trip asked for.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use opsd_proxy::{Proxy, ProxyConfig, Stats};
use opsd_store_open::DatabaseUrl;
use serde_json::{Value, json};
use tokio_postgres::config::Host;

use crate::outcome::r3;
use crate::plan::Mode;

/// The round trips a PostgreSQL run measures when `--pg-rtt` does not say: 0 and
/// 0.5 ms (smoke and quick), and 2 ms as well in the full run.
pub fn default_rtts(mode: Mode) -> Vec<Duration> {
    let mut rtts = vec![Duration::ZERO, Duration::from_micros(500)];
    if mode == Mode::Full {
        rtts.push(Duration::from_millis(2));
    }
    rtts
}

/// A round trip in milliseconds, for results.json.
pub fn ms(rtt: Duration) -> f64 {
    r3(rtt.as_secs_f64() * 1e3)
}

/// How opsd and the storage ceiling reach PostgreSQL during one scenario.
pub struct Link {
    /// The round trip added.
    pub rtt: Duration,
    proxy: Option<Proxy>,
}

impl Link {
    /// As the URL says: no proxy.
    pub fn direct() -> Link {
        Link {
            rtt: Duration::ZERO,
            proxy: None,
        }
    }

    /// A fresh proxy adding `rtt` in front of `upstream`, or [`direct`](Self::direct) at
    /// zero.
    pub fn start(rtt: Duration, upstream: Option<SocketAddr>) -> Result<Link, String> {
        let Some(upstream) = upstream.filter(|_| !rtt.is_zero()) else {
            return Ok(Link::direct());
        };
        let proxy = Proxy::start(ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            rtt,
            control: None,
        })
        .map_err(|e| format!("cannot start the delaying proxy: {e}"))?;
        Ok(Link {
            rtt,
            proxy: Some(proxy),
        })
    }

    /// `url` as opsd and the storage ceiling use it: through the proxy, if there is one.
    pub fn url(&self, url: &DatabaseUrl) -> Result<DatabaseUrl, String> {
        match &self.proxy {
            Some(p) => through(url, p.addr()),
            None => Ok(url.clone()),
        }
    }

    /// What results.json says about the link: the round trip asked for and, through
    /// the proxy, what it measured so far.
    pub fn notes(&self) -> Vec<(&'static str, Value)> {
        let mut notes = vec![("pg_rtt_ms", ms(self.rtt).into())];
        if let Some(p) = &self.proxy {
            let s = p.stats();
            notes.push(("proxy_rtt_p50_us", s.measured_rtt_p50_us.into()));
            notes.push(("proxy_rtt_p99_us", s.measured_rtt_p99_us.into()));
            notes.push(("proxy", proxy_json(&s)));
        }
        notes
    }
}

/// The proxy's statistics as a scenario's entry keeps them.
fn proxy_json(s: &Stats) -> Value {
    json!({
        "measured_rtt_p50_us": s.measured_rtt_p50_us,
        "measured_rtt_p99_us": s.measured_rtt_p99_us,
        "to_server_delay_p50_us": s.up.delay_p50_us,
        "to_server_delay_p99_us": s.up.delay_p99_us,
        "to_client_delay_p50_us": s.down.delay_p50_us,
        "to_client_delay_p99_us": s.down.delay_p99_us,
        "chunks": s.up.chunks + s.down.chunks,
        "bytes": s.up.bytes + s.down.bytes,
        "connections": s.connections,
        "round_trips": s.turns,
    })
}

/// The address of the one server `url` names (what the proxy forwards to).
pub fn upstream_of(url: &DatabaseUrl) -> Result<SocketAddr, String> {
    let config = url.config();
    let host = match config.get_hosts() {
        [Host::Tcp(host)] => host.clone(),
        _ => {
            return Err(format!(
                "--pg-rtt above 0 needs a database URL naming one server by host or \
                 address, not {url}"
            ));
        }
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// `url` with the host and port of its authority replaced by `addr`
/// (`postgres://user:pw@host:port/db?…` → `postgres://user:pw@ADDR/db?…`). Fails for a
/// URL that names its server elsewhere (`?host=…`), which would bypass the proxy.
pub fn through(url: &DatabaseUrl, addr: SocketAddr) -> Result<DatabaseUrl, String> {
    let raw = url.expose();
    let start = raw.find("://").map_or(0, |i| i + 3);
    let end = raw[start..]
        .find(['/', '?'])
        .map_or(raw.len(), |i| start + i);
    let host_start = raw[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let rewritten: DatabaseUrl = format!("{}{addr}{}", &raw[..host_start], &raw[end..]).parse()?;
    let config = rewritten.config();
    let reaches_proxy = matches!(config.get_hosts(), [Host::Tcp(h)] if *h == addr.ip().to_string())
        && config.get_ports() == [addr.port()];
    if reaches_proxy {
        Ok(rewritten)
    } else {
        Err(format!(
            "--pg-rtt above 0 needs the server's host and port in the URL's authority \
             (postgres://user:password@host:port/db), not in its options: {url}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_go_through_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:6000".parse().expect("addr");
        for (from, to) in [
            (
                "postgres://u:pw@db.internal:5433/opsd",
                "postgres://u:pw@127.0.0.1:6000/opsd",
            ),
            (
                "postgresql://u@127.0.0.1/x?sslmode=disable",
                "postgresql://u@127.0.0.1:6000/x?sslmode=disable",
            ),
            ("postgres://h:1", "postgres://127.0.0.1:6000"),
            (
                "postgres://u:p@[::1]:5432/d",
                "postgres://u:p@127.0.0.1:6000/d",
            ),
        ] {
            let url: DatabaseUrl = from.parse().expect("valid");
            assert_eq!(through(&url, proxy).expect("rewritten").expose(), to);
        }
        let elsewhere: DatabaseUrl = "postgres://u@/db?host=10.0.0.1".parse().expect("valid");
        assert!(through(&elsewhere, proxy).is_err());
    }

    #[test]
    fn the_upstream_is_the_urls_server() {
        let url: DatabaseUrl = "postgres://u:pw@127.0.0.1:5433/db".parse().expect("valid");
        assert_eq!(
            upstream_of(&url),
            Ok("127.0.0.1:5433".parse().expect("addr"))
        );
        let url: DatabaseUrl = "postgres://u@127.0.0.1/db".parse().expect("valid");
        assert_eq!(
            upstream_of(&url),
            Ok("127.0.0.1:5432".parse().expect("addr"))
        );
        let url: DatabaseUrl = "postgres://u@a,b/db".parse().expect("valid");
        assert!(upstream_of(&url).is_err());
    }
}
