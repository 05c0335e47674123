//! Graceful shutdown: a stop requested while creates are in flight lets them finish, and
//! every create that was acknowledged with a 2xx is in the database afterwards.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::support::{TestServer, id_of, new_op, unique_project};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_a_shutdown_in_flight() {
    let mut server = TestServer::start().await;
    let project = unique_project();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(64);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (c, body, first) = (server.client.clone(), new_op(&project), first_tx.clone());
        set.spawn(async move {
            let sent = c
                .request(Method::POST, "/v1/operations")
                .json(&body)
                .send()
                .await;
            // Refused or cut connections are expected once the server stops accepting.
            let response = sent.ok()?;
            let status = response.status();
            let body: Value = response.json().await.ok()?;
            let _ = first.send(()).await;
            status.is_success().then(|| id_of(&body).to_owned())
        });
    }
    drop(first_tx);
    // Stop as soon as the first answer arrives, while the rest are still in flight.
    first_rx.recv().await;
    server.trigger_shutdown();
    server.join(Duration::from_secs(30)).await;

    let acknowledged: Vec<String> = set.join_all().await.into_iter().flatten().collect();
    assert!(!acknowledged.is_empty());

    let store = server.db().open().await;
    for id in &acknowledged {
        let id = uuid::Uuid::parse_str(id).unwrap();
        let op = store.get(id).await.unwrap();
        assert!(op.is_some(), "acknowledged operation {id} was lost");
    }
}
