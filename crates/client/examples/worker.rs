//! Resizes `vm` operations of proj-1, four at a time: `cargo run -p opsd-client --example worker`.
use std::time::Duration;

use opsd_client::{Client, Kind, Task, TaskError, Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), opsd_client::Error> {
    let url = std::env::var("OPSD_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("OPSD_KEY")
        .or_else(|_| std::fs::read_to_string("data/admin.key"))
        .unwrap_or_default();
    let client = Client::new(url, key.trim())?;
    let config = WorkerConfig::new("proj-1").kinds([Kind::Vm]).concurrency(4);
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or(()) };
    let summary = Worker::new(client, config).run(resize, stop).await?;
    println!("{summary:?}");
    Ok(())
}

async fn resize(task: Task) -> Result<(), TaskError> {
    let vm = task.operation().resource_id.clone();
    for step in 1..=4 {
        task.progress(step * 25, format!("resizing {vm} ({step}/4)"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
