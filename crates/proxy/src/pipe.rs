//! One proxied connection: four threads, a reader and a writer per direction, joined by
//! a channel of time-stamped chunks.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use crate::stats::Dir;
use crate::{Shared, Sockets, lock, spawn};

/// How long a connection to the upstream server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a writer expects a sleep to overrun (an estimate beyond it is a loaded
/// machine's noise, not the timer's).
const MAX_OVERSHOOT_NS: u64 = 200_000;
/// The longest single sleep, so that a writer notices the proxy stopping.
const NAP: Duration = Duration::from_millis(50);
/// The most a reader takes from its socket at once.
const READ_SIZE: usize = 64 * 1024;

/// The work of one of a connection's threads.
type Job = Box<dyn FnOnce() + Send>;

/// What a reader hands its writer.
enum Msg {
    /// Bytes, and when they were read.
    Data(Vec<u8>, Instant),
    /// The source ended (or failed): half-close the destination after what came before.
    End,
}

/// What the threads of one connection share; dropping the last one forgets the
/// connection.
struct Conn {
    id: u64,
    shared: Arc<Shared>,
    /// Whether server data reached the client since the client last sent.
    server_spoke: AtomicBool,
}

impl Conn {
    /// Shuts both sockets down: the connection ends in every thread.
    fn close(&self) {
        if let Some(s) = lock(&self.shared.conns).get_mut(&self.id) {
            s.shut();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
    }
}

/// Takes over an accepted client connection: connects upstream on a thread of its own,
/// which then reads from the client.
pub(crate) fn start(client: TcpStream, shared: &Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let Ok(registered) = client.try_clone() else {
        return;
    };
    let id = shared
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    lock(&shared.conns).insert(
        id,
        Sockets {
            client: registered,
            upstream: None,
            cut: false,
        },
    );
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        id,
        shared: shared.clone(),
        server_spoke: AtomicBool::new(true),
    });
    // If no thread can be had, the closure (and with it the connection) is dropped: the
    // client sees it close.
    if let Ok(handle) = spawn("opsd-proxy-conn", move || run(client, conn)) {
        shared.keep_thread(handle);
    }
}

fn run(client: TcpStream, conn: Arc<Conn>) {
    let shared = conn.shared.clone();
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = upstream.set_nodelay(true);
    {
        let mut conns = lock(&shared.conns);
        let cut = conns.get(&conn.id).is_none_or(|s| s.cut);
        if cut || shared.stopping() {
            let _ = upstream.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        if let (Some(s), Ok(up)) = (conns.get_mut(&conn.id), upstream.try_clone()) {
            s.upstream = Some(up);
        }
    }
    let clones = (
        client.try_clone(),
        upstream.try_clone(),
        upstream.try_clone(),
    );
    let (Ok(client_w), Ok(upstream_r), Ok(upstream_w)) = clones else {
        conn.close();
        return;
    };
    let (up_tx, up_rx) = channel();
    let (down_tx, down_rx) = channel();
    let threads: [(&str, Job); 3] = [
        ("opsd-proxy-up-w", {
            let conn = conn.clone();
            Box::new(move || writer(upstream_w, &up_rx, Dir::Up, &conn))
        }),
        ("opsd-proxy-down-r", {
            let conn = conn.clone();
            Box::new(move || reader(upstream_r, &down_tx, Dir::Down, &conn))
        }),
        ("opsd-proxy-down-w", {
            let conn = conn.clone();
            Box::new(move || writer(client_w, &down_rx, Dir::Down, &conn))
        }),
    ];
    for (name, f) in threads {
        match spawn(name, f) {
            Ok(handle) => shared.keep_thread(handle),
            Err(_) => {
                conn.close();
                return;
            }
        }
    }
    reader(client, &up_tx, Dir::Up, &conn);
}

/// Reads `src` until it ends, stamping every chunk with its arrival.
fn reader(mut src: TcpStream, tx: &Sender<Msg>, dir: Dir, conn: &Conn) {
    let stats = &conn.shared.stats;
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let arrived = Instant::now();
                stats.read(dir, n);
                if dir == Dir::Up && conn.server_spoke.swap(false, Ordering::Relaxed) {
                    stats.turns.fetch_add(1, Ordering::Relaxed);
                }
                if tx.send(Msg::Data(buf[..n].to_vec(), arrived)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = tx.send(Msg::End);
}

/// Writes every chunk to `dst` at its deadline, with every later one already due.
fn writer(mut dst: TcpStream, rx: &Receiver<Msg>, dir: Dir, conn: &Conn) {
    let shared = &conn.shared;
    let half = shared.rtt / 2;
    let mut next = None;
    let mut out = Vec::new();
    let mut arrivals = Vec::new();
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => rx.recv().unwrap_or(Msg::End),
        };
        let Msg::Data(data, arrived) = msg else {
            let _ = dst.shutdown(Shutdown::Write);
            return;
        };
        if !sleep_until(arrived + half, shared) {
            return;
        }
        let Some(held) = shared.pass(arrived) else {
            return;
        };
        out.clear();
        out.extend_from_slice(&data);
        arrivals.clear();
        arrivals.push(arrived);
        let now = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(Msg::Data(more, at)) if at + half <= now => {
                    out.extend_from_slice(&more);
                    arrivals.push(at);
                }
                Ok(m) => {
                    next = Some(m);
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    next = Some(Msg::End);
                    break;
                }
            }
        }
        // Before the write: the client may answer before `write_all` returns.
        if dir == Dir::Down {
            conn.server_spoke.store(true, Ordering::Relaxed);
        }
        if dst.write_all(&out).is_err() {
            conn.close();
            return;
        }
        let written = Instant::now();
        if !held {
            shared
                .stats
                .delays(dir, arrivals.iter().map(|a| written.duration_since(*a)));
        }
    }
}

/// Sleeps until `due` within a few tens of microseconds, without burning CPU: the
/// benchmark shares its cores with opsd and PostgreSQL, so a proxy that spun would slow
/// what it measures. Every proxy thread runs with a timer slack of 1 ns ([`precise`]),
/// and a sleep still wakes ~30 µs late on the VM this was written on (the hypervisor's
/// timers; ~75 µs with Linux's default 50 µs slack). So it sleeps until that much
/// before `due` (learned: [`Shared::overshoot_ns`], an average over recent sleeps) and
/// then counts as arrived: early or late by the sleep's jitter. Returns false if the
/// proxy stops meanwhile.
fn sleep_until(due: Instant, shared: &Shared) -> bool {
    loop {
        let now = Instant::now();
        let left = due.saturating_duration_since(now);
        let overshoot = Duration::from_nanos(shared.overshoot_ns.load(Ordering::Relaxed));
        if left <= overshoot {
            return true;
        }
        if shared.stopping() {
            return false;
        }
        let nap = (left - overshoot).min(NAP);
        std::thread::sleep(nap);
        let late = now.elapsed().saturating_sub(nap);
        let late = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        // An exponential average over ~16 sleeps.
        let est = shared.overshoot_ns.load(Ordering::Relaxed);
        let next = (est * 15 + late.min(MAX_OVERSHOOT_NS)) / 16;
        shared.overshoot_ns.store(next, Ordering::Relaxed);
    }
}

/// Asks the kernel to wake this thread on time: Linux lets a sleep end up to the
/// thread's timer slack late (50 µs by default) to batch wake-ups, which is most of the
/// precision the proxy needs. Best effort: without it the proxy is only less precise.
pub fn precise() {
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
}
