//! Workers on several replicas: claims never hand one operation out twice, a lease is
//! the database's, not a process's (heartbeat and finish through any replica), and the
//! lease of a worker whose replica died expires through the others.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::cluster::{Cluster, call, create, get, postgres_or_skip};

const PENDING: usize = 500;

/// One worker on replica `r`: claims until there is nothing left, heartbeats each
/// operation through the next replica and finishes it through the one after; returns
/// the ids it claimed.
async fn worker(client: reqwest::Client, bases: Vec<String>, r: usize, w: usize) -> Vec<String> {
    let mut claimed = Vec::new();
    let name = format!("r{r}-w{w}");
    loop {
        let resp = client
            .post(format!("{}/v1/operations/claim", bases[r]))
            .json(&json!({"project_id": "claims", "kinds": ["vm"], "lease_seconds": 60, "worker": name}))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::NO_CONTENT {
            return claimed;
        }
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "claim: {}",
            resp.text().await.unwrap()
        );
        let claim: Value = resp.json().await.unwrap();
        let id = claim["operation"]["id"].as_str().unwrap().to_owned();
        let token = claim["lease_token"].as_str().unwrap();
        assert_eq!(claim["operation"]["status"], "running");

        let beat = call(
            client
                .post(format!(
                    "{}/v1/operations/{id}/heartbeat",
                    bases[(r + 1) % 3]
                ))
                .json(&json!({"lease_token": token, "progress": 50})),
            StatusCode::OK,
        )
        .await;
        assert_eq!(beat["operation"]["progress"], 50);
        let done = call(
            client
                .patch(format!("{}/v1/operations/{id}", bases[(r + 2) % 3]))
                .json(&json!({"status": "done", "lease_token": token})),
            StatusCode::OK,
        )
        .await;
        assert_eq!(done["status"], "done");
        claimed.push(id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_on_three_replicas_take_each_operation_exactly_once() {
    if !postgres_or_skip("claims_on_three_replicas_take_each_operation_exactly_once") {
        return;
    }
    let cluster = Cluster::start(3, &[]);
    let client = cluster.client();

    // 500 pending operations, created through all three replicas.
    let gate = Arc::new(Semaphore::new(8));
    let creates: Vec<_> = (0..PENDING)
        .map(|i| {
            let (client, base, gate) = (client.clone(), cluster.bases[i % 3].clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                create(&client, &base, "claims", &format!("vm-{i}")).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut created = HashSet::new();
    for c in creates {
        created.insert(c.await.unwrap());
    }

    let started = Instant::now();
    let workers: Vec<_> = (0..3)
        .flat_map(|r| (0..8).map(move |w| (r, w)))
        .map(|(r, w)| tokio::spawn(worker(client.clone(), cluster.bases.clone(), r, w)))
        .collect();
    let mut claimed = Vec::new();
    for w in workers {
        claimed.extend(
            tokio::time::timeout(Duration::from_secs(90), w)
                .await
                .expect("workers finish")
                .unwrap(),
        );
    }
    eprintln!(
        "24 workers on 3 replicas finished {PENDING} operations in {:?}",
        started.elapsed()
    );
    let unique: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        claimed.len(),
        PENDING,
        "claims handed out: {}",
        claimed.len()
    );
    assert_eq!(unique, created, "every operation claimed exactly once");

    let list = call(
        client.get(format!(
            "{}/v1/operations?project_id=claims&status=done&limit=1",
            cluster.base(1)
        )),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["pagination"]["total_count"], PENDING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_of_a_killed_replica_expires_to_unknown_through_the_others() {
    if !postgres_or_skip("the_lease_of_a_killed_replica_expires_to_unknown_through_the_others") {
        return;
    }
    let mut cluster = Cluster::start(3, &[]);
    let client = cluster.client();
    let op = create(&client, cluster.base(1), "leases", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();

    let claim = call(
        client
            .post(format!("{}/v1/operations/claim", cluster.base(0)))
            .json(&json!({"project_id": "leases", "lease_seconds": 2, "worker": "doomed"})),
        StatusCode::OK,
    )
    .await;
    let claimed_at = Instant::now();
    assert_eq!(claim["operation"]["id"], id.as_str());
    let token = claim["lease_token"].as_str().unwrap().to_owned();
    cluster.kill_9(0);

    // The lease runs out 2 s after the claim; a reaper on B or C turns it unknown
    // within about a second after that.
    let bound = Duration::from_secs(2 + 3);
    let expired = loop {
        let b = get(&client, cluster.base(1), &id).await;
        if b["status"] == "unknown" {
            break b;
        }
        assert_eq!(b["status"], "running");
        assert!(
            claimed_at.elapsed() < bound,
            "the lease of the killed replica's worker did not expire within {bound:?}: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "lease of 2 s expired {:?} after the claim",
        claimed_at.elapsed()
    );
    let message = expired["status_message"].as_str().unwrap();
    assert!(
        message.starts_with("worker \"doomed\" stopped heartbeating"),
        "{message}"
    );
    // Every replica sees the same single expiry.
    assert_eq!(get(&client, cluster.base(2), &id).await, expired);
    let events = call(
        client.get(format!("{}/v1/operations/{id}/events", cluster.base(2))),
        StatusCode::OK,
    )
    .await;
    let unknowns = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "unknown")
        .count();
    assert_eq!(unknowns, 1, "expired once, not once per replica: {events}");
    // The dead worker's token is no longer honoured anywhere.
    let refused = call(
        client
            .post(format!("{}/v1/operations/{id}/heartbeat", cluster.base(2)))
            .json(&json!({"lease_token": token})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["code"], "lease_not_held", "{refused}");
}
