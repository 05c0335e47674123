//! The watch stream: every change once, in order, across a server restart.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use opsd_client::{OperationPatch, Status, WatchEvent, WatchQuery};

use crate::support::{Server, create};

async fn next_change(
    stream: &mut (impl Stream<Item = opsd_client::Result<WatchEvent>> + Unpin),
) -> (u64, uuid::Uuid, u64) {
    let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a change within 20 s")
        .expect("the stream goes on")
        .expect("no error");
    match event {
        WatchEvent::Changed { seq, operation } => (seq, operation.id, operation.version),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn watch_resumes_across_a_restart_without_loss_or_repeat() {
    let mut server = Server::start().await;
    let client = server.client();
    let mut stream = Box::pin(client.watch(WatchQuery::new("proj-watch").after(0)));
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.push(create(&client, "proj-watch", &format!("vm-{i}")).await.id);
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_change(&mut stream).await);
    }

    // The server goes away (its streams end) and comes back on the same port and file;
    // changes made right after the restart happen before the stream has reconnected.
    server.stop().await;
    server.restart().await;
    let client = server.client();
    for i in 3..6 {
        let op = create(&client, "proj-watch", &format!("vm-{i}")).await;
        expected.push(op.id);
    }
    let patch = OperationPatch {
        status: Some(Status::Running),
        ..OperationPatch::default()
    };
    client.update(expected[0], &patch, None).await.unwrap();
    for _ in 0..4 {
        seen.push(next_change(&mut stream).await);
    }

    let seqs: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in commit order, no repeat: {seqs:?}"
    );
    let created: Vec<uuid::Uuid> = seen.iter().filter(|s| s.2 == 1).map(|s| s.1).collect();
    assert_eq!(created, expected, "every creation once");
    assert_eq!(seen[6], (seen[6].0, expected[0], 2), "then the update");
    let unique: HashSet<_> = seen.iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(unique.len(), 7);

    // Nothing else is pending on the stream.
    let extra = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(extra.is_err(), "no duplicate after the resume: {extra:?}");
}

#[tokio::test]
async fn a_watch_refused_for_good_ends_with_the_error() {
    let server = Server::start().await;
    let client = server.client();
    let mut stream = Box::pin(client.watch(WatchQuery::new("bad project")));
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.api().unwrap().field.as_deref(), Some("project_id"));
    assert!(stream.next().await.is_none());
}
