//! Slow and idle clients, and floods of bad keys: what a hostile client can do without
//! ever completing an authenticated request must not starve real clients.

use std::time::{Duration, Instant};

use opsd_server::{Config, RateLimit};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestServer, new_op, unique_project};

/// True when the server closed `stream` (EOF or reset) within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {} // a 408 or similar before closing is fine
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_thousands_of_idle_connections_are_cut_and_real_clients_are_served() {
    let limit = rlimit::increase_nofile_limit(16_384).unwrap();
    let idle_count = if limit >= 4_096 { 1_500 } else { 200 };
    let server = TestServer::start_with(Config {
        header_read_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let c = &server.client;
    let addr = c.base().trim_start_matches("http://").to_owned();
    let p = unique_project();
    c.create(&new_op(&p)).await;

    // Idle sockets that never send a byte, and slowloris clients that start a request
    // and then send one more header byte every 200 ms, never finishing the head.
    let mut idle = Vec::new();
    for _ in 0..idle_count {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut slow = Vec::new();
    for i in 0..50 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            format!("GET /v1/operations?project_id={p} HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ")
                .as_bytes(),
        )
        .await
        .unwrap();
        slow.push(s);
    }
    let dribble = tokio::spawn(async move {
        for _ in 0..15 {
            for s in slow.iter_mut() {
                let _ = s.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slow
    });

    // Meanwhile real clients are served promptly.
    let started = Instant::now();
    for _ in 0..50 {
        let t = Instant::now();
        c.list(&[("project_id", &p)], StatusCode::OK).await;
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a real request took {:?}",
            t.elapsed()
        );
    }
    eprintln!(
        "{idle_count} idle + 50 slowloris connections open: 50 real lists in {:?}",
        started.elapsed()
    );

    // Every idle and slowloris connection is closed by the server within the timeout
    // (1 s here) plus slack, although the slowloris clients never stopped sending.
    let mut slow = dribble.await.unwrap();
    for s in slow.iter_mut() {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "a slowloris connection stayed open"
        );
    }
    // One deadline for all of them (they were opened together).
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut open = 0;
    for s in idle.iter_mut() {
        if !closed_within(s, deadline.saturating_duration_since(Instant::now())).await {
            open += 1;
        }
    }
    assert_eq!(
        open, 0,
        "{open} of {idle_count} idle connections stayed open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_keys_is_limited_per_address_and_valid_keys_keep_working() {
    let server = TestServer::start_with(Config {
        auth_failure_limit: Some(RateLimit {
            per_second: 20.0,
            burst: 20.0,
        }),
        ..Config::default()
    })
    .await;
    let c = &server.client;
    let p = unique_project();
    c.create(&new_op(&p)).await;
    let base = c.base().to_owned();
    let flood_for = Duration::from_secs(2);
    let mut flooders = Vec::new();
    for _ in 0..2 {
        let base = base.clone();
        flooders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut unauthorized, mut limited) = (0u32, 0u32);
            let end = Instant::now() + flood_for;
            while Instant::now() < end {
                let r = http
                    .get(format!("{base}/v1/api_keys"))
                    .bearer_auth("opsd_not-a-key")
                    .send()
                    .await
                    .unwrap();
                match r.status() {
                    StatusCode::UNAUTHORIZED => unauthorized += 1,
                    StatusCode::TOO_MANY_REQUESTS => {
                        assert!(r.headers().contains_key("retry-after"));
                        limited += 1;
                    }
                    other => panic!("a bad key got {other}"),
                }
            }
            (unauthorized, limited)
        }));
    }
    // A valid key from the same address keeps working during the flood.
    let end = Instant::now() + flood_for;
    let mut served = 0;
    while Instant::now() < end {
        c.list(&[("project_id", &p)], StatusCode::OK).await;
        served += 1;
    }
    let (mut unauthorized, mut limited) = (0, 0);
    for f in flooders {
        let (u, l) = f.await.unwrap();
        unauthorized += u;
        limited += l;
    }
    eprintln!(
        "flood: {unauthorized} answered 401 (key looked up), {limited} answered 429; \
         {served} valid requests served meanwhile"
    );
    // 20 at once plus 20/s for about 2 s, with slack for timing.
    assert!(unauthorized <= 70, "{unauthorized} bad keys were looked up");
    assert!(
        limited > unauthorized,
        "the flood was not limited: {limited} 429s"
    );
    assert!(served > 0);
}
