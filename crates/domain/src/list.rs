//! What a list asks for (filters, sort, page) and what it gets back. Shared by both
//! dialects and by the store, which turns it into one keyset-paginated query.

use time::OffsetDateTime;

use crate::{Cursor, Kind, OpType, Operation, Status, ValidationError};

/// Default page size of the Nirvana list.
pub const DEFAULT_LIMIT: usize = 10;
/// Largest page size of the Nirvana list.
pub const MAX_LIMIT: usize = 100;

/// The Nirvana list filters. `project_id` is mandatory: every list is one tenant's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListFilter {
    pub project_id: String,
    pub kind: Option<Kind>,
    pub status: Option<Status>,
    pub op_type: Option<OpType>,
    pub resource_id: Option<String>,
    /// Inclusive lower bound on `created_at`.
    pub created_at_min: Option<OffsetDateTime>,
    /// Inclusive upper bound on `created_at`.
    pub created_at_max: Option<OffsetDateTime>,
    /// A Google `filter` expression (Google dialect only), matched against the Google view.
    pub expr: Option<crate::google_filter::Filter>,
}

impl ListFilter {
    /// Whether `op` passes every filter; the in-memory twin of the store's WHERE clause.
    pub fn matches(&self, op: &Operation) -> bool {
        op.project_id == self.project_id
            && self.kind.is_none_or(|k| op.kind == k)
            && self.status.is_none_or(|s| op.status == s)
            && self.op_type.is_none_or(|t| op.op_type == t)
            && self
                .resource_id
                .as_ref()
                .is_none_or(|r| &op.resource_id == r)
            && self.created_at_min.is_none_or(|t| op.created_at >= t)
            && self.created_at_max.is_none_or(|t| op.created_at <= t)
            && self
                .expr
                .as_ref()
                .is_none_or(|f| crate::google_view::matches(f, op))
    }

    /// A canonical text of the filter, part of a cursor's scope.
    pub fn canonical(&self) -> String {
        let t = |t: Option<OffsetDateTime>| {
            t.map(|t| t.unix_timestamp_nanos().to_string())
                .unwrap_or_default()
        };
        format!(
            "p={}&k={}&s={}&t={}&r={}&min={}&max={}&f={}",
            self.project_id,
            self.kind.map(Kind::as_str).unwrap_or_default(),
            self.status.map(Status::as_str).unwrap_or_default(),
            self.op_type.map(OpType::as_str).unwrap_or_default(),
            self.resource_id.as_deref().unwrap_or_default(),
            t(self.created_at_min),
            t(self.created_at_max),
            self.expr
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        )
    }
}

/// A column a list can be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// The operation id (UUIDv7): Google's `orderBy=name`.
    Name,
}

/// One `field:asc|desc` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortTerm {
    pub field: SortField,
    pub descending: bool,
}

/// Sort terms, most significant first. Ties are always broken by `seq` in the direction
/// of the last term, so every order is total and keyset pagination never skips a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort(Vec<SortTerm>);

impl Default for Sort {
    /// `created_at:desc`, the Nirvana default.
    fn default() -> Self {
        Sort(vec![SortTerm {
            field: SortField::CreatedAt,
            descending: true,
        }])
    }
}

impl Sort {
    /// A sort from explicit terms (at least one, no field twice).
    pub fn new(terms: Vec<SortTerm>) -> Option<Self> {
        let unique = terms
            .iter()
            .enumerate()
            .all(|(i, t)| terms[..i].iter().all(|u| u.field != t.field));
        (!terms.is_empty() && unique).then_some(Sort(terms))
    }

    /// Parses the Nirvana `sort` parameter: comma-separated `field:asc|desc` terms over
    /// `created_at` and `updated_at`.
    pub fn parse_nirvana(s: &str) -> Result<Self, ValidationError> {
        let err = |m: String| ValidationError::new("sort", m);
        let mut terms = Vec::new();
        for term in s.split(',') {
            let (field, dir) = term.trim().split_once(':').unwrap_or((term.trim(), "asc"));
            let field = match field {
                "created_at" => SortField::CreatedAt,
                "updated_at" => SortField::UpdatedAt,
                other => {
                    return Err(err(format!(
                        "unknown sort field '{other}'; expected created_at or updated_at"
                    )));
                }
            };
            let descending = match dir {
                "asc" => false,
                "desc" => true,
                other => {
                    return Err(err(format!(
                        "unknown direction '{other}'; expected asc or desc"
                    )));
                }
            };
            terms.push(SortTerm { field, descending });
        }
        Sort::new(terms).ok_or_else(|| err("each field may appear only once".into()))
    }

    /// The terms, most significant first.
    pub fn terms(&self) -> &[SortTerm] {
        &self.0
    }

    /// Direction of the `seq` tie-breaker.
    pub fn tie_descending(&self) -> bool {
        self.0.last().is_some_and(|t| t.descending)
    }

    /// A canonical text of the sort, part of a cursor's scope.
    pub fn canonical(&self) -> String {
        self.0
            .iter()
            .map(|t| {
                format!(
                    "{:?}:{}",
                    t.field,
                    if t.descending { "desc" } else { "asc" }
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether `pos` has one key of the right type per sort term: a cursor that passed
    /// its fingerprint check may still have been edited by hand.
    pub fn fits(&self, pos: &crate::Position) -> bool {
        pos.keys.len() == self.0.len()
            && self.0.iter().zip(&pos.keys).all(|(t, k)| {
                matches!(
                    (t.field, k),
                    (
                        SortField::CreatedAt | SortField::UpdatedAt,
                        crate::KeyValue::Time(_)
                    ) | (SortField::Name, crate::KeyValue::Text(_))
                )
            })
    }

    /// The key of `op` under this sort, as a cursor stores it.
    pub fn position_of(&self, op: &Operation) -> crate::Position {
        let keys = self
            .0
            .iter()
            .map(|t| match t.field {
                SortField::CreatedAt => crate::KeyValue::Time(micros(op.created_at)),
                SortField::UpdatedAt => crate::KeyValue::Time(micros(op.updated_at)),
                SortField::Name => crate::KeyValue::Text(op.id.to_string()),
            })
            .collect();
        crate::Position { keys, seq: op.seq }
    }

    /// Orders two operations as a list sorted this way would.
    pub fn compare(&self, a: &Operation, b: &Operation) -> std::cmp::Ordering {
        let (pa, pb) = (self.position_of(a), self.position_of(b));
        for (t, (ka, kb)) in self.0.iter().zip(pa.keys.iter().zip(pb.keys.iter())) {
            let o = ka.cmp(kb);
            let o = if t.descending { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        let o = a.seq.cmp(&b.seq);
        if self.tie_descending() {
            o.reverse()
        } else {
            o
        }
    }
}

/// Microseconds since the Unix epoch: how the store keeps and compares times.
pub fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Which page to fetch: a cursor (or the first page) and a size.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub cursor: Option<Cursor>,
    pub limit: usize,
    /// Whether to compute [`Page::total_count`]. Only the Nirvana list sends it; the
    /// Google list does not, and a count can cost more than the page (a filter the
    /// maintained counts do not cover counts every matching row), so it is skipped
    /// there and `total_count` is 0.
    pub count_total: bool,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Operation>,
    /// Cursor to the page after this one; `None` on the last page.
    pub next: Option<Cursor>,
    /// Cursor to the page before this one; `None` on the first page.
    pub prev: Option<Cursor>,
    /// Everything that matches the filters, across all pages (0 when the request did not
    /// ask for it: [`PageRequest::count_total`]).
    pub total_count: u64,
}
