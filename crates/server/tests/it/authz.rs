//! The authorization matrix (SECURITY.md): every endpoint × {no key, revoked key, reader,
//! producer, admin} × {own project, other project}, each cell with its exact status.
//! The scoped keys may touch only project `own`; operations exist in both projects.

use opsd_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestClient, TestServer};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    NoKey,
    Revoked,
    Reader,
    Producer,
    Admin,
}

const WHO: [Who; 5] = [
    Who::NoKey,
    Who::Revoked,
    Who::Reader,
    Who::Producer,
    Who::Admin,
];

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Get,
    List,
    Create,
    Patch,
    Events,
    GoogleGet,
    GoogleList,
    KeysList,
    KeysCreate,
    KeysRevoke,
    Backup,
    ReadOnlyGet,
    OpenApi,
    Docs,
    Metrics,
    Wait,
    GoogleWait,
    Watch,
    Claim,
    Heartbeat,
    Cancel,
    Health,
    Stats,
    Projects,
}

const ENDPOINTS: [Endpoint; 24] = [
    Endpoint::Get,
    Endpoint::List,
    Endpoint::Create,
    Endpoint::Patch,
    Endpoint::Events,
    Endpoint::GoogleGet,
    Endpoint::GoogleList,
    Endpoint::KeysList,
    Endpoint::KeysCreate,
    Endpoint::KeysRevoke,
    Endpoint::Backup,
    Endpoint::ReadOnlyGet,
    Endpoint::OpenApi,
    Endpoint::Docs,
    Endpoint::Metrics,
    Endpoint::Wait,
    Endpoint::GoogleWait,
    Endpoint::Watch,
    Endpoint::Claim,
    Endpoint::Heartbeat,
    Endpoint::Cancel,
    Endpoint::Health,
    Endpoint::Stats,
    Endpoint::Projects,
];

/// The status each cell must answer.
fn expected(endpoint: Endpoint, who: Who, own: bool) -> StatusCode {
    use Endpoint::*;
    if matches!(endpoint, Health) {
        return StatusCode::OK;
    }
    // The docs page sends a browser without a session to the console's sign-in form.
    if matches!(endpoint, Docs) && matches!(who, Who::NoKey | Who::Revoked) {
        return StatusCode::SEE_OTHER;
    }
    let role = match who {
        Who::NoKey | Who::Revoked => return StatusCode::UNAUTHORIZED,
        Who::Reader => Role::Reader,
        Who::Producer => Role::Producer,
        Who::Admin => Role::Admin,
    };
    let (needed, hidden_is_404, ok) = match endpoint {
        Get | Events | GoogleGet | Wait | GoogleWait => (Role::Reader, true, StatusCode::OK),
        List | GoogleList | Watch | Stats => (Role::Reader, false, StatusCode::OK),
        Claim => (Role::Producer, false, StatusCode::OK),
        Heartbeat => (Role::Producer, true, StatusCode::OK),
        Create => (Role::Producer, false, StatusCode::CREATED),
        Patch | Cancel => (Role::Producer, true, StatusCode::OK),
        KeysList => {
            return if role == Role::Admin {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
        }
        KeysCreate => {
            return if role == Role::Admin {
                StatusCode::CREATED
            } else {
                StatusCode::FORBIDDEN
            };
        }
        KeysRevoke => {
            return if role == Role::Admin {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::FORBIDDEN
            };
        }
        Backup | ReadOnlyGet if role != Role::Admin => return StatusCode::FORBIDDEN,
        // PostgreSQL is backed up with its own tools.
        Backup if opsd_store_suite::backend() == opsd_store_suite::TestBackend::Postgres => {
            return StatusCode::CONFLICT;
        }
        Backup | ReadOnlyGet => return StatusCode::OK,
        OpenApi | Docs | Metrics | Health | Projects => return StatusCode::OK,
    };
    if role < needed {
        StatusCode::FORBIDDEN
    } else if own {
        ok
    } else if hidden_is_404 {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::FORBIDDEN
    }
}

/// An operation of `project` claimed by the admin: its id and lease token.
async fn leased_op(admin: &TestClient, project: &str) -> (String, String) {
    create_op(admin, project).await;
    let claim = json!({"project_id": project, "lease_seconds": 300, "worker": "w"});
    let claimed = admin
        .post_json("/v1/operations/claim", &claim, StatusCode::OK)
        .await;
    (
        claimed["operation"]["id"].as_str().unwrap().to_owned(),
        claimed["lease_token"].as_str().unwrap().to_owned(),
    )
}

async fn create_op(admin: &TestClient, project: &str) -> Value {
    let body =
        json!({"project_id": project, "kind": "vm", "type": "create", "resource_id": "vm-1"});
    admin
        .post_json("/v1/operations", &body, StatusCode::CREATED)
        .await
}

/// Sends the cell's request and returns the status.
async fn call(
    server: &TestServer,
    client: &TestClient,
    endpoint: Endpoint,
    project: &str,
) -> StatusCode {
    use Endpoint::*;
    let admin = &server.client;
    let (method, path, body): (Method, String, Option<Value>) = match endpoint {
        Get => (
            Method::GET,
            format!(
                "/v1/operations/{}",
                create_op(admin, project).await["id"].as_str().unwrap()
            ),
            None,
        ),
        Events => (
            Method::GET,
            format!(
                "/v1/operations/{}/events",
                create_op(admin, project).await["id"].as_str().unwrap()
            ),
            None,
        ),
        Patch => (
            Method::PATCH,
            format!(
                "/v1/operations/{}",
                create_op(admin, project).await["id"].as_str().unwrap()
            ),
            Some(json!({"status": "running"})),
        ),
        List => (
            Method::GET,
            format!("/v1/operations?project_id={project}"),
            None,
        ),
        Create => (
            Method::POST,
            "/v1/operations".into(),
            Some(
                json!({"project_id": project, "kind": "vm", "type": "create", "resource_id": "vm-2"}),
            ),
        ),
        GoogleGet => {
            let id = create_op(admin, project).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (
                Method::GET,
                format!(
                    "/deploymentmanager/v2/projects/{project}/global/operations/operation-{id}"
                ),
                None,
            )
        }
        GoogleList => (
            Method::GET,
            format!("/deploymentmanager/v2/projects/{project}/global/operations"),
            None,
        ),
        KeysList => (Method::GET, "/v1/api_keys".into(), None),
        KeysCreate => (
            Method::POST,
            "/v1/api_keys".into(),
            Some(json!({"name": "minted", "role": "reader", "projects": [project]})),
        ),
        KeysRevoke => {
            let minted = admin
                .post_json(
                    "/v1/api_keys",
                    &json!({"name": "doomed", "role": "reader", "projects": ["*"]}),
                    StatusCode::CREATED,
                )
                .await;
            (
                Method::DELETE,
                format!("/v1/api_keys/{}", minted["id"].as_str().unwrap()),
                None,
            )
        }
        Backup => (Method::POST, "/v1/admin/backup".into(), None),
        ReadOnlyGet => (Method::GET, "/v1/admin/read_only".into(), None),
        OpenApi => (Method::GET, "/openapi.json".into(), None),
        Docs => (Method::GET, "/docs".into(), None),
        Metrics => (Method::GET, "/metrics".into(), None),
        Wait => {
            let id = create_op(admin, project).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (
                Method::GET,
                format!("/v1/operations/{id}/wait?timeout=0s"),
                None,
            )
        }
        GoogleWait => {
            let id = create_op(admin, project).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (
                Method::POST,
                format!(
                    "/deploymentmanager/v2/projects/{project}/global/operations/operation-{id}/wait?timeout=0s"
                ),
                None,
            )
        }
        // Only the status line matters: the stream itself is dropped unread.
        Watch => (
            Method::GET,
            format!("/v1/operations/watch?project_id={project}"),
            None,
        ),
        Claim => {
            create_op(admin, project).await;
            (
                Method::POST,
                "/v1/operations/claim".into(),
                Some(json!({"project_id": project, "lease_seconds": 60, "worker": "w"})),
            )
        }
        Heartbeat => {
            let (id, token) = leased_op(admin, project).await;
            (
                Method::POST,
                format!("/v1/operations/{id}/heartbeat"),
                Some(json!({"lease_token": token})),
            )
        }
        Cancel => (
            Method::POST,
            format!(
                "/v1/operations/{}/cancel",
                create_op(admin, project).await["id"].as_str().unwrap()
            ),
            None,
        ),
        Health => (Method::GET, "/healthz".into(), None),
        Stats => (
            Method::GET,
            format!("/v1/operations/stats?project_id={project}"),
            None,
        ),
        Projects => (Method::GET, "/v1/projects".into(), None),
    };
    let mut request = client.request(method, &path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "401 without WWW-Authenticate: Bearer"
        );
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_for_every_key_and_project() {
    let server = TestServer::start().await;
    let store = &server.store;
    let revoked_secret = TestClient::mint_key(store, Role::Admin, &["*"]).await;
    let keys = server.client.get("/v1/api_keys", StatusCode::OK).await;
    let revoked_id = keys["items"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .client
        .send(
            server
                .client
                .request(Method::DELETE, &format!("/v1/api_keys/{revoked_id}")),
            StatusCode::NO_CONTENT,
        )
        .await;

    let mut clients = Vec::new();
    for who in WHO {
        let secret = match who {
            Who::NoKey => None,
            Who::Revoked => Some(revoked_secret.clone()),
            Who::Reader => Some(TestClient::mint_key(store, Role::Reader, &["own"]).await),
            Who::Producer => Some(TestClient::mint_key(store, Role::Producer, &["own"]).await),
            Who::Admin => Some(TestClient::mint_key(store, Role::Admin, &["own"]).await),
        };
        clients.push((who, server.client.with_key(secret.as_deref())));
    }

    let mut failures = Vec::new();
    for endpoint in ENDPOINTS {
        for (who, client) in &clients {
            for (project, own) in [("own", true), ("other", false)] {
                let want = expected(endpoint, *who, own);
                let got = call(&server, client, endpoint, project).await;
                if got != want {
                    failures.push(format!(
                        "{endpoint:?} as {who:?} in {project}: expected {want}, got {got}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_writes_record_the_key_name_as_user() {
    let server = TestServer::start().await;
    let secret = TestClient::mint_key(&server.store, Role::Producer, &["own"]).await;
    let producer = server.client.with_key(Some(&secret));
    let body = json!({"project_id": "own", "kind": "vm", "type": "create", "resource_id": "vm-1"});
    let op = producer
        .post_json("/v1/operations", &body, StatusCode::CREATED)
        .await;
    assert_eq!(op["user"], "test-producer");
    let body = json!({"project_id": "own", "kind": "vm", "type": "create", "resource_id": "vm-1", "user": "alice@example.com"});
    let op = producer
        .post_json("/v1/operations", &body, StatusCode::CREATED)
        .await;
    assert_eq!(op["user"], "alice@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_the_api_is_immediate() {
    let server = TestServer::start().await;
    let created = server
        .client
        .post_json(
            "/v1/api_keys",
            &json!({"name": "short-lived", "role": "reader", "projects": ["*"]}),
            StatusCode::CREATED,
        )
        .await;
    let secret = created["key_secret"].as_str().unwrap();
    assert!(secret.starts_with("opsd_"));
    let reader = server.client.with_key(Some(secret));
    reader
        .get_query("/v1/operations", &[("project_id", "p")], StatusCode::OK)
        .await;
    let listed = server.client.get("/v1/api_keys", StatusCode::OK).await;
    assert!(
        !listed.to_string().contains(secret),
        "listing shows a secret"
    );
    let id = created["id"].as_str().unwrap();
    server
        .client
        .send(
            server
                .client
                .request(Method::DELETE, &format!("/v1/api_keys/{id}")),
            StatusCode::NO_CONTENT,
        )
        .await;
    let resp = reader
        .get_query(
            "/v1/operations",
            &[("project_id", "p")],
            StatusCode::UNAUTHORIZED,
        )
        .await;
    resp.assert_error("unauthenticated", None);
}
