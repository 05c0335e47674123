//! The storage backend a run measures, and where seeding writes on it.

use std::path::Path;
use std::sync::Arc;

use crate::pg::{Pg, PgDb};
use crate::seed::Place;

/// The storage backend a run measures.
pub enum Backend {
    /// opsd's embedded SQLite file in its data directory (the default).
    Sqlite,
    /// A PostgreSQL server (`opsd serve --database-url`).
    Postgres(Arc<Pg>),
}

impl Backend {
    /// A new, empty database for `purpose` on PostgreSQL; nothing on SQLite, whose
    /// database lives in the data directory.
    pub fn empty_db(&self, purpose: &str) -> Result<Option<PgDb>, String> {
        match self {
            Backend::Sqlite => Ok(None),
            Backend::Postgres(pg) => pg.create(purpose, None).map(Some),
        }
    }
}

/// Where seeding writes: the data directory, or the PostgreSQL database if there is one.
pub fn place<'a>(dir: &'a Path, db: Option<&'a PgDb>) -> Place<'a> {
    db.map_or(Place::Sqlite(dir), |db| Place::Postgres(&db.url))
}
