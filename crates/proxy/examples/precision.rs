//! How precisely the proxy keeps its round trip on this machine: `conns` clients each
//! make 2,000 small request/answer exchanges with an echo server through a proxy adding
//! `rtt_us`, and the round trip the clients saw is printed beside the proxy's own figures.
//!
//! `cargo run --release -p opsd-proxy --example precision -- [rtt_us=500] [conns=1]`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use opsd_proxy::{Proxy, ProxyConfig};

const EXCHANGES: usize = 2_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: u64| {
        args.next()
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (rtt_us, conns) = (arg(500), arg(1));

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = Proxy::start(ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        upstream,
        rtt: Duration::from_micros(rtt_us),
        control: None,
    })
    .expect("proxy");
    let addr = proxy.addr();
    let started = Instant::now();
    let clients: Vec<_> = (0..conns)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let mut seen = Vec::with_capacity(EXCHANGES);
                let mut buf = [0u8; 4];
                for _ in 0..EXCHANGES {
                    let t = Instant::now();
                    s.write_all(b"ping").expect("write");
                    s.read_exact(&mut buf).expect("read");
                    seen.push(t.elapsed().as_micros());
                }
                seen
            })
        })
        .collect();
    let mut seen: Vec<u128> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    seen.sort_unstable();
    let at = |q: f64| seen[((seen.len() - 1) as f64 * q) as usize];
    println!(
        "{} exchanges over {conns} connection(s) in {:.2} s; round trip seen by the clients: \
         p50 {} µs, p99 {} µs, max {} µs",
        seen.len(),
        started.elapsed().as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    let s = proxy.stats();
    println!(
        "proxy (asked {} µs): measured p50 {} µs, p99 {} µs; per direction p50 {} / {} µs; \
         {} round trips",
        s.rtt_us,
        s.measured_rtt_p50_us,
        s.measured_rtt_p99_us,
        s.up.delay_p50_us,
        s.down.delay_p50_us,
        s.turns
    );
}
