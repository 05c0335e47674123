//! SQL text shared by the backends: the list query (filters, keyset condition, order)
//! and the Google `filter` translation, built once with bound parameters and rendered
//! for a [`Dialect`]. Each backend only executes what comes out, so both select exactly
//! the same rows.

pub mod codes;
pub mod columns;
mod google_filter;
mod list;
pub mod list_shapes;

pub use list::{PageShape, count_query, counts_query, exists_beyond_query, page_query};

/// Which database the SQL is for. Both keep the compact row (ARCHITECTURE.md, "Storage
/// size"): a project is a `projects.n` integer, an id its 16 bytes (a BLOB on SQLite, a
/// `uuid` on PostgreSQL), a kind/type/status its [`codes`] number. The differences:
/// placeholders, how a regular expression is matched (see `google_filter`), how an id
/// reads as text, how a creation-time bound finds its first `seq`, and that PostgreSQL
/// merges walks of one index per code where SQLite keeps an index per list shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?1` placeholders; `regexp(pattern, text)` is a function opsd registers; the
    /// compact row.
    Sqlite,
    /// `$1` placeholders with explicit types; text compared byte by byte
    /// (`COLLATE "C"`); regular expressions are checked outside the database.
    Postgres,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// A 64-bit integer (times are microseconds since the epoch).
    Int(i64),
    /// Bytes.
    Blob(Vec<u8>),
    /// An operation id (SQLite stores its 16 bytes, PostgreSQL a `uuid`).
    Uuid(uuid::Uuid),
    /// SQLite only, resolved by the backend when it binds: the lowest `seq` from which
    /// every operation was created at or after this time (microseconds). Operations
    /// are created in `seq` order with stamps that never go backwards, so a time bound
    /// is a `seq` bound, found by a binary search over the rowid instead of an index.
    FirstSeqCreatedFrom(i64),
}

/// A statement and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// The bound values.
    pub params: Vec<Param>,
    /// The SQL selects a superset of the matching rows (PostgreSQL with a regular
    /// expression in the filter): the caller must check each row with
    /// `ListFilter::matches` and keep reading until it has enough.
    pub recheck: bool,
}

/// A WHERE clause and its parameters, grown term by term.
#[derive(Debug)]
pub struct Where {
    dialect: Dialect,
    terms: Vec<String>,
    params: Vec<Param>,
    recheck: bool,
}

impl Where {
    /// An empty clause (true) for `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            terms: Vec::new(),
            params: Vec::new(),
            recheck: false,
        }
    }

    /// Adds `sql` (with one `?` standing for `value`) as a term.
    fn push(&mut self, sql: &str, value: Param) {
        let hole = self.bind(value);
        self.terms.push(sql.replace('?', &hole));
    }

    /// Adds a term that binds nothing of its own.
    fn push_raw(&mut self, sql: String) {
        self.terms.push(sql);
    }

    /// Binds `value` and returns its placeholder.
    pub fn bind(&mut self, value: Param) -> String {
        let ty = match value {
            Param::Text(_) => "text",
            Param::Int(_) | Param::FirstSeqCreatedFrom(_) => "bigint",
            Param::Blob(_) => "bytea",
            Param::Uuid(_) => "uuid",
        };
        self.params.push(value);
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}::{ty}"),
        }
    }

    /// The clause text (`a AND b …`).
    pub fn sql(&self) -> String {
        if self.terms.is_empty() {
            "TRUE".into()
        } else {
            self.terms.join(" AND ")
        }
    }

    /// Turns the clause into a statement around `template`, whose `{where}` is replaced.
    fn into_statement(self, template: &str) -> Statement {
        Statement {
            sql: template.replace("{where}", &self.sql()),
            params: self.params,
            recheck: self.recheck,
        }
    }
}
