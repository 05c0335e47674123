//! The list query: filters, keyset condition and order, built as SQL with bound
//! parameters. Page *n* costs what page 1 costs because a cursor becomes a range
//! condition on an indexed `(project_id, [filter,] sort_column, seq)` key, never an OFFSET.

use opsd_domain::{Direction, KeyValue, ListFilter, Position, Sort, SortField, micros};
use rusqlite::types::Value;

/// A WHERE clause and its parameters, grown term by term.
#[derive(Default)]
pub struct Where {
    terms: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    fn push(&mut self, sql: &str, value: Value) {
        let hole = self.bind(value);
        self.terms.push(sql.replace('?', &hole));
    }

    /// Binds `value` and returns its placeholder (`?N`).
    pub fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    /// The clause text (`a AND b …`).
    pub fn sql(&self) -> String {
        if self.terms.is_empty() {
            "1".into()
        } else {
            self.terms.join(" AND ")
        }
    }

    /// The bound values, in placeholder order.
    pub fn params(&self) -> &[Value] {
        &self.params
    }
}

/// The conditions of the Nirvana filters. `project_id` always comes first, so every
/// query is one tenant's and lands on a project-prefixed index.
pub fn filter_where(filter: &ListFilter) -> Where {
    let mut w = Where::default();
    w.push("project_id = ?", Value::Text(filter.project_id.clone()));
    if let Some(k) = filter.kind {
        w.push("kind = ?", Value::Text(k.as_str().into()));
    }
    if let Some(s) = filter.status {
        w.push("status = ?", Value::Text(s.as_str().into()));
    }
    if let Some(t) = filter.op_type {
        w.push("type = ?", Value::Text(t.as_str().into()));
    }
    if let Some(r) = &filter.resource_id {
        w.push("resource_id = ?", Value::Text(r.clone()));
    }
    if let Some(t) = filter.created_at_min {
        // Times are kept to the microsecond: a bound between two microseconds must
        // round up, or it would admit the operation just below it.
        let rounded_up = micros(t) + i64::from(t.nanosecond() % 1_000 != 0);
        w.push("created_at >= ?", Value::Integer(rounded_up));
    }
    if let Some(t) = filter.created_at_max {
        w.push("created_at <= ?", Value::Integer(micros(t)));
    }
    if let Some(expr) = &filter.expr {
        let sql = super::google_filter::condition(expr, &mut w);
        w.terms.push(sql);
    }
    w
}

/// The conditions of `filter` over the `operation_counts` table, when every filter is one
/// it keeps counts by (project, kind, type, status); `None` otherwise.
pub fn counts_where(filter: &ListFilter) -> Option<Where> {
    let countable = filter.resource_id.is_none()
        && filter.created_at_min.is_none()
        && filter.created_at_max.is_none()
        && filter.expr.is_none();
    if !countable {
        return None;
    }
    let mut w = Where::default();
    w.push("project_id = ?", Value::Text(filter.project_id.clone()));
    if let Some(k) = filter.kind {
        w.push("kind = ?", Value::Text(k.as_str().into()));
    }
    if let Some(s) = filter.status {
        w.push("status = ?", Value::Text(s.as_str().into()));
    }
    if let Some(t) = filter.op_type {
        w.push("type = ?", Value::Text(t.as_str().into()));
    }
    Some(w)
}

fn column(field: SortField) -> &'static str {
    match field {
        SortField::CreatedAt => "created_at",
        SortField::UpdatedAt => "updated_at",
        SortField::Name => "id",
    }
}

/// (column, descending) for every sort term plus the `seq` tie-breaker, as walked in
/// `direction` (walking backwards flips every term).
fn walk_order(sort: &Sort, direction: Direction) -> Vec<(&'static str, bool)> {
    let flip = direction == Direction::Prev;
    sort.terms()
        .iter()
        .map(|t| (column(t.field), t.descending))
        .chain(std::iter::once(("seq", sort.tie_descending())))
        .map(|(c, d)| (c, d != flip))
        .collect()
}

/// `ORDER BY` for a walk in `direction`.
pub fn order_by(sort: &Sort, direction: Direction) -> String {
    walk_order(sort, direction)
        .iter()
        .map(|(c, d)| format!("{c} {}", if *d { "DESC" } else { "ASC" }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_value(v: &KeyValue) -> Value {
    match v {
        KeyValue::Time(t) => Value::Integer(*t),
        KeyValue::Text(s) => Value::Text(s.clone()),
    }
}

/// Adds "strictly after `pos` when walking in `direction`" to `w`.
pub fn push_keyset(w: &mut Where, sort: &Sort, direction: Direction, pos: &Position) {
    let order = walk_order(sort, direction);
    let values: Vec<Value> = pos
        .keys
        .iter()
        .map(key_value)
        .chain(std::iter::once(Value::Integer(
            i64::try_from(pos.seq).unwrap_or(i64::MAX),
        )))
        .collect();
    if order.iter().all(|(_, d)| *d == order[0].1) {
        // One direction for every column: a row-value comparison, which SQLite turns
        // into a single index range.
        let cols = order.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
        let op = if order[0].1 { "<" } else { ">" };
        let start = w.params.len();
        let holes = (1..=values.len())
            .map(|i| format!("?{}", start + i))
            .collect::<Vec<_>>()
            .join(", ");
        w.params.extend(values);
        w.terms.push(format!("({cols}) {op} ({holes})"));
        return;
    }
    // Mixed directions: (a ⋚ x) OR (a = x AND b ⋚ y) OR (a = x AND b = y AND seq ⋚ z).
    let start = w.params.len();
    w.params.extend(values);
    let hole = |i: usize| format!("?{}", start + i + 1);
    let mut alternatives = Vec::new();
    for (i, (col, desc)) in order.iter().enumerate() {
        let mut parts: Vec<String> = order[..i]
            .iter()
            .enumerate()
            .map(|(j, (c, _))| format!("{c} = {}", hole(j)))
            .collect();
        parts.push(format!(
            "{col} {} {}",
            if *desc { "<" } else { ">" },
            hole(i)
        ));
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    w.terms.push(format!("({})", alternatives.join(" OR ")));
}
