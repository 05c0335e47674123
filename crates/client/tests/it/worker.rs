//! The Worker against the real server: exactly once under concurrency, leases kept by
//! heartbeats, a dead worker's operation expiring to unknown, cancellation, shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsd_client::{CANCELLED, Client, Kind, Status, Task, TaskError, Worker, WorkerConfig};
use tokio::sync::Notify;

use crate::support::{Server, create};

fn config(project: &str) -> WorkerConfig {
    WorkerConfig::new(project)
        .kinds([Kind::Vm])
        .idle_poll(Duration::from_millis(50))
        .name("test-worker")
}

/// Polls until `id` has `status` (for `unknown`, which no wait announces).
async fn until_status(client: &Client, id: uuid::Uuid, status: Status, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let op = client.get(id).await.unwrap();
        if op.status == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} after {within:?}",
            op.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_operation_is_handled_exactly_once_with_concurrency_4() {
    const N: usize = 24;
    let server = Server::start().await;
    let client = server.client();
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(create(&client, "proj-once", &format!("vm-{i}")).await.id);
    }
    let handled = Arc::new(Mutex::new(HashMap::<uuid::Uuid, usize>::new()));
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let all_done = Arc::new(Notify::new());
    // Two workers compete for the same operations.
    let mut workers = Vec::new();
    for w in 0..2 {
        let (handled, now, peak, all_done) =
            (handled.clone(), now.clone(), peak.clone(), all_done.clone());
        let worker = Worker::new(
            client.clone(),
            config("proj-once").concurrency(4).name(format!("w{w}")),
        );
        let stop = all_done.clone();
        workers.push(tokio::spawn(async move {
            worker
                .run(
                    move |task: Task| {
                        let (handled, now, peak, all_done) =
                            (handled.clone(), now.clone(), peak.clone(), all_done.clone());
                        async move {
                            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(running, Ordering::SeqCst);
                            task.progress(50, "halfway");
                            tokio::time::sleep(Duration::from_millis(60)).await;
                            now.fetch_sub(1, Ordering::SeqCst);
                            let mut h = handled.lock().unwrap();
                            *h.entry(task.operation().id).or_default() += 1;
                            if h.values().sum::<usize>() == N {
                                all_done.notify_waiters();
                            }
                            Ok::<(), TaskError>(())
                        }
                    },
                    async move { stop.notified().await },
                )
                .await
                .unwrap()
        }));
    }
    tokio::time::timeout(Duration::from_secs(30), all_done.notified())
        .await
        .expect("all handled within 30 s");
    let mut summaries = Vec::new();
    for w in workers {
        summaries.push(w.await.unwrap());
    }
    let handled = handled.lock().unwrap().clone();
    assert_eq!(handled.len(), N);
    assert!(
        handled.values().all(|n| *n == 1),
        "each exactly once: {handled:?}"
    );
    assert_eq!(summaries.iter().map(|s| s.done).sum::<u64>(), N as u64);
    assert!(peak.load(Ordering::SeqCst) <= 8, "two workers of 4");
    assert!(peak.load(Ordering::SeqCst) >= 3, "they ran side by side");
    for id in ids {
        let op = client.get(id).await.unwrap();
        assert_eq!((op.status, op.progress), (Status::Done, 100));
    }
}

#[tokio::test]
async fn heartbeats_keep_a_long_handlers_lease() {
    let server = Server::start().await;
    let client = server.client();
    let op = create(&client, "proj-long", "vm-1").await;
    let worker = Worker::new(
        client.clone(),
        config("proj-long").lease(Duration::from_secs(1)),
    );
    let finished = Arc::new(Notify::new());
    let stop = finished.clone();
    let run = tokio::spawn(async move {
        worker
            .run(
                move |_task: Task| {
                    let finished = finished.clone();
                    async move {
                        // Three and a half times the lease.
                        tokio::time::sleep(Duration::from_millis(3500)).await;
                        finished.notify_one();
                        Ok::<(), TaskError>(())
                    }
                },
                async move { stop.notified().await },
            )
            .await
            .unwrap()
    });
    let done = client.wait(op.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.status, Status::Done);
    let history = client.events(op.id).await.unwrap();
    assert!(
        history.iter().all(|e| e.status != Status::Unknown),
        "the lease never expired: {history:?}"
    );
    let summary = run.await.unwrap();
    assert_eq!((summary.done, summary.lost), (1, 0));
}

#[tokio::test]
async fn a_killed_worker_leaves_its_operation_to_expire_to_unknown() {
    let server = Server::start().await;
    let client = server.client();
    let op = create(&client, "proj-kill", "vm-1").await;
    let worker = Worker::new(
        client.clone(),
        config("proj-kill").lease(Duration::from_secs(1)),
    );
    let started = Arc::new(Notify::new());
    let signal = started.clone();
    let run = tokio::spawn(async move {
        worker
            .run(
                move |_task: Task| {
                    let signal = signal.clone();
                    async move {
                        signal.notify_one();
                        std::future::pending::<()>().await;
                        Ok::<(), TaskError>(())
                    }
                },
                std::future::pending(),
            )
            .await
    });
    started.notified().await;
    run.abort(); // the worker dies: no heartbeat, no finish
    until_status(&client, op.id, Status::Unknown, Duration::from_secs(10)).await;
    let op = client.get(op.id).await.unwrap();
    assert!(op.status_message.unwrap().contains("stopped heartbeating"));
}

#[tokio::test]
async fn cancellation_stops_a_running_handler() {
    let server = Server::start().await;
    let client = server.client();
    let op = create(&client, "proj-cancel", "vm-1").await;
    let worker = Worker::new(
        client.clone(),
        config("proj-cancel").lease(Duration::from_secs(1)),
    );
    let started = Arc::new(Notify::new());
    let dropped = Arc::new(AtomicBool::new(false));
    let (signal, flag) = (started.clone(), dropped.clone());
    let stop = Arc::new(Notify::new());
    let stopper = stop.clone();
    let run = tokio::spawn(async move {
        worker
            .run(
                move |_task: Task| {
                    let (signal, flag) = (signal.clone(), flag.clone());
                    async move {
                        // Set when the worker drops this future.
                        struct Guard(Arc<AtomicBool>);
                        impl Drop for Guard {
                            fn drop(&mut self) {
                                self.0.store(true, Ordering::SeqCst);
                            }
                        }
                        let _guard = Guard(flag);
                        signal.notify_one();
                        std::future::pending::<()>().await;
                        Ok::<(), TaskError>(())
                    }
                },
                async move { stopper.notified().await },
            )
            .await
            .unwrap()
    });
    started.notified().await;
    let flagged = client.cancel(op.id).await.unwrap();
    assert!(flagged.cancel_requested);
    let ended = client.wait(op.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(ended.status, Status::Failed);
    assert_eq!(ended.error.unwrap().errors[0].code, CANCELLED);
    assert!(dropped.load(Ordering::SeqCst), "the handler was stopped");
    stop.notify_one();
    assert_eq!(run.await.unwrap().cancelled, 1);
}

#[tokio::test]
async fn a_failing_handler_fails_its_operation_with_its_error() {
    let server = Server::start().await;
    let client = server.client();
    let op = create(&client, "proj-fail", "vm-1").await;
    let worker = Worker::new(client.clone(), config("proj-fail"));
    let stop = Arc::new(Notify::new());
    let stopper = stop.clone();
    let run = tokio::spawn(async move {
        worker
            .run(
                |_task: Task| async { Err(TaskError::new("QUOTA", "no quota left in eu-1")) },
                async move { stopper.notified().await },
            )
            .await
            .unwrap()
    });
    let ended = client.wait(op.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(ended.status, Status::Failed);
    let error = &ended.error.unwrap().errors[0];
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("QUOTA", "no quota left in eu-1")
    );
    stop.notify_one();
    assert_eq!(run.await.unwrap().failed, 1);
}

#[tokio::test]
async fn shutdown_finishes_what_it_can_and_releases_the_rest() {
    let server = Server::start().await;
    let client = server.client();
    let quick = create(&client, "proj-stop", "vm-quick").await;
    let stuck = create(&client, "proj-stop", "vm-stuck").await;
    let worker = Worker::new(
        client.clone(),
        config("proj-stop")
            .concurrency(2)
            .shutdown_grace(Duration::from_millis(800)),
    );
    let started = Arc::new(AtomicUsize::new(0));
    let both = Arc::new(Notify::new());
    let (count, signal) = (started.clone(), both.clone());
    let stop = Arc::new(Notify::new());
    let stopper = stop.clone();
    let run = tokio::spawn(async move {
        worker
            .run(
                move |task: Task| {
                    let (count, signal) = (count.clone(), signal.clone());
                    async move {
                        if count.fetch_add(1, Ordering::SeqCst) == 1 {
                            signal.notify_one();
                        }
                        if task.operation().resource_id == "vm-quick" {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        } else {
                            std::future::pending::<()>().await;
                        }
                        Ok::<(), TaskError>(())
                    }
                },
                async move { stopper.notified().await },
            )
            .await
            .unwrap()
    });
    both.notified().await;
    stop.notify_one();
    let summary = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("shutdown within the grace period and a little")
        .unwrap();
    assert_eq!((summary.done, summary.released), (1, 1));
    assert_eq!(client.get(quick.id).await.unwrap().status, Status::Done);
    let released = client.get(stuck.id).await.unwrap();
    assert_eq!(released.status, Status::Unknown);
    assert!(
        released
            .status_message
            .unwrap()
            .contains("shut down before finishing")
    );
}

#[tokio::test]
async fn an_idle_worker_is_woken_by_new_work_not_by_its_poll() {
    let server = Server::start().await;
    let client = server.client();
    // A poll this slow would not find the operation within the test's limit.
    let worker = Worker::new(
        client.clone(),
        config("proj-wake").idle_poll(Duration::from_secs(60)),
    );
    let stop = Arc::new(Notify::new());
    let stopper = stop.clone();
    let run = tokio::spawn(async move {
        worker
            .run(
                |_task: Task| async { Ok::<(), TaskError>(()) },
                async move { stopper.notified().await },
            )
            .await
            .unwrap()
    });
    // Let it find nothing, go idle and open its watch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        let op = create(&client, "proj-wake", &format!("vm-{i}")).await;
        let done = client.wait(op.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            done.status,
            Status::Done,
            "picked up without waiting for the poll"
        );
    }
    stop.notify_one();
    assert_eq!(run.await.unwrap().done, 3);
}
