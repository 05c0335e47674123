//! `/v1/admin`: the streamed backup and the read-only switch.

use opsd_domain::Role;
use opsd_server::http::Config;
use opsd_store_suite::{TestBackend, backend};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestClient, TestServer, new_op, unique_project};

#[tokio::test]
async fn an_admin_downloads_a_verified_backup_and_others_cannot() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let op = c.create(&new_op(&p)).await;

    let reader = TestClient::mint_key(&server.store, Role::Reader, &["*"]).await;
    let as_reader = c.with_key(Some(&reader));
    as_reader
        .send(
            as_reader.request(Method::POST, "/v1/admin/backup"),
            StatusCode::FORBIDDEN,
        )
        .await
        .assert_error("permission_denied", None);

    let response = c
        .request(Method::POST, "/v1/admin/backup")
        .send()
        .await
        .unwrap();
    if backend() == TestBackend::Postgres {
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "not_supported_for_backend", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("pg_dump"),
            "{body}"
        );
        return;
    }
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/vnd.sqlite3");
    let sha = header("x-opsd-backup-sha256");
    assert_eq!(header("x-opsd-backup-operations"), "1");
    let bytes = response.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    std::fs::write(&file, &bytes).unwrap();
    let summary = opsd_store_sqlite::snapshot::inspect(&file).unwrap();
    assert_eq!((summary.operations, summary.events), (1, 1));
    assert_eq!(summary.sha256, sha);
    assert_eq!(summary.keys, 2, "the test admin and the reader");

    // Restored, it serves the operation.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let restored =
        opsd_store_sqlite::snapshot::restore(&file, &data.join("opsd.db"), false).unwrap();
    assert_ne!(restored.epoch, server.store.epoch());
    let store = opsd_store_sqlite::SqliteStore::open(&data.join("opsd.db")).unwrap();
    let id = op["id"].as_str().unwrap().parse().unwrap();
    let got = opsd_store::Store::get(&store, id).await.unwrap().unwrap();
    assert_eq!(got.resource_id, op["resource_id"].as_str().unwrap());
    // The server removed its temporary copy.
    let leftovers = server
        .db()
        .dir
        .path()
        .read_dir()
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".opsd-backup-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn a_read_only_server_refuses_writes_with_a_clear_code_until_switched_back() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let op = c.create(&new_op(&p)).await;
    let on = c
        .send(
            c.request(Method::PUT, "/v1/admin/read_only")
                .json(&json!({"read_only": true})),
            StatusCode::OK,
        )
        .await
        .json();
    assert_eq!(on, json!({"read_only": true}));

    let refused = c
        .post_resp(
            "/v1/operations",
            &new_op(&p),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
    let body = refused.assert_error("read_only", None);
    assert!(
        body["message"].as_str().unwrap().contains("read-only"),
        "{body}"
    );
    assert_eq!(refused.header("retry-after"), "5");
    let path = format!("/v1/operations/{}", op["id"].as_str().unwrap());
    c.patch_resp(
        &path,
        &json!({"status": "running"}),
        &[],
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await
    .assert_error("read_only", None);
    // Reads go on.
    c.get(
        &format!("/v1/operations/{}", op["id"].as_str().unwrap()),
        StatusCode::OK,
    )
    .await;
    let state = c.get("/v1/admin/read_only", StatusCode::OK).await;
    assert_eq!(state, json!({"read_only": true}));

    c.send(
        c.request(Method::PUT, "/v1/admin/read_only")
            .json(&json!({"read_only": false})),
        StatusCode::OK,
    )
    .await;
    c.create(&new_op(&p)).await;
}

#[tokio::test]
async fn a_server_started_read_only_refuses_writes() {
    let server = TestServer::start_with(Config {
        read_only: true,
        ..Config::default()
    })
    .await;
    server
        .client
        .post_resp(
            "/v1/operations",
            &new_op(&unique_project()),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await
        .assert_error("read_only", None);
}
