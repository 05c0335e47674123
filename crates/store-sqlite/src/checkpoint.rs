//! WAL checkpoints, mostly off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000
//! pages: that commit copies every page back into the database file and fsyncs it, and
//! every write queued behind it waits. The writer connection therefore turns automatic
//! checkpoints off, and this module splits the work in two:
//!
//! - a thread with a connection of its own runs a PASSIVE checkpoint whenever the writer
//!   reports [`CHECKPOINT_PAGES`] pages in the WAL (and once a second). A passive
//!   checkpoint never blocks the writer or readers, so commits go on while it copies.
//! - But a checkpoint that runs beside a busy writer never quite catches up (commits land
//!   while it copies), and the WAL only starts again from its beginning once every frame
//!   has been copied. So when the WAL reaches [`CATCH_UP_PAGES`], the writer runs one
//!   passive checkpoint itself between two transactions: the thread has already copied
//!   nearly everything, the rest is a few pages and one fsync, and the next commit
//!   restarts the WAL. The WAL stays within a few times the threshold under sustained
//!   load instead of growing without bound.
//!
//! Durability does not depend on checkpoints: a commit is on disk once its WAL frames
//! are fsynced (`synchronous=FULL`), before the writer answers anyone.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use opsd_store::{Result, StoreError};
use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// The checkpoint thread's name for supervision, metrics and fault hooks.
const WORKER: &str = "sqlite-checkpoint";
/// WAL pages past which a checkpoint is due (SQLite's own automatic threshold).
pub const CHECKPOINT_PAGES: i32 = 1000;
/// WAL pages at which the writer finishes the checkpoint itself.
pub const CATCH_UP_PAGES: i32 = 2 * CHECKPOINT_PAGES;
/// How often the thread checkpoints without a nudge (a nudge can be dropped while a
/// checkpoint runs).
const IDLE_CHECK: Duration = Duration::from_secs(1);

thread_local! {
    /// Pages in the WAL after the last commit on this thread's connection (set by
    /// SQLite's WAL hook, which runs on the committing thread and takes a plain `fn`).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// The writer's handle: [`after_commit`](Checkpointer::after_commit) after each commit.
/// The thread ends when the handle is dropped (the writer stopped).
pub struct Checkpointer {
    nudge: SyncSender<()>,
}

impl Checkpointer {
    /// Turns off `writer`'s automatic checkpoints and starts the checkpoint thread for
    /// the database at `db` (with its own connection).
    pub fn start(writer: &Connection, db: &Path) -> Result<Checkpointer> {
        // Setting the pragma replaces any WAL hook, so it goes first.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| StoreError::Internal(format!("cannot turn off autocheckpoint: {e}")))?;
        writer.wal_hook(Some(record_wal_pages));
        let (nudge, nudged) = mpsc::sync_channel(1);
        let db: PathBuf = db.to_owned();
        opsd_store::supervise::thread(WORKER, move || run(&db, &nudged))
            .map_err(|e| StoreError::Internal(format!("cannot start checkpoint thread: {e}")))?;
        Ok(Checkpointer { nudge })
    }

    /// Called on the writer thread after each commit on `writer`: nudges the checkpoint
    /// thread once the WAL holds [`CHECKPOINT_PAGES`] (never blocks: a nudge that finds
    /// one pending is dropped), and catches up itself at [`CATCH_UP_PAGES`].
    pub fn after_commit(&self, writer: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages >= CATCH_UP_PAGES {
            WAL_PAGES.with(|p| p.set(0));
            if let Err(e) = checkpoint(writer) {
                tracing::warn!(error = %e, pages, "WAL catch-up checkpoint failed");
            }
        } else if pages >= CHECKPOINT_PAGES {
            match self.nudge.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

fn record_wal_pages(_: &Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

fn run(db: &Path, nudged: &mpsc::Receiver<()>) {
    let conn = match Connection::open(db) {
        Ok(c) => c,
        Err(e) => {
            // The writer's automatic checkpoints are off: the WAL grows until opsd
            // restarts (and the next open checkpoints it).
            tracing::error!(error = %e, "cannot open the checkpoint connection");
            return;
        }
    };
    loop {
        match nudged.recv_timeout(IDLE_CHECK) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        opsd_store::supervise::fault_point(WORKER);
        // With nothing new in the WAL this returns at once, without an fsync.
        if let Err(e) = checkpoint(&conn) {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
    }
}

fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opsd_domain::{Kind, NewOperation, OpType};
    use opsd_store::Store;

    use crate::SqliteStore;

    /// Without checkpoints the WAL grows by every page every commit writes (here about
    /// 40 MiB); checkpoints keep it within a few MiB of the catch-up threshold (8 MiB).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sustained_writes_keep_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("opsd.db");
        let store = SqliteStore::open(&db).unwrap();
        let description = "x".repeat(2_000); // a few pages per commit
        for i in 0..3_000 {
            let mut new = NewOperation::new(
                format!("p{}", i % 10),
                Kind::Vm,
                OpType::Create,
                format!("vm-{i}"),
            );
            new.description = Some(description.clone());
            store.create(new).await.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("opsd.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal <= 12 << 20,
            "the WAL grew to {} MiB under sustained writes",
            wal >> 20
        );
    }
}
