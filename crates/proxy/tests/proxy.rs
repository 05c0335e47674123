//! The proxy between a client and an echo server, everything on 127.0.0.1.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use opsd_proxy::{Proxy, ProxyConfig};

/// A server that sends back whatever it reads, on every connection, until the client
/// closes.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

fn proxy(upstream: SocketAddr, rtt: Duration, control: bool) -> Proxy {
    Proxy::start(ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        upstream,
        rtt,
        control: control.then(|| "127.0.0.1:0".parse().expect("addr")),
    })
    .expect("proxy starts")
}

fn connect(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addr()).expect("connect to the proxy");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Sends `msg` and reads as many bytes back.
fn exchange(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).expect("write");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("echo");
    back
}

/// One request on the control address; returns (status, body).
fn control(proxy: &Proxy, method: &str, path: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(proxy.control_addr().expect("control")).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: proxy\r\ncontent-length: 0\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response.split_once("\r\n\r\n").expect("head").1;
    (status, serde_json::from_str(body).expect("JSON"))
}

/// Waits until `f` holds (the proxy's threads count a moment after the bytes move).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_round_trip_costs_the_rtt() {
    let rtt = Duration::from_millis(20);
    let proxy = proxy(echo_server(), rtt, false);
    let mut s = connect(&proxy);
    for i in 0..10u8 {
        let started = Instant::now();
        assert_eq!(exchange(&mut s, &[i; 100]), [i; 100]);
        assert!(started.elapsed() >= rtt, "{:?}", started.elapsed());
    }
    let stats = proxy.stats();
    assert_eq!(stats.rtt_us, 20_000);
    assert!(
        (20_000..40_000).contains(&stats.measured_rtt_p50_us),
        "{stats:?}"
    );
    assert!(stats.measured_rtt_p99_us >= 20_000, "{stats:?}");
    assert_eq!((stats.up.bytes, stats.down.bytes), (1_000, 1_000));
    assert_eq!(stats.up.samples, stats.up.chunks);
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.turns, 10);
}

#[test]
fn bytes_keep_their_order() {
    let proxy = proxy(echo_server(), Duration::from_millis(1), false);
    let mut s = connect(&proxy);
    let total = 1 << 20;
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let mut r = s.try_clone().expect("clone");
    let reader = thread::spawn(move || {
        let mut back = vec![0u8; total];
        r.read_exact(&mut back).expect("all of it back");
        back
    });
    // Many small writes, of varying sizes.
    let mut at = 0;
    for size in [1, 7, 100, 1_000, 3].iter().cycle() {
        if at == total {
            break;
        }
        let end = (at + size).min(total);
        s.write_all(&data[at..end]).expect("write");
        at = end;
    }
    let back = reader.join().expect("reader");
    assert!(back == data, "the bytes came back out of order");
    let stats = proxy.stats();
    assert_eq!(stats.up.bytes, total as u64);
    assert_eq!(stats.down.bytes, total as u64);
}

#[test]
fn a_blackhole_holds_and_flow_delivers() {
    let proxy = proxy(echo_server(), Duration::ZERO, true);
    let mut s = connect(&proxy);
    assert_eq!(exchange(&mut s, b"before"), b"before");

    assert_eq!(control(&proxy, "POST", "/blackhole").0, 200);
    s.write_all(b"held").expect("write");
    // A new connection is accepted, but nothing flows on it either.
    let mut late = connect(&proxy);
    late.write_all(b"late").expect("write");
    for conn in [&mut s, &mut late] {
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 4];
        let e = conn.read(&mut buf).expect_err("nothing gets through");
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        );
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
    }
    assert_eq!(proxy.stats().down.bytes, 6, "the server saw nothing held");
    assert!(proxy.stats().blackholed);

    let (status, body) = control(&proxy, "POST", "/flow");
    assert_eq!((status, &body["blackholed"]), (200, &false.into()));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).expect("released");
    assert_eq!(&buf, b"held");
    late.read_exact(&mut buf).expect("released");
    assert_eq!(&buf, b"late");
    assert_eq!(exchange(&mut s, b"after"), b"after");

    let (status, stats) = control(&proxy, "GET", "/stats");
    assert_eq!(status, 200);
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["blackholed"], false);
    assert_eq!(control(&proxy, "GET", "/cut").0, 405);
    assert_eq!(control(&proxy, "GET", "/nowhere").0, 404);
}

#[test]
fn cut_closes_connections_and_new_ones_work() {
    let proxy = proxy(echo_server(), Duration::from_millis(1), true);
    let mut a = connect(&proxy);
    let mut b = connect(&proxy);
    assert_eq!(exchange(&mut a, b"a"), b"a");
    assert_eq!(exchange(&mut b, b"b"), b"b");
    eventually("two open connections", || {
        proxy.stats().open_connections == 2
    });

    let (status, body) = control(&proxy, "POST", "/cut");
    assert_eq!((status, &body["cut"]), (200, &2.into()));
    for conn in [&mut a, &mut b] {
        let mut buf = [0u8; 1];
        // Closed: end of stream (or a reset, if a write raced the shutdown).
        assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)));
    }
    eventually("the cut connections to go", || {
        proxy.stats().open_connections == 0
    });

    let mut c = connect(&proxy);
    assert_eq!(exchange(&mut c, b"still here"), b"still here");
    assert_eq!(proxy.cut(), 1);
}

#[test]
fn turns_count_round_trips_not_requests() {
    let server = echo_server();
    // Three requests, each awaited before the next: three turns.
    let sequential = proxy(server, Duration::from_millis(10), false);
    let mut s = connect(&sequential);
    for msg in [b"one", b"two", b"six"] {
        assert_eq!(exchange(&mut s, msg), msg);
    }
    assert_eq!(sequential.stats().turns, 3);

    // Three requests sent before reading any answer: one turn.
    let pipelined = proxy(server, Duration::from_millis(10), false);
    let mut s = connect(&pipelined);
    for msg in [b"one", b"two", b"six"] {
        s.write_all(msg).expect("write");
    }
    let mut back = [0u8; 9];
    s.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"onetwosix");
    assert_eq!(pipelined.stats().turns, 1);
    assert_eq!(pipelined.stats().connections, 1);
}

#[test]
fn stop_ends_connections_and_listening() {
    let proxy = proxy(echo_server(), Duration::from_millis(5), true);
    let addr = proxy.addr();
    let control_addr = proxy.control_addr().expect("control");
    let mut s = connect(&proxy);
    assert_eq!(exchange(&mut s, b"x"), b"x");
    proxy.blackhole();
    s.write_all(b"held").expect("write");
    let started = Instant::now();
    proxy.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut buf = [0u8; 4];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    assert!(TcpStream::connect(addr).is_err());
    assert!(TcpStream::connect(control_addr).is_err());
}

#[test]
fn zero_rtt_forwards_at_once() {
    let proxy = proxy(echo_server(), Duration::ZERO, false);
    let mut s = connect(&proxy);
    for _ in 0..100 {
        assert_eq!(exchange(&mut s, b"ping"), b"ping");
    }
    let stats = proxy.stats();
    assert!(stats.measured_rtt_p50_us < 5_000, "{stats:?}");
    assert_eq!(stats.turns, 100);

    proxy.reset_stats();
    let stats = proxy.stats();
    assert_eq!(
        (stats.turns, stats.up.samples, stats.connections),
        (0, 0, 0)
    );
    assert_eq!(stats.open_connections, 1, "the connection stays open");
    assert_eq!(exchange(&mut s, b"again"), b"again");
    assert_eq!(proxy.stats().turns, 1);
}

#[test]
fn an_unreachable_upstream_closes_the_client() {
    // A port nobody listens on: bind, note it, close.
    let upstream = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let proxy = proxy(upstream, Duration::ZERO, false);
    let mut s = connect(&proxy);
    let mut buf = [0u8; 1];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    eventually("the connection to go", || {
        proxy.stats().open_connections == 0
    });
}
