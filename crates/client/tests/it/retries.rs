//! Retries: what is retried, how long the SDK waits, and what it never retries.

use std::time::{Duration, Instant};

use opsd_client::{ClaimRequest, Client, Error, RetryPolicy};
use opsd_server::{Config, RateLimit};

use crate::stub::{Reply, Stub};
use crate::support::{Server, create};

fn quick(base: &str) -> Client {
    quick_with(base, Duration::from_secs(30))
}

fn quick_with(base: &str, timeout: Duration) -> Client {
    Client::builder(base)
        .api_key("opsd_test")
        .timeout(timeout)
        .retry_policy(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        })
        .build()
        .unwrap()
}

fn id() -> uuid::Uuid {
    "01a22df0-fbb5-74e6-b5b7-dd3eb0d31457".parse().unwrap()
}

#[tokio::test]
async fn a_server_shedding_load_is_retried() {
    let stub = Stub::start(vec![
        Reply::error(503, "overloaded").header("retry-after", "0"),
        Reply::error(503, "overloaded"),
        Reply::operation(),
    ])
    .await;
    let op = quick(&stub.base).get(id()).await.unwrap();
    assert_eq!(op.id, id());
    assert_eq!(stub.hits(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let stub = Stub::start(vec![
        Reply::error(429, "rate_limited").header("retry-after", "1"),
        Reply::operation(),
    ])
    .await;
    let started = Instant::now();
    quick(&stub.base).get(id()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.hits(), 2);
}

#[tokio::test]
async fn x_should_retry_false_is_never_retried() {
    let stub = Stub::start(vec![
        Reply::error(409, "invalid_transition").header("x-should-retry", "false"),
        Reply::operation(),
    ])
    .await;
    let e = quick(&stub.base).cancel(id()).await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_transition"));
    assert_eq!(e.api().unwrap().request_id.as_deref(), Some("stub-1"));
    assert_eq!(stub.hits(), 1);

    // Even a status that is otherwise retried.
    let stub = Stub::start(vec![
        Reply::error(503, "overloaded").header("x-should-retry", "false"),
        Reply::operation(),
    ])
    .await;
    assert_eq!(
        quick(&stub.base).get(id()).await.unwrap_err().status(),
        Some(503)
    );
    assert_eq!(stub.hits(), 1);
}

#[tokio::test]
async fn retries_stop_after_the_limit() {
    let stub = Stub::start(vec![Reply::error(503, "overloaded")]).await;
    let e = quick(&stub.base).get(id()).await.unwrap_err();
    assert_eq!(e.code(), Some("overloaded"));
    assert_eq!(stub.hits(), 4, "the first attempt and three retries");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_a_claim_is_not_repeated() {
    let stub = Stub::start(vec![Reply::operation().delay(Duration::from_secs(3))]).await;
    let client = quick_with(&stub.base, Duration::from_millis(200));
    let started = Instant::now();
    let e = client.get(id()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert_eq!(stub.hits(), 4, "a GET is safe to repeat");
    assert!(started.elapsed() < Duration::from_secs(3));

    let stub = Stub::start(vec![Reply::operation().delay(Duration::from_secs(3))]).await;
    let client = quick_with(&stub.base, Duration::from_millis(200));
    let request = ClaimRequest {
        project_id: None,
        kinds: vec![],
        statuses: vec![],
        lease_seconds: 10,
        worker: "w".into(),
    };
    assert!(matches!(
        client.claim(&request).await,
        Err(Error::Timeout(_))
    ));
    assert_eq!(
        stub.hits(),
        1,
        "a claim that may have been taken is not sent again"
    );
}

#[tokio::test]
async fn a_server_that_is_not_up_yet_is_waited_for() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::builder(format!("http://{addr}"))
        .api_key("opsd_test")
        .retry_policy(RetryPolicy {
            max_retries: 8,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Stub::start_on(listener, vec![Reply::operation()])
    });
    client.get(id()).await.unwrap();
    assert_eq!(starter.await.unwrap().hits(), 1);
}

#[tokio::test]
async fn the_real_servers_rate_limit_is_waited_out() {
    let server = Server::start_with(Config {
        rate_limit: Some(RateLimit {
            per_second: 2.0,
            burst: 1.0,
        }),
        ..Config::default()
    })
    .await;
    let client = server.client();
    let op = create(&client, "proj-rl", "vm-1").await;
    let started = Instant::now();
    for _ in 0..3 {
        // Each call beyond the burst gets 429 + Retry-After and succeeds on a retry.
        assert_eq!(client.get(op.id).await.unwrap().id, op.id);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
