//! `kill -9` of one replica under write load through all three.

use std::time::Duration;

use super::cluster::{Cluster, postgres_or_skip};
use super::load::{Load, assert_all_present};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_replica_under_load_loses_no_acknowledged_write() {
    if !postgres_or_skip("kill_9_of_one_replica_under_load_loses_no_acknowledged_write") {
        return;
    }
    let mut cluster = Cluster::start(3, &[]);
    let client = cluster.client();
    let load = Load::start(&client, &cluster.bases, 3, "killed");
    load.until(Duration::from_secs(30), "150 writes acknowledged", |l| {
        l.acked_count() >= 150
    })
    .await;

    // B dies with writes in flight; A and C must carry on as if nothing happened.
    cluster.kill_9(1);
    let (a, c) = (load.answers(0).ok, load.answers(2).ok);
    load.until(
        Duration::from_secs(30),
        "A and C acknowledge 50 more writes each after B was killed",
        |l| l.answers(0).ok >= a + 50 && l.answers(2).ok >= c + 50,
    )
    .await;
    let answers: Vec<_> = (0..3).map(|r| load.answers(r)).collect();
    let acked = load.stop().await;
    eprintln!(
        "kill -9 of B: {} changes acknowledged; answers per replica {answers:?}",
        acked.len()
    );
    for r in [0, 2] {
        let ans = &answers[r];
        assert!(
            ans.wrong.is_empty() && ans.unavailable == 0 && ans.no_answer == 0,
            "replica {r} failed requests after its peer died: {ans:?}"
        );
    }
    assert!(answers[1].no_answer > 0, "B's writers noticed it die");
    // Everything acknowledged, through B too, is there, read through A and through C.
    assert_all_present(&client, cluster.base(0), &acked).await;
    assert_all_present(&client, cluster.base(2), &acked).await;
}
