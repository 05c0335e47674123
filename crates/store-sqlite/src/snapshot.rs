//! Backups and restores of the SQLite store, from any process, while opsd serves.
//!
//! A backup copies the database with SQLite's online backup API in a single step: one
//! read transaction over the WAL, so the copy is exactly the store as of its start
//! (every write acknowledged before it, none after), and writers go on committing to
//! the WAL meanwhile. Copying in several steps would let other connections interleave
//! and restart the copy each time one writes, which under steady writes never ends.
//! The cost of the long read is that checkpoints cannot move past it, so the WAL grows
//! by what is written during the backup (ARCHITECTURE.md, "Backups").
//!
//! The copy is written next to its destination, verified (`integrity_check`), switched
//! out of WAL mode so that it is one self-contained file, synced, and only then renamed
//! into place: a failed backup leaves no file that looks like one.
//!
//! A restore checks the snapshot completely (header, length, integrity, schema version)
//! before it touches the target, so a bad file changes nothing.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opsd_store::backup::Summary;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{epoch, migrations};

/// What went wrong, in words a person running the command can act on.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file is not a usable opsd snapshot (the message says why).
    #[error("{0}")]
    BadSnapshot(String),
    /// The target holds data and `--force` was not given.
    #[error("{0}")]
    NotEmpty(String),
    /// The destination already exists.
    #[error("{0} already exists; choose another name or remove it first")]
    Exists(PathBuf),
    /// Reading or writing a file failed (disk full, permissions).
    #[error("{0}")]
    Io(String),
}

/// How far a backup has come, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes written to the copy so far.
    pub copied: u64,
    /// The database's size in bytes when the backup started.
    pub total: u64,
}

/// How often the progress callback is called.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

fn io(what: &str, path: &Path) -> impl Fn(std::io::Error) -> SnapshotError {
    let context = format!("{what} {}", path.display());
    move |e| SnapshotError::Io(format!("{context}: {e}"))
}

fn sql(what: &str) -> impl Fn(rusqlite::Error) -> SnapshotError + '_ {
    move |e| SnapshotError::Io(format!("{what}: {e}"))
}

/// The name a file is written under before it is complete.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Copies the live database `db` to the new file `to` (see the module comment), calling
/// `progress` as it goes; returns the verified copy's summary.
pub fn backup(
    db: &Path,
    to: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Summary, SnapshotError> {
    if to.exists() {
        return Err(SnapshotError::Exists(to.to_owned()));
    }
    if !db.is_file() {
        return Err(SnapshotError::Io(format!(
            "{} does not exist: is this opsd's data directory?",
            db.display()
        )));
    }
    let tmp = partial(to);
    let result = copy_verified(db, &tmp, progress).and_then(|summary| {
        std::fs::rename(&tmp, to).map_err(io("cannot rename to", to))?;
        sync_dir(to);
        Ok(summary)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn copy_verified(
    db: &Path,
    tmp: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Summary, SnapshotError> {
    let _ = std::fs::remove_file(tmp);
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql("cannot open the database"))?;
    src.busy_timeout(Duration::from_secs(30))
        .map_err(sql("busy timeout"))?;
    let total: u64 = src
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql("database size"))?
        .unsigned_abs();
    let mut dst = Connection::open(tmp).map_err(sql("cannot create the backup file"))?;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let copied = std::fs::metadata(tmp).map(|m| m.len()).unwrap_or(0);
                progress(Progress { copied, total });
                std::thread::park_timeout(PROGRESS_EVERY);
            }
        });
        let copied = copy_in_one_step(&src, &mut dst);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        copied
    })?;
    drop(src);
    // One self-contained file: no -wal beside it is needed to read it.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sql("finishing the backup file"))?;
    drop(dst);
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", tmp))?;
    let summary = inspect(tmp)?;
    progress(Progress {
        copied: summary.bytes,
        total: summary.bytes,
    });
    Ok(summary)
}

/// The online backup API in one step (`-1`: every page), retried while the source is
/// locked by a checkpoint that truncates the WAL.
fn copy_in_one_step(src: &Connection, dst: &mut Connection) -> Result<(), SnapshotError> {
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(src, dst).map_err(sql("starting the backup"))?;
    for _ in 0..600 {
        match backup.step(-1).map_err(sql("copying the database"))? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(50)),
            _ => {}
        }
    }
    Err(SnapshotError::Io(
        "the database stayed locked for 30 s; retry the backup".into(),
    ))
}

fn sync_dir(file: &Path) {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Makes the rename durable; a filesystem that cannot sync directories still has
        // a complete file under one name or the other.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

/// Checks that `path` is a complete, intact opsd snapshot this build can serve, without
/// changing it; returns its summary. Every way it can be unusable is a `BadSnapshot`
/// that says which.
pub fn inspect(path: &Path) -> Result<Summary, SnapshotError> {
    let bytes = check_header(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| bad(path, &format!("cannot be opened ({e})")))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(|e| bad(path, &format!("is corrupted ({e})")))?;
    if integrity != "ok" {
        return Err(bad(path, &format!("is corrupted: {integrity}")));
    }
    let has = |table: &str| -> Result<bool, SnapshotError> {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
        .map_err(|e| bad(path, &format!("cannot be read ({e})")))
    };
    if !has("schema_migrations")? || !has("operations")? || !has("events")? {
        return Err(bad(path, "is an SQLite database but not an opsd store"));
    }
    let newest_known = migrations::MIGRATIONS.last().map_or(0, |m| m.0);
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| bad(path, &format!("cannot be read ({e})")))?;
    if let Some(unknown) = versions
        .iter()
        .find(|v| !migrations::MIGRATIONS.iter().any(|m| m.0 == **v))
    {
        return Err(bad(
            path,
            &format!(
                "was written by a newer opsd (schema version {unknown}; this opsd knows up to \
                 {newest_known}): restore it with that opsd or a later one"
            ),
        ));
    }
    let count = |sql: &str| -> Result<u64, SnapshotError> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(i64::unsigned_abs)
            .map_err(|e| bad(path, &format!("cannot be read ({e})")))
    };
    let keys = if has("api_keys")? {
        count("SELECT count(*) FROM api_keys")?
    } else {
        0
    };
    Ok(Summary {
        operations: count("SELECT count(*) FROM operations")?,
        events: count("SELECT count(*) FROM events")?,
        keys,
        head: count("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)")?,
        bytes,
        sha256: sha256_file(path)?,
        schema_version: versions.last().copied().unwrap_or(0),
    })
}

fn bad(path: &Path, what: &str) -> SnapshotError {
    SnapshotError::BadSnapshot(format!("{} {what}", path.display()))
}

/// The SQLite header: the magic string, and a length that matches the page count the
/// header records (a truncated copy fails here with a clear message, before SQLite
/// reports it as a malformed image).
fn check_header(path: &Path) -> Result<u64, SnapshotError> {
    let mut file = File::open(path).map_err(io("cannot open", path))?;
    let len = file.metadata().map_err(io("cannot read", path))?.len();
    let mut header = [0u8; 100];
    if len < 100 || file.read_exact(&mut header).is_err() {
        return Err(bad(
            path,
            &format!("is not an opsd backup: only {len} bytes"),
        ));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Err(bad(path, "is not an opsd backup (not an SQLite database)"));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    if page_size >= 512 && pages > 0 && len < pages * page_size {
        return Err(bad(
            path,
            &format!(
                "is truncated: it has {len} bytes, and its header says {} ({pages} pages)",
                pages * page_size
            ),
        ));
    }
    Ok(len)
}

fn sha256_file(path: &Path) -> Result<String, SnapshotError> {
    let mut file = File::open(path).map_err(io("cannot open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io("cannot read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The snapshot as it was checked.
    pub snapshot: Summary,
    /// Migrations run on the restored copy (the snapshot's schema lacked them).
    pub migrated: Vec<i64>,
    /// The restored store's new epoch.
    pub epoch: String,
    /// What the target held before, when `force` replaced it: (operations, events).
    pub replaced: Option<(u64, u64)>,
}

/// Restores the snapshot `from` as the database `db` (opsd must not be serving it).
/// Refuses a target that holds operations or events unless `force`; migrates the copy
/// to this build's schema and starts a new epoch; the target changes only by the final
/// rename, after everything else succeeded.
pub fn restore(from: &Path, db: &Path, force: bool) -> Result<Restored, SnapshotError> {
    let snapshot = inspect(from)?;
    let replaced = match target_contents(db)? {
        Some((0, 0)) | None => None,
        Some((ops, events)) if force => Some((ops, events)),
        Some((ops, events)) => {
            return Err(SnapshotError::NotEmpty(format!(
                "{} is not empty ({ops} operations, {events} events); a restore replaces \
                 everything in it: stop opsd, then run the restore again with --force",
                db.display()
            )));
        }
    };
    let tmp = partial(db);
    let _ = std::fs::remove_file(&tmp);
    let result = prepare(from, &tmp).and_then(|(migrated, epoch)| {
        for side in ["-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(side);
            match std::fs::remove_file(PathBuf::from(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("cannot remove", Path::new(&name))(e)),
            }
        }
        std::fs::rename(&tmp, db).map_err(io("cannot rename to", db))?;
        sync_dir(db);
        Ok(Restored {
            snapshot,
            migrated,
            epoch,
            replaced,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// (operations, events) in the database at `db`, `None` when there is none.
fn target_contents(db: &Path) -> Result<Option<(u64, u64)>, SnapshotError> {
    if !db.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(sql("cannot open the target database"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql("busy timeout"))?;
    let count = |table: &str| -> Result<u64, SnapshotError> {
        let exists = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |_| Ok(()),
            )
            .optional()
            .map_err(sql("reading the target"))?
            .is_some();
        if !exists {
            return Ok(0);
        }
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(i64::unsigned_abs)
        .map_err(sql("reading the target"))
    };
    Ok(Some((count("operations")?, count("events")?)))
}

/// Copies the snapshot to `tmp`, migrates it, starts a new epoch and puts it in WAL
/// mode, synced.
fn prepare(from: &Path, tmp: &Path) -> Result<(Vec<i64>, String), SnapshotError> {
    std::fs::copy(from, tmp).map_err(io("cannot copy to", tmp))?;
    let mut conn = Connection::open(tmp).map_err(sql("cannot open the restored copy"))?;
    let migrated = migrations::migrate(&mut conn).map_err(sql("migrating the restored copy"))?;
    let epoch = epoch::renew(&conn, "restored").map_err(sql("starting a new epoch"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql("WAL mode"))?;
    drop(conn);
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", tmp))?;
    Ok((migrated, epoch))
}
