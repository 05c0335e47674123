//! An acknowledged write survives `kill -9`: writers hammer the real binary, it is
//! killed mid-stream, and after a restart on the same data directory every write that
//! got a 2xx answer is there, at least at the acknowledged version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::process::Opsd;

/// Writes acknowledged so far: operation id → highest acknowledged version and status.
type Acked = Arc<Mutex<HashMap<String, (u64, String)>>>;

async fn writer(base: String, client: reqwest::Client, worker: usize, acked: Acked) {
    for i in 0.. {
        let body = json!({
            "project_id": "durability",
            "kind": "volume",
            "type": "update",
            "resource_id": format!("vol-{worker}-{i}"),
            "details": {"changes": {"size_gb": {"from": i, "to": i + 1}}},
        });
        let Ok(resp) = client
            .post(format!("{base}/v1/operations"))
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        if resp.status() != 201 {
            return;
        }
        let Ok(op) = resp.json::<Value>().await else {
            return;
        };
        let id = op["id"].as_str().unwrap().to_owned();
        acked
            .lock()
            .unwrap()
            .insert(id.clone(), (1, "pending".into()));
        // Move every other operation on, so that updates are tested as well as inserts.
        if i % 2 == 0 {
            let Ok(resp) = client
                .patch(format!("{base}/v1/operations/{id}"))
                .json(&json!({"status": "running", "progress": 50}))
                .send()
                .await
            else {
                return;
            };
            if resp.status() != 200 {
                return;
            }
            acked.lock().unwrap().insert(id, (2, "running".into()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = Opsd::start(dir.path());
    let acked: Acked = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(writer(opsd.base.clone(), opsd.client(), w, acked.clone())))
        .collect();

    // Let a few hundred writes through, then pull the plug while others are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    opsd.kill_9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} writes were acknowledged before the deadline",
        acked.len()
    );

    let opsd = Opsd::start(dir.path());
    let client = opsd.client();
    for (id, (version, status)) in &acked {
        let resp = client
            .get(format!("{}/v1/operations/{id}", opsd.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "acknowledged operation {id} is missing after kill -9"
        );
        let op: Value = resp.json().await.unwrap();
        let stored_version = op["version"].as_u64().unwrap();
        assert!(
            stored_version >= *version,
            "operation {id} acknowledged at version {version} ({status}) came back at {stored_version}"
        );
        if stored_version == *version {
            assert_eq!(op["status"], status.as_str());
        }
    }
    // The store is still consistent: the list agrees with what GET found.
    let list: Value = client
        .get(format!(
            "{}/v1/operations?project_id=durability&limit=1",
            opsd.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["pagination"]["total_count"].as_u64().unwrap() >= acked.len() as u64);
}
