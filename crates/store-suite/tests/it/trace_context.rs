//! The creating request's trace context is kept with the operation: compactly (25 bytes
//! and the tracestate's text), read back exactly, absent when there was none, and never
//! part of a retry's identity.

use opsd_domain::{Kind, OpType, Patch, Status, TraceContext};

use crate::support::{new_op, open_store, resize};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creation_context_is_kept_and_survives_every_change() {
    let (_dir, store) = open_store().await;
    let cx = TraceContext::parse(PARENT, Some("vendor=a,other=b")).unwrap();
    let mut new = new_op("p", Kind::Vm, OpType::Create, "vm-1");
    new.trace_context = Some(cx.clone());
    let created = store.create(new).await.unwrap().operation;
    assert_eq!(created.trace_context.as_ref(), Some(&cx));
    let id = created.id;
    let moved = store
        .update(
            id,
            Patch {
                status: Some(Status::Running),
                ..Patch::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(moved.trace_context.as_ref(), Some(&cx), "updates keep it");
    let read = store.get(id).await.unwrap().unwrap();
    assert_eq!(read.trace_context, Some(cx));

    let plain = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-2"))
        .await
        .unwrap()
        .operation;
    assert_eq!(
        store.get(plain.id).await.unwrap().unwrap().trace_context,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_from_another_trace_is_the_same_request() {
    let (_dir, store) = open_store().await;
    let mut first = resize("p", "req-1", "20Gi");
    first.trace_context = TraceContext::parse(PARENT, None);
    let first = store.create(first).await.unwrap();
    let mut again = resize("p", "req-1", "20Gi");
    again.trace_context = TraceContext::parse(
        "00-11111111111111111111111111111111-2222222222222222-01",
        None,
    );
    let again = store.create(again).await.unwrap();
    assert!(!again.created, "a replay, not a conflict");
    assert_eq!(again.operation.trace_context, first.operation.trace_context);
}
