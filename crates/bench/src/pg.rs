//! PostgreSQL for `--backend postgres`: the server at `--database-url` (the cluster
//! `scripts/pg` runs, unless another is given) holds one database per use, named after
//! this run. The seeded template is one database; every scenario (and the storage
//! ceiling) gets a copy made with `CREATE DATABASE … TEMPLATE`, which copies files
//! instead of replaying writes, so each scenario starts on the same state as it does on
//! SQLite (where the data directory is copied). Every database is dropped when its
//! handle is, and left-overs of an earlier run that died are dropped at the start
//! (database names carry the harness's process id).
//!
//! The connecting user needs `CREATEDB`. Administrative statements run on a short-lived
//! connection to the URL's own database, on a thread of their own so that they can be
//! issued from anywhere (including `Drop` inside the load generator's runtime).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opsd_store_open::DatabaseUrl;
use tokio_postgres::{Client, NoTls};

/// Prefix of every database this harness creates.
const PREFIX: &str = "opsd_bench_";

/// The PostgreSQL server under test.
pub struct Pg {
    base: DatabaseUrl,
    run: String,
    made: AtomicU64,
    /// What the report says about the server (version and durability settings).
    pub describe: String,
}

/// A database of this run; dropped (`WITH (FORCE)`) when the handle is.
pub struct PgDb {
    pg: Arc<Pg>,
    /// Its name.
    pub name: String,
    /// A URL that connects to it.
    pub url: DatabaseUrl,
}

impl Pg {
    /// Connects to `url`, checks that writes are durable (`fsync` and
    /// `synchronous_commit` on: the numbers are about durable writes) and drops databases
    /// an earlier run of the harness left behind.
    pub fn connect(url: &str) -> Result<Arc<Pg>, String> {
        let base: DatabaseUrl = url.parse()?;
        let describe = block(async {
            let client = connect(&base).await?;
            let setting = |name: &'static str| {
                let client = &client;
                async move {
                    client
                        .query_one(&format!("SHOW {name}"), &[])
                        .await
                        .map(|r| r.get::<_, String>(0))
                        .map_err(|e| format!("SHOW {name}: {e}"))
                }
            };
            let version = setting("server_version").await?;
            let sync = setting("synchronous_commit").await?;
            let fsync = setting("fsync").await?;
            let buffers = setting("shared_buffers").await?;
            if sync != "on" || fsync != "on" {
                return Err(format!(
                    "the benchmark measures durable writes: the server has \
                     synchronous_commit={sync}, fsync={fsync} (both must be on)"
                ));
            }
            let stale: Vec<String> = client
                .query(
                    "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
                    &[&format!("{PREFIX}%")],
                )
                .await
                .map_err(|e| format!("list databases: {e}"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for name in stale.iter().filter(|n| !owner_is_running(n)) {
                drop_database(&client, name).await?;
            }
            Ok(format!(
                "PostgreSQL {version} at {}, synchronous_commit={sync}, fsync={fsync}, \
                 shared_buffers={buffers}",
                host_of(&base)
            ))
        })?;
        Ok(Arc::new(Pg {
            base,
            run: std::process::id().to_string(),
            made: AtomicU64::new(0),
            describe,
        }))
    }

    /// Creates a database for `purpose`: empty (opsd's migrations create the schema on
    /// first open) or a copy of `template`.
    pub fn create(
        self: &Arc<Self>,
        purpose: &str,
        template: Option<&PgDb>,
    ) -> Result<PgDb, String> {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let purpose: String = purpose
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("{PREFIX}{}_{n}_{purpose}", self.run);
        let sql = match template {
            // FILE_COPY copies the files after a checkpoint instead of writing every page
            // to the WAL (PostgreSQL 15's default): much faster for a seeded database.
            Some(t) => format!(
                "CREATE DATABASE {name} TEMPLATE {} STRATEGY = FILE_COPY",
                t.name
            ),
            None => format!("CREATE DATABASE {name}"),
        };
        block(async {
            let client = connect(&self.base).await?;
            // A template must have no other connections; those of a store that was just
            // closed may take a moment to go away.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match client.batch_execute(&sql).await {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() < deadline && is_in_use(&e) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(format!("{sql}: {}", error_text(&e))),
                }
            }
        })?;
        Ok(PgDb {
            pg: self.clone(),
            url: with_database(&self.base, &name)?,
            name,
        })
    }
}

impl PgDb {
    /// Its size on disk, in bytes (`pg_database_size`: tables, indexes, TOAST).
    pub fn bytes(&self) -> Result<u64, String> {
        block(async {
            let client = connect(&self.pg.base).await?;
            let size: i64 = client
                .query_one("SELECT pg_database_size($1::text)", &[&self.name])
                .await
                .map_err(|e| format!("database size: {e}"))?
                .get(0);
            Ok(size.unsigned_abs())
        })
    }

    /// The highest event seq in it (the storage ceiling numbers its events after it).
    pub fn last_event_seq(&self) -> Result<u64, String> {
        block(async {
            let client = connect(&self.url).await?;
            let seq: i64 = client
                .query_one("SELECT COALESCE(MAX(seq), 0) FROM events", &[])
                .await
                .map_err(|e| format!("last event seq: {e}"))?
                .get(0);
            Ok(seq.unsigned_abs())
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // For looking into a run's databases afterwards (sizes, index density).
        if std::env::var_os("OPSD_BENCH_KEEP_DATABASES").is_some() {
            eprintln!("opsd-bench: kept database {}", self.name);
            return;
        }
        let result = block(async {
            let client = connect(&self.pg.base).await?;
            drop_database(&client, &self.name).await
        });
        if let Err(e) = result {
            eprintln!("opsd-bench: could not drop database {}: {e}", self.name);
        }
    }
}

/// Runs `f` to completion on a runtime of its own, on a thread of its own.
fn block<T: Send>(f: impl Future<Output = Result<T, String>> + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(f)
        })
        .join()
        .map_err(|_| "PostgreSQL admin thread panicked".to_owned())?
    })
}

/// Connects to `url`; the connection lives as long as the client.
pub async fn connect(url: &DatabaseUrl) -> Result<Client, String> {
    let (client, conn) = url
        .config()
        .connect(NoTls)
        .await
        .map_err(|e| format!("connect to {url}: {}", error_text(&e)))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; either is fine.
        let _ = conn.await;
    });
    Ok(client)
}

async fn drop_database(client: &Client, name: &str) -> Result<(), String> {
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .map_err(|e| format!("drop database {name}: {}", error_text(&e)))
}

/// Whether the harness that made database `name` (`opsd_bench_<pid>_…`) still runs on
/// this machine: another run's databases are not left-overs.
fn owner_is_running(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// "source database … is being accessed by other users" (SQLSTATE 55006).
fn is_in_use(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
}

/// The server's message where there is one (tokio-postgres's `Display` says only "db error").
pub fn error_text(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// `url` pointing at database `name` (the path of `postgres://…/db?…` replaced).
fn with_database(url: &DatabaseUrl, name: &str) -> Result<DatabaseUrl, String> {
    let raw = url.expose();
    let authority = raw.find("://").map_or(0, |i| i + 3);
    let end_of_authority = raw[authority..]
        .find(['/', '?'])
        .map_or(raw.len(), |i| authority + i);
    let query = raw[end_of_authority..]
        .find('?')
        .map_or("", |i| &raw[end_of_authority + i..]);
    format!("{}/{name}{query}", &raw[..end_of_authority]).parse()
}

/// `host:port` of the URL, for the report (no user, no password).
fn host_of(url: &DatabaseUrl) -> String {
    let redacted = url.redacted();
    let rest = redacted
        .split_once("://")
        .map_or(redacted.as_str(), |r| r.1);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map_or(authority, |a| a.1)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_point_at_the_named_database() {
        for (from, to) in [
            ("postgres://u:pw@h:5/opsd", "postgres://u:pw@h:5/x"),
            (
                "postgres://u:pw@h:5/opsd?sslmode=disable",
                "postgres://u:pw@h:5/x?sslmode=disable",
            ),
            ("postgres://u:pw@h:5", "postgres://u:pw@h:5/x"),
            ("postgresql://h?user=u", "postgresql://h/x?user=u"),
        ] {
            let url: DatabaseUrl = from.parse().expect("valid");
            assert_eq!(with_database(&url, "x").expect("valid").expose(), to);
        }
        let url: DatabaseUrl = "postgres://u:secret@127.0.0.1:5433/db"
            .parse()
            .expect("valid");
        assert_eq!(host_of(&url), "127.0.0.1:5433");
    }
}
