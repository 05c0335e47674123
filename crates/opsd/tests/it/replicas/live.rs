//! Wait and watch across replicas: a change committed through one process reaches the
//! waiters and streams of every other.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cluster::{Cluster, await_metric, call, create, patch, postgres_or_skip};
use super::sse::{Watch, assert_stream, change_of, covers};

/// How long a woken waiter may take after the write's acknowledgement.
const WAKE_BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_returns_within_1s_of_a_write_through_another_replica() {
    if !postgres_or_skip("a_wait_returns_within_1s_of_a_write_through_another_replica") {
        return;
    }
    let cluster = Cluster::start(3, &[]);
    let client = cluster.client();
    // Every direction once: A waits while B writes, B while C writes, C while A writes.
    for (waiter, writer) in [(0, 1), (1, 2), (2, 0)] {
        let wbase = cluster.base(writer).to_owned();
        let op = create(&client, &wbase, "waits", &format!("vm-{waiter}")).await;
        let id = op["id"].as_str().unwrap().to_owned();
        patch(&client, &wbase, &id, json!({"status": "running"})).await;

        let url = format!(
            "{}/v1/operations/{id}/wait?timeout=10s",
            cluster.base(waiter)
        );
        let wait = tokio::spawn({
            let req = client.get(url);
            async move {
                let body = call(req, StatusCode::OK).await;
                (Instant::now(), body)
            }
        });
        // The waiter is registered once the gauge counts it; it then reads the operation
        // (still running) and sleeps. Give that read time to finish, so that only the
        // wake-up can tell it about the write below.
        await_metric(&client, cluster.base(waiter), "opsd_waiters", 1.0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        patch(&client, &wbase, &id, json!({"status": "done"})).await;
        let acked = Instant::now();
        let (returned, body) = tokio::time::timeout(Duration::from_secs(15), wait)
            .await
            .expect("the wait answers within its timeout")
            .unwrap();
        let late = returned.saturating_duration_since(acked);
        assert_eq!(
            body["status"], "done",
            "the wait on replica {waiter} timed out instead of seeing the write through \
             replica {writer}: {body}"
        );
        assert!(
            late <= WAKE_BOUND,
            "the wait on replica {waiter} returned {late:?} after the write through \
             replica {writer} was acknowledged"
        );
    }
}

/// gRPC's `WaitOperation` on one replica is woken by a write through another, as the
/// REST wait is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_wait_is_woken_by_a_write_through_another_replica() {
    use opsd_grpc_proto::google::longrunning::WaitOperationRequest;
    use opsd_grpc_proto::google::longrunning::operations_client::OperationsClient;
    if !postgres_or_skip("a_grpc_wait_is_woken_by_a_write_through_another_replica") {
        return;
    }
    let cluster = Cluster::start(2, &[]);
    let client = cluster.client();
    let writer = cluster.base(1).to_owned();
    let op = create(&client, &writer, "grpc-waits", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();
    patch(&client, &writer, &id, json!({"status": "running"})).await;

    let channel = tonic::transport::Endpoint::from_shared(cluster.base(0).to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(WaitOperationRequest {
        name: format!("projects/grpc-waits/operations/{id}"),
        timeout: Some(prost_types::Duration {
            seconds: 20,
            nanos: 0,
        }),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", cluster.admin_key).parse().unwrap(),
    );
    let wait = tokio::spawn(async move {
        let answer = OperationsClient::new(channel).wait_operation(request).await;
        (Instant::now(), answer)
    });
    await_metric(&client, cluster.base(0), "opsd_waiters", 1.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    patch(&client, &writer, &id, json!({"status": "done"})).await;
    let acked = Instant::now();
    let (returned, answer) = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the wait answers within its timeout")
        .unwrap();
    let op = answer.unwrap().into_inner();
    assert!(
        op.done,
        "the wait timed out instead of seeing the other replica's write"
    );
    // Generous: the machine is shared; the 20 s timeout is what a missed wake-up costs.
    assert!(returned.saturating_duration_since(acked) < Duration::from_secs(10));
}

/// Writes `ops` operations through `base`, each created, moved to running, then done;
/// returns every acknowledged change with its answer.
async fn write_changes(
    client: reqwest::Client,
    base: String,
    project: &'static str,
    tag: &'static str,
    ops: usize,
) -> HashMap<(String, u64), Value> {
    let mut acked = HashMap::new();
    for i in 0..ops {
        let op = create(&client, &base, project, &format!("{tag}-{i}")).await;
        let id = op["id"].as_str().unwrap().to_owned();
        acked.insert(change_of(&op), op);
        for body in [
            json!({"status": "running", "progress": 40}),
            json!({"status": "done"}),
        ] {
            let op = patch(&client, &base, &id, body).await;
            acked.insert(change_of(&op), op);
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_every_change_of_every_replica_once_in_order_and_resumes_elsewhere() {
    if !postgres_or_skip("a_watch_sees_every_change_of_every_replica_once_in_order") {
        return;
    }
    let cluster = Cluster::start(3, &[]);
    let client = cluster.client();
    let key = &cluster.admin_key;
    let idle = Duration::from_secs(5);

    // The stream on C is live once it delivers a change written through C itself.
    let mut on_c = Watch::open(key, cluster.base(2), "watched", None)
        .await
        .unwrap();
    let marker = create(&client, cluster.base(2), "watched", "marker").await;
    let mut acked = HashMap::from([(change_of(&marker), marker)]);
    let mut events = Vec::new();
    on_c.read_until(&mut events, idle, |e| !e.is_empty()).await;
    assert_eq!(events.len(), 1, "the watch on C missed a write through C");

    // Writers through A and B at once; the stream on C is dropped while they write.
    let writers = [
        tokio::spawn(write_changes(
            client.clone(),
            cluster.base(0).to_owned(),
            "watched",
            "a",
            20,
        )),
        tokio::spawn(write_changes(
            client.clone(),
            cluster.base(1).to_owned(),
            "watched",
            "b",
            20,
        )),
    ];
    on_c.read_until(&mut events, idle, |e| e.len() > 40).await;
    assert!(
        events.len() > 40,
        "the watch on C received {} of the first 40 changes written through A and B",
        events.len() - 1
    );
    drop(on_c);
    let last = events.last().unwrap().seq;
    for w in writers {
        acked.extend(w.await.unwrap());
    }

    // Resume on A: the changes committed since (through A and B, while no stream was
    // open) come from the history, then the stream carries on live with more writes
    // through B and C.
    let mut on_a = Watch::open(key, cluster.base(0), "watched", Some(last))
        .await
        .unwrap();
    let later = tokio::spawn(write_changes(
        client.clone(),
        cluster.base(1).to_owned(),
        "watched",
        "b-late",
        5,
    ));
    let later_c = write_changes(
        client.clone(),
        cluster.base(2).to_owned(),
        "watched",
        "c-late",
        5,
    )
    .await;
    acked.extend(later_c);
    acked.extend(later.await.unwrap());
    on_a.read_until(&mut events, idle, |e| covers(e, &acked))
        .await;
    // Anything beyond the acknowledged changes would be a duplicate or a phantom: give it
    // a moment to show up.
    on_a.read_until(&mut events, Duration::from_millis(300), |_| false)
        .await;
    assert_eq!(acked.len(), 1 + 3 * (20 + 20 + 5 + 5));
    assert_stream(&events, &acked, true);
}
