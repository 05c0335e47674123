//! Google filters are translated into the store's query, and must select exactly what the
//! same filter selects when evaluated in memory over the Google view of every operation.
//! Random filter texts (both syntaxes) run against one store holding operations that cover
//! every field's set/unset/empty cases and every status, including `unknown`.

use opsd_domain::google_filter;
use opsd_domain::google_view;
use opsd_domain::{
    ErrorItem, Kind, ListFilter, OpType, Operation, OperationError, Patch, Sort, SortField,
    SortTerm, Status,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use time::format_description::well_known::Rfc3339;

use crate::support::{FakeClock, expected, ids, new_op, open_store_with_clock, page};

const PROJECT: &str = "gf";

/// Creates 24 operations whose fields vary along every axis a filter can test.
async fn seed(store: &dyn opsd_store::Store, clock: &FakeClock) -> Vec<Operation> {
    let types = [
        OpType::Create,
        OpType::Update,
        OpType::Delete,
        OpType::Restart,
    ];
    let mut ops = Vec::new();
    for i in 0..24usize {
        let mut new = new_op(PROJECT, Kind::Vm, types[i % 4], &format!("r{i}"));
        new.user = [None, Some("alice"), Some("bob"), Some("")][i % 4].map(String::from);
        new.zone = [None, Some("z1"), Some("z2")][i % 3].map(String::from);
        new.region = (i % 5 == 0).then(|| "eu".to_owned());
        new.description = (i % 2 == 0).then(|| format!("d{}", i % 3));
        new.request_id = (i % 3 == 0).then(|| format!("req-{i}"));
        new.target_link = (i % 4 == 1).then(|| format!("https://x/vms/r{i}"));
        let created = store.create(new).await.unwrap().operation;
        clock.tick(i64::try_from(i % 2).unwrap());
        let patches: Vec<Patch> = match i % 6 {
            0 => vec![],
            1 => vec![to(Status::Running, Some(30), Some("copying"))],
            2 => vec![
                to(Status::Running, Some(50), None),
                to(Status::Done, None, None),
            ],
            3 => vec![
                to(Status::Running, None, None),
                Patch {
                    status: Some(Status::Failed),
                    error: Some(OperationError {
                        errors: vec![ErrorItem {
                            code: "E".into(),
                            message: "m".into(),
                            location: None,
                        }],
                    }),
                    http_error_status_code: Some([403, 500][i % 2]),
                    ..Patch::default()
                },
            ],
            4 => vec![to(Status::Unknown, None, None)],
            _ => vec![to(Status::Unknown, None, Some("lost worker"))],
        };
        let mut op = created;
        for p in patches {
            clock.tick(1);
            op = store.update(op.id, p, None).await.unwrap();
        }
        ops.push(op);
    }
    ops
}

fn to(status: Status, progress: Option<u8>, message: Option<&str>) -> Patch {
    Patch {
        status: Some(status),
        progress,
        status_message: message.map(String::from),
        ..Patch::default()
    }
}

/// A random AIP-160 restriction, with values drawn from what the seeded data holds.
fn restriction(times: Vec<String>) -> impl Strategy<Value = String> {
    let ops = prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">=", ":"]);
    let string_fields = prop::sample::select(vec![
        ("status", vec!["PENDING", "RUNNING", "DONE"]),
        (
            "operationType",
            vec!["insert", "update", "delete", "restart"],
        ),
        ("user", vec!["alice", "bob", "\"\"", "carol"]),
        ("zone", vec!["z1", "z2"]),
        ("region", vec!["eu", "us"]),
        ("description", vec!["d0", "d1", "d2"]),
        (
            "statusMessage",
            vec!["copying", "\"UNKNOWN: lost worker\"", "UNKNOWN"],
        ),
        ("clientOperationId", vec!["req-0", "req-3", "req-9"]),
        (
            "targetLink",
            vec!["\"https://x/vms/r1\"", "https://x/vms/r5"],
        ),
        ("name", vec!["operation-0", "operation-z"]),
    ]);
    let int_fields = prop::sample::select(vec![
        ("progress", vec!["0", "30", "50", "100"]),
        ("httpErrorStatusCode", vec!["403", "500", "404"]),
        ("id", vec!["1", "5", "12", "24"]),
    ]);
    let time_fields = prop::sample::select(vec!["insertTime", "startTime", "endTime"]);
    let present = prop::sample::select(vec![
        "user",
        "zone",
        "region",
        "description",
        "statusMessage",
        "startTime",
        "endTime",
        "httpErrorStatusCode",
        "clientOperationId",
        "targetLink",
    ]);
    prop_oneof![
        (string_fields, ops.clone(), any::<prop::sample::Index>())
            .prop_map(|((f, vs), op, i)| format!("{f} {op} {}", i.get(&vs))),
        (int_fields, ops.clone(), any::<prop::sample::Index>())
            .prop_map(|((f, vs), op, i)| format!("{f} {op} {}", i.get(&vs))),
        (time_fields, ops, prop::sample::select(times))
            .prop_map(|(f, op, t)| format!("{f} {op} {t}")),
        present.prop_map(|f| format!("{f}:*")),
    ]
}

/// A random AIP-160 filter: restrictions combined with AND, OR, NOT, `-` and juxtaposition.
fn aip_filter(times: Vec<String>) -> impl Strategy<Value = String> {
    restriction(times).prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) ({b})")),
            inner.clone().prop_map(|a| format!("NOT ({a})")),
            inner.prop_map(|a| format!("-({a})")),
        ]
    })
}

/// A random regular-expression filter: one to three `(field eq|ne pattern)` terms.
fn regex_filter() -> impl Strategy<Value = String> {
    let term = (
        prop::sample::select(vec![
            "name",
            "status",
            "user",
            "zone",
            "statusMessage",
            "id",
            "progress",
            "operationType",
        ]),
        prop::sample::select(vec!["eq", "ne"]),
        prop::sample::select(vec![
            "'.*'",
            "'operation-.*'",
            "'DONE|PENDING'",
            "'a.*'",
            "'z[12]'",
            "'UNKNOWN: .*'",
            "'1.*'",
            "'[0-9]'",
            "''",
            "'in.*'",
        ]),
    )
        .prop_map(|(f, op, p)| format!("({f} {op} {p})"));
    prop::collection::vec(term, 1..=3).prop_map(|terms| terms.join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_filter_equals_in_memory_filter() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let ops = seed(&*store, &clock).await;
    assert!(ops.iter().any(|o| o.status == Status::Unknown));
    let times: Vec<String> = ops
        .iter()
        .flat_map(|o| [Some(o.created_at), o.started_at, o.ended_at])
        .flatten()
        .map(|t| t.format(&Rfc3339).unwrap())
        .collect();
    let sorts = [
        Sort::new(vec![SortTerm {
            field: SortField::Name,
            descending: false,
        }])
        .unwrap(),
        Sort::new(vec![SortTerm {
            field: SortField::CreatedAt,
            descending: true,
        }])
        .unwrap(),
    ];
    let strategy = prop_oneof![aip_filter(times), regex_filter()];
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        ..Config::default()
    });
    let (nonempty, partial) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |text| {
            let expr = google_filter::parse(&text)
                .unwrap_or_else(|e| panic!("generated filter {text:?} does not parse: {e}"))
                .map(google_view::truncate_times);
            let filter = ListFilter {
                project_id: PROJECT.into(),
                expr,
                ..ListFilter::default()
            };
            for sort in &sorts {
                let want = expected(&ops, &filter, sort);
                let got = handle.block_on(page(&*store, &filter, sort, None, 100));
                prop_assert_eq!(ids(&got.items), ids(&want), "filter {:?}", text);
                prop_assert_eq!(got.total_count, want.len() as u64, "filter {:?}", text);
                if !want.is_empty() {
                    nonempty.set(nonempty.get() + 1);
                }
                if !want.is_empty() && want.len() < ops.len() {
                    partial.set(partial.get() + 1);
                }
            }
            Ok(())
        })
    });
    result.unwrap();
    // The generator must produce filters that select something, and not everything.
    let (partial, nonempty) = (partial.get(), nonempty.get());
    assert!(
        partial > 200,
        "only {partial} of 800 checks selected a proper subset ({nonempty} non-empty)"
    );
}
