//! Cursor paging over HTTP: forward and back through whole lists under several sorts,
//! stability while operations arrive, and the 400s for cursors used out of their list.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestClient, TestServer, ids, new_op, unique_project};

/// `GET /v1/operations` with `base` + `limit` (+ `cursor`), checked for success.
async fn page(c: &TestClient, base: &[(&str, &str)], limit: usize, cursor: Option<&str>) -> Value {
    let limit = limit.to_string();
    let mut q = base.to_vec();
    q.push(("limit", &limit));
    if let Some(cursor) = cursor {
        q.push(("cursor", cursor));
    }
    c.list(&q, StatusCode::OK).await.json()
}

fn cursor<'a>(page: &'a Value, which: &str) -> Option<&'a str> {
    let v = &page["pagination"][which];
    assert!(v.is_string() || v.is_null(), "{which} in {page}");
    v.as_str()
}

/// Every page from the first, following `next_cursor`.
async fn walk_forward(c: &TestClient, base: &[(&str, &str)], limit: usize) -> Vec<Value> {
    let mut pages = vec![page(c, base, limit, None).await];
    assert_eq!(cursor(&pages[0], "previous_cursor"), None, "first page");
    while let Some(next) = cursor(pages.last().unwrap(), "next_cursor").map(str::to_owned) {
        assert!(pages.len() < 100, "runaway paging");
        pages.push(page(c, base, limit, Some(&next)).await);
        assert!(cursor(pages.last().unwrap(), "previous_cursor").is_some());
    }
    pages
}

/// Every page before `last`, nearest first, following `previous_cursor`.
async fn walk_back(
    c: &TestClient,
    base: &[(&str, &str)],
    limit: usize,
    last: &Value,
) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut at = last.clone();
    while let Some(prev) = cursor(&at, "previous_cursor").map(str::to_owned) {
        assert!(pages.len() < 100, "runaway paging");
        at = page(c, base, limit, Some(&prev)).await;
        assert!(cursor(&at, "next_cursor").is_some());
        pages.push(at.clone());
    }
    pages
}

/// Creates `n` operations in `project` concurrently (so that some share a timestamp and
/// the `seq` tie-breaker is exercised), then moves every third one so that `updated_at`
/// differs from `created_at`.
async fn seed(c: &TestClient, project: &str, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (c, body) = (c.clone(), new_op(project));
        set.spawn(async move { c.create(&body).await });
    }
    for (i, op) in set.join_all().await.iter().enumerate() {
        if i % 3 == 0 {
            c.patch(op, &json!({"status": "running"})).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_forward_and_back_visits_every_operation_once() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    seed(c, &p, 25).await;
    for sort in [
        None,
        Some("created_at:asc"),
        Some("updated_at:desc,created_at:asc"),
    ] {
        let mut base = vec![("project_id", p.as_str())];
        base.extend(sort.map(|s| ("sort", s)));
        let everything = ids(&page(c, &base, 100, None).await);
        assert_eq!(everything.len(), 25);

        let forward = walk_forward(c, &base, 7).await;
        let sizes: Vec<_> = forward.iter().map(|p| ids(p).len()).collect();
        assert_eq!(sizes, [7, 7, 7, 4], "sort={sort:?}");
        let seen: Vec<String> = forward.iter().flat_map(ids).collect();
        assert_eq!(seen, everything, "sort={sort:?}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
        for p in &forward {
            assert_eq!(p["pagination"]["total_count"], 25);
        }
        assert_eq!(cursor(forward.last().unwrap(), "next_cursor"), None);

        let back = walk_back(c, &base, 7, forward.last().unwrap()).await;
        let back_ids: Vec<_> = back.iter().map(ids).collect();
        let expected: Vec<_> = forward[..3].iter().rev().map(ids).collect();
        assert_eq!(back_ids, expected, "sort={sort:?}");
        assert_eq!(cursor(back.last().unwrap(), "previous_cursor"), None);
    }
}

#[tokio::test]
async fn cursors_stay_stable_while_operations_arrive() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let base = [("project_id", p.as_str())];
    for _ in 0..10 {
        c.create(&new_op(&p)).await;
    }
    let everything = ids(&page(c, &base, 100, None).await);
    let first = page(c, &base, 4, None).await;
    let mut newer = Vec::new();
    for _ in 0..3 {
        newer.push(crate::support::id_of(&c.create(&new_op(&p)).await).to_owned());
    }
    newer.reverse();

    let second = page(c, &base, 4, cursor(&first, "next_cursor")).await;
    assert_eq!(ids(&second), everything[4..8]);
    assert_eq!(second["pagination"]["total_count"], 13);
    let third = page(c, &base, 4, cursor(&second, "next_cursor")).await;
    assert_eq!(ids(&third), everything[8..]);
    assert_eq!(cursor(&third, "next_cursor"), None);

    // Back from the second page: the first page as it was, now with newer ones before it.
    let back = page(c, &base, 4, cursor(&second, "previous_cursor")).await;
    assert_eq!(ids(&back), everything[..4]);
    let newest = page(c, &base, 4, cursor(&back, "previous_cursor")).await;
    assert_eq!(ids(&newest), newer);
    assert_eq!(cursor(&newest, "previous_cursor"), None);
}

#[tokio::test]
async fn a_cursor_is_valid_only_for_its_own_filters_and_sort() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    for _ in 0..3 {
        c.create(&new_op(&p)).await;
    }
    let base = [("project_id", p.as_str()), ("kind", "vm")];
    let next = page(c, &base, 1, None).await["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    // Only the page size may change from page to page.
    let resized = page(c, &base, 5, Some(&next)).await;
    assert_eq!(ids(&resized).len(), 2);

    let other = unique_project();
    let misuses: [&[(&str, &str)]; 6] = [
        &[("project_id", &p)],
        &[("project_id", &p), ("kind", "volume")],
        &[("project_id", &p), ("kind", "vm"), ("status", "pending")],
        &[
            ("project_id", &p),
            ("kind", "vm"),
            ("sort", "created_at:asc"),
        ],
        &[
            ("project_id", &p),
            ("kind", "vm"),
            ("sort", "updated_at:desc"),
        ],
        &[("project_id", &other), ("kind", "vm")],
    ];
    for query in misuses {
        let mut q = query.to_vec();
        q.push(("cursor", &next));
        c.list(&q, StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some("cursor"));
    }
}

#[tokio::test]
async fn garbage_cursors_are_400() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    c.create(&new_op(&p)).await;
    let json_junk = URL_SAFE_NO_PAD.encode(br#"{"d": "n", "k": [1], "s": 1}"#);
    for junk in ["garbage", "!!!", "e30", "bm90IGpzb24", json_junk.as_str()] {
        c.list(
            &[("project_id", &p), ("cursor", junk)],
            StatusCode::BAD_REQUEST,
        )
        .await
        .assert_error("invalid_argument", Some("cursor"));
    }
    // An empty cursor is the first page, as SDKs send `cursor=` for it.
    let first = c
        .list(&[("project_id", &p), ("cursor", "")], StatusCode::OK)
        .await
        .json();
    assert_eq!(ids(&first).len(), 1);
}

#[tokio::test]
async fn a_tampered_cursor_is_400_not_500() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    for _ in 0..2 {
        c.create(&new_op(&p)).await;
    }
    let base = [("project_id", p.as_str())];
    let next = page(c, &base, 1, None).await["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut wire: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&next).unwrap()).unwrap();
    for keys in [json!([]), json!([1, 2, 3])] {
        wire["k"] = keys;
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap());
        c.list(
            &[("project_id", &p), ("cursor", &forged)],
            StatusCode::BAD_REQUEST,
        )
        .await
        .assert_error("invalid_argument", Some("cursor"));
    }
}
