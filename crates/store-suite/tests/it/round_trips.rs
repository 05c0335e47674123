//! A write batch costs the same few round trips to PostgreSQL whatever its size: the
//! store talks to the database through the delaying proxy (`opsd-proxy`), which counts
//! the client's request flights ("turns"). One write and two hundred concurrent ones
//! must both stay within a handful of turns per batch; a writer that ran a batch's
//! statements one after another would make hundreds. SQLite has no round trips: skipped.

use std::sync::Arc;
use std::time::Duration;

use opsd_domain::{Kind, OpType};
use opsd_proxy::{Proxy, ProxyConfig};
use opsd_store_open::{DatabaseUrl, StoreConfig};
use opsd_store_suite::{TestBackend, TestDb, backend};
use tokio::task::JoinSet;

use crate::support::new_op;

/// The most round trips one batch may take (the bound; the writer needs two).
const PER_BATCH: u64 = 6;

/// The test database's URL, pointed at `proxy` instead of the server.
fn through(url: &DatabaseUrl, proxy: &Proxy) -> DatabaseUrl {
    let config = url.config();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("the test database is not on TCP: {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    url.expose()
        .replace(&format!("{host}:{port}"), &proxy.addr().to_string())
        .parse()
        .expect("the rewritten URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_costs_a_few_round_trips_whatever_its_size() {
    if backend() != TestBackend::Postgres {
        eprintln!("skipped: SQLite has no round trips");
        return;
    }
    let db = TestDb::new().await;
    let StoreConfig::Postgres { url, .. } = &db.config else {
        unreachable!("PostgreSQL only")
    };
    // Migrated directly, so that the migration's statements are not counted.
    drop(db.open().await);
    let upstream = {
        let config = url.config();
        let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() else {
            panic!("the test database is not on TCP")
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        tokio::net::lookup_host((host.as_str(), port))
            .await
            .expect("resolve the test database")
            .next()
            .expect("an address")
    };
    // A round trip long enough that a flight is never split by the scheduler (every
    // statement of a flight leaves long before the first answer can come back).
    let proxy = Proxy::start(ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        upstream,
        rtt: Duration::from_millis(20),
        control: None,
    })
    .expect("start the proxy");
    let config = StoreConfig::Postgres {
        url: Box::new(through(url, &proxy)),
        pool_size: 2,
    };
    let store = opsd_store_open::open(&config)
        .await
        .expect("open through the proxy");
    // Every pooled connection has prepared the batch's statements.
    for i in 0..4 {
        store
            .create(new_op("p", Kind::Vm, OpType::Create, &format!("warm-{i}")))
            .await
            .expect("warm-up write");
    }

    // The fewest turns of three lone writes: the store's other tasks (the listener
    // connecting, the pump's timer, the pool opening a connection) also talk through the
    // proxy now and then, and one of them landing in a write's window is not the batch's
    // cost. A writer whose batches take more turns takes them every time.
    let mut one = u64::MAX;
    for i in 0..3 {
        proxy.reset_stats();
        store
            .create(new_op("p", Kind::Vm, OpType::Create, &format!("one-{i}")))
            .await
            .expect("one write");
        one = one.min(proxy.stats().turns);
    }
    assert!(
        one <= PER_BATCH,
        "one write took {one} round trips (at most {PER_BATCH})"
    );

    proxy.reset_stats();
    let mut tasks = JoinSet::new();
    for i in 0..200 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            store
                .create(new_op("p", Kind::Vm, OpType::Create, &format!("vm-{i}")))
                .await
                .expect("a write of the burst")
        });
    }
    tasks.join_all().await;
    let burst = proxy.stats().turns;
    // The writer takes whatever is queued when it is free: the burst is the first
    // writes alone, then the rest together; three batches at the very most.
    assert!(
        burst <= 3 * PER_BATCH,
        "200 concurrent writes took {burst} round trips (one write: {one})"
    );
    eprintln!("round trips: one write {one}, 200 concurrent writes {burst}");
}
