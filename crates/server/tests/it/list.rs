//! `GET /v1/operations`: the required project, each filter, sort orders, limits and the
//! query-string errors. Cursors have their own module (`pagination`).

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::offset;

use crate::support::{
    TestClient, TestServer, id_of, ids, new_op, op_path, time_of, unique_project,
};

/// Extra query parameters of one case.
type Query<'a> = &'a [(&'a str, &'a str)];

/// Ids of the whole list (one page of up to 100) for `query`, plus its `total_count`.
async fn list_ids(c: &TestClient, query: &[(&str, &str)]) -> (Vec<String>, u64) {
    let mut q = query.to_vec();
    q.push(("limit", "100"));
    let page = c.list(&q, StatusCode::OK).await.json();
    (
        ids(&page),
        page["pagination"]["total_count"].as_u64().unwrap(),
    )
}

fn id_list(ops: &[&Value]) -> Vec<String> {
    ops.iter().map(|op| id_of(op).to_owned()).collect()
}

async fn list_fails_on(c: &TestClient, query: &[(&str, &str)], field: &str) -> Value {
    c.list(query, StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some(field))
}

#[tokio::test]
async fn project_id_is_required_and_checked() {
    let server = TestServer::start().await;
    let c = &server.client;
    list_fails_on(c, &[], "project_id").await;
    list_fails_on(c, &[("kind", "vm")], "project_id").await;
    list_fails_on(c, &[("project_id", "")], "project_id").await;
    list_fails_on(c, &[("project_id", "a b")], "project_id").await;
}

#[tokio::test]
async fn a_list_holds_only_its_project() {
    let server = TestServer::start().await;
    let c = &server.client;
    let (p, other) = (unique_project(), unique_project());
    let a = c.create(&new_op(&p)).await;
    c.create(&new_op(&other)).await;
    let b = c.create(&new_op(&p)).await;
    assert_eq!(
        list_ids(c, &[("project_id", &p)]).await,
        (id_list(&[&b, &a]), 2)
    );
    let (empty, total) = list_ids(c, &[("project_id", &unique_project())]).await;
    assert!(empty.is_empty() && total == 0);
}

#[tokio::test]
async fn each_filter_narrows_the_list() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let make = |kind: &str, op_type: &str, resource: &str| json!({"project_id": p, "kind": kind, "type": op_type, "resource_id": resource});
    let a = c.create(&make("vm", "create", "vm-1")).await;
    let b = c.create(&make("volume", "delete", "vol-1")).await;
    let cc = c.create(&make("vm", "update", "vm-2")).await;
    let d = c
        .create(&make("nks_node", "restart", "pools/p1:node-1"))
        .await;
    c.patch(&b, &json!({"status": "running"})).await;
    c.patch(&cc, &json!({"status": "done"})).await;

    let cases: [(Query, Vec<&Value>); 9] = [
        (&[("kind", "vm")], vec![&cc, &a]),
        (&[("kind", "nks_node")], vec![&d]),
        (&[("status", "running")], vec![&b]),
        (&[("status", "pending")], vec![&d, &a]),
        (&[("status", "failed")], vec![]),
        (&[("type", "delete")], vec![&b]),
        (&[("resource_id", "vm-2")], vec![&cc]),
        (&[("resource_id", "pools/p1:node-1")], vec![&d]),
        (
            &[("kind", "vm"), ("status", "pending"), ("type", "create")],
            vec![&a],
        ),
    ];
    for (filters, expected) in cases {
        let mut q = vec![("project_id", p.as_str())];
        q.extend_from_slice(filters);
        let got = list_ids(c, &q).await;
        assert_eq!(
            got,
            (id_list(&expected), expected.len() as u64),
            "{filters:?}"
        );
    }
}

#[tokio::test]
async fn filter_values_are_checked() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let p = p.as_str();
    for (name, value) in [
        ("kind", "tractor"),
        ("status", "DONE"),
        ("type", "explode"),
        ("resource_id", "vm 1"),
        ("created_at_min", "yesterday"),
        ("created_at_max", "2026-01-01"),
    ] {
        list_fails_on(c, &[("project_id", p), (name, value)], name).await;
    }
    let reversed = [
        ("project_id", p),
        ("created_at_min", "2026-01-02T00:00:00Z"),
        ("created_at_max", "2026-01-01T00:00:00Z"),
    ];
    list_fails_on(c, &reversed, "created_at_min").await;
}

#[tokio::test]
async fn created_at_bounds_are_inclusive() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let a = c.create(&new_op(&p)).await;
    let b = c.create(&new_op(&p)).await;
    let cc = c.create(&new_op(&p)).await;
    let at_b = b["created_at"].as_str().unwrap();
    let q = |extra: &[(&'static str, &str)]| {
        let mut q = vec![("project_id", p.clone())];
        q.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        q
    };
    let run = |q: Vec<(&'static str, String)>| async move {
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        list_ids(c, &q).await.0
    };
    assert_eq!(
        run(q(&[("created_at_min", at_b)])).await,
        id_list(&[&cc, &b])
    );
    assert_eq!(
        run(q(&[("created_at_max", at_b)])).await,
        id_list(&[&b, &a])
    );
    let both = q(&[("created_at_min", at_b), ("created_at_max", at_b)]);
    assert_eq!(run(both).await, id_list(&[&b]));
    // The same instant written with another offset is the same bound.
    let shifted = time_of(&b, "created_at")
        .to_offset(offset!(+2))
        .format(&Rfc3339)
        .unwrap();
    assert_eq!(
        run(q(&[("created_at_min", &shifted)])).await,
        id_list(&[&cc, &b])
    );
}

/// `seq` of each operation, read from its first event: the tie-breaker of every sort.
async fn seqs(c: &TestClient, ops: &[Value]) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for op in ops {
        let events = c
            .get(&format!("{}/events", op_path(op)), StatusCode::OK)
            .await;
        out.insert(
            id_of(op).to_owned(),
            events["items"][0]["seq"].as_u64().unwrap(),
        );
    }
    out
}

/// The order a `field:dir,…` sort must produce, computed from the returned bodies.
fn expected_order(ops: &[Value], seq: &HashMap<String, u64>, sort: &str) -> Vec<String> {
    let terms: Vec<(&str, bool)> = sort
        .split(',')
        .map(|t| {
            let (f, d) = t.split_once(':').unwrap();
            (f, d == "desc")
        })
        .collect();
    let mut sorted: Vec<&Value> = ops.iter().collect();
    sorted.sort_by(|a, b| {
        for (field, desc) in &terms {
            let o = time_of(a, field).cmp(&time_of(b, field));
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        let o = seq[id_of(a)].cmp(&seq[id_of(b)]);
        if terms.last().unwrap().1 {
            o.reverse()
        } else {
            o
        }
    });
    id_list(&sorted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorts_follow_their_terms_with_seq_breaking_ties() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    // Concurrent creates tend to share a commit, hence a created_at: the ties matter.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (c, body) = (c.clone(), new_op(&p));
        set.spawn(async move { c.create(&body).await });
    }
    let mut ops = set.join_all().await;
    for i in [1, 4] {
        ops[i] = c.patch(&ops[i], &json!({"status": "running"})).await;
    }
    let seq = seqs(c, &ops).await;

    let (default, _) = list_ids(c, &[("project_id", &p)]).await;
    assert_eq!(default, expected_order(&ops, &seq, "created_at:desc"));
    for sort in [
        "created_at:desc",
        "created_at:asc",
        "updated_at:desc",
        "updated_at:asc",
        "updated_at:desc,created_at:asc",
        "created_at:asc,updated_at:desc",
    ] {
        let (got, total) = list_ids(c, &[("project_id", &p), ("sort", sort)]).await;
        assert_eq!(got, expected_order(&ops, &seq, sort), "sort={sort}");
        assert_eq!(total, 6);
    }
}

#[tokio::test]
async fn bad_sorts_are_400() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    for sort in [
        "",
        "status:asc",
        "created_at:up",
        "created_at:asc,created_at:desc",
        "id:asc",
    ] {
        list_fails_on(c, &[("project_id", &p), ("sort", sort)], "sort").await;
    }
}

#[tokio::test]
async fn limit_defaults_to_10_and_accepts_1_to_100() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    for _ in 0..12 {
        c.create(&new_op(&p)).await;
    }
    let page = c.list(&[("project_id", &p)], StatusCode::OK).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    assert_eq!(page["pagination"]["total_count"], 12);
    assert!(page["pagination"]["next_cursor"].is_string());
    for (limit, len) in [("1", 1), ("12", 12), ("100", 12)] {
        let page = c
            .list(&[("project_id", &p), ("limit", limit)], StatusCode::OK)
            .await
            .json();
        assert_eq!(
            page["items"].as_array().unwrap().len(),
            len,
            "limit={limit}"
        );
        assert_eq!(page["pagination"]["total_count"], 12);
    }
    for limit in ["0", "101", "abc", "-1", "", "1.5"] {
        list_fails_on(c, &[("project_id", &p), ("limit", limit)], "limit").await;
    }
}

#[tokio::test]
async fn unknown_and_repeated_parameters_are_400() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let body = list_fails_on(c, &[("project_id", &p), ("page", "2")], "page").await;
    assert!(
        body["message"].as_str().unwrap().contains("unknown"),
        "{body}"
    );
    list_fails_on(c, &[("project_id", &p), ("project_id", &p)], "project_id").await;
    list_fails_on(
        c,
        &[("project_id", &p), ("kind", "vm"), ("kind", "vm")],
        "kind",
    )
    .await;
}

#[tokio::test]
async fn created_at_bounds_are_exact_below_a_microsecond() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let a = c.create(&new_op(&p)).await;
    let b = c.create(&new_op(&p)).await;
    let cc = c.create(&new_op(&p)).await;
    let nanos = |op: &Value, delta: i64| {
        let t = time_of(op, "created_at") + time::Duration::nanoseconds(delta);
        t.format(&Rfc3339).unwrap()
    };
    let (after_b, before_b) = (nanos(&b, 1), nanos(&b, -1));
    let q = [
        ("project_id", p.as_str()),
        ("created_at_max", before_b.as_str()),
    ];
    assert_eq!(list_ids(c, &q).await.0, id_list(&[&a]));
    let q = [
        ("project_id", p.as_str()),
        ("created_at_min", after_b.as_str()),
    ];
    assert_eq!(list_ids(c, &q).await.0, id_list(&[&cc]));
}
