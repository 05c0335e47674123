//! The list query: filters, keyset condition and order. Page *n* costs what page 1 costs
//! because a cursor becomes a range condition on an indexed
//! `(project, [filter,] sort_column, seq)` key, never an OFFSET.

use opsd_domain::{
    Cursor, Direction, KeyValue, Kind, ListFilter, OpType, Operation, Page, PageRequest, Position,
    Sort, SortField, Status, micros,
};

use super::codes::Coded;
use super::{Dialect, Param, Statement, Where};

/// The conditions of the filters. `project_id` always comes first, so every query is one
/// tenant's and lands on a project-prefixed index.
fn filter_where(dialect: Dialect, filter: &ListFilter) -> Where {
    let mut w = counted_columns_where(dialect, filter);
    if let Some(r) = &filter.resource_id {
        w.push("resource_id = ?", Param::Text(r.clone()));
        if dialect == Dialect::Postgres {
            // PostgreSQL's resource index holds the text's hash, not the text (migration
            // 0020); the condition above still compares the text.
            w.push(
                "hashtextextended(resource_id, 0) = hashtextextended(?, 0)",
                Param::Text(r.clone()),
            );
        }
    }
    if let Some(t) = filter.created_at_min {
        // Times are kept to the microsecond: a bound between two microseconds must
        // round up, or it would admit the operation just below it.
        let rounded_up = micros(t) + i64::from(t.nanosecond() % 1_000 != 0);
        w.push("created_at >= ?", Param::Int(rounded_up));
        push_first_seq_created(&mut w, "seq >= ?", rounded_up);
    }
    if let Some(t) = filter.created_at_max {
        w.push("created_at <= ?", Param::Int(micros(t)));
        push_first_seq_created(&mut w, "seq < ?", micros(t) + 1);
    }
    if let Some(expr) = &filter.expr {
        let sql = super::google_filter::condition(expr, &mut w);
        w.push_raw(sql);
    }
    w
}

/// `condition` on the first seq created at or after `micros`. Operations are created in
/// `seq` order with stamps that never go backwards (ARCHITECTURE.md, "Storage size"), so
/// a creation-time bound is also a `seq` bound, which every list index can range over.
/// SQLite's backend finds that seq by a binary search over the rowid when it binds;
/// PostgreSQL's function `opsd_first_seq_created` does the same search in the query, in
/// a subquery of its own so that it runs once (as a filter it could run once per row).
fn push_first_seq_created(w: &mut Where, condition: &str, micros: i64) {
    match w.dialect {
        Dialect::Sqlite => w.push(condition, Param::FirstSeqCreatedFrom(micros)),
        Dialect::Postgres => w.push(
            &condition.replace('?', "(SELECT opsd_first_seq_created(?))"),
            Param::Int(micros),
        ),
    }
}

/// `column = value` for a kind, type or status: its stored code.
fn push_enum<T: Coded>(w: &mut Where, column: &str, value: T) {
    w.push(&format!("{column} = ?"), Param::Int(value.code()));
}

/// The conditions on the columns the maintained counts are kept by (the same columns,
/// with the same encoding, in `operations` and `operation_counts`).
fn counted_columns_where(dialect: Dialect, filter: &ListFilter) -> Where {
    let mut w = Where::new(dialect);
    // An uncorrelated subquery: evaluated once, then an index key like a constant.
    w.push(
        "project = (SELECT n FROM projects WHERE name = ?)",
        Param::Text(filter.project_id.clone()),
    );
    if let Some(k) = filter.kind {
        push_enum(&mut w, "kind", k);
    }
    if let Some(s) = filter.status {
        push_enum(&mut w, "status", s);
    }
    if let Some(t) = filter.op_type {
        push_enum(&mut w, "type", t);
    }
    w
}

/// `SELECT 1` of the statement returning the total: the sum of the maintained
/// per-(project, kind, type, status) counts when every filter is one they are kept by (a
/// few rows), else a count of the matching rows over the index the list pages on.
pub fn count_query(dialect: Dialect, filter: &ListFilter) -> Statement {
    let countable = filter.resource_id.is_none()
        && filter.created_at_min.is_none()
        && filter.created_at_max.is_none()
        && filter.expr.is_none();
    if countable {
        counts_query(dialect, filter)
    } else {
        filter_where(dialect, filter)
            .into_statement("SELECT COUNT(*) FROM operations WHERE {where}")
    }
}

/// The sum of the maintained counts matching `filter`'s project, kind, type and status.
pub fn counts_query(dialect: Dialect, filter: &ListFilter) -> Statement {
    counted_columns_where(dialect, filter).into_statement(
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM operation_counts WHERE {where}",
    )
}

/// Where a keyset value comes from: the position's n-th sort key, or its `seq`.
#[derive(Clone, Copy)]
enum KeyFrom {
    Key(usize),
    Seq,
}

/// (column, descending, value) for every sort term plus the `seq` tie-breaker, as walked
/// in `direction` (walking backwards flips every term).
///
/// Creation order is `seq` order (stamps never go backwards in `seq` order: SQLite's one
/// writer and PostgreSQL's feed head hand out both; equal stamps, one per commit, are
/// broken by `seq` in the last term's direction), so a last `created_at` term walks as
/// `seq` and the indexes hold no time. An earlier one still orders by the time: its ties
/// are broken by the terms after it, not by `seq`.
fn walk_order(sort: &Sort, direction: Direction) -> Vec<(&'static str, bool, KeyFrom)> {
    let flip = direction == Direction::Prev;
    let terms = sort.terms();
    let mut order = Vec::new();
    for (i, t) in terms.iter().enumerate() {
        let last = i + 1 == terms.len();
        let (column, from) = match t.field {
            SortField::CreatedAt if last => ("seq", KeyFrom::Seq),
            SortField::CreatedAt => ("created_at", KeyFrom::Key(i)),
            SortField::UpdatedAt => ("updated_at", KeyFrom::Key(i)),
            SortField::Name => ("id", KeyFrom::Key(i)),
        };
        order.push((column, t.descending != flip, from));
    }
    if order.last().is_none_or(|(column, _, _)| *column != "seq") {
        order.push(("seq", sort.tie_descending() != flip, KeyFrom::Seq));
    }
    order
}

fn order_by(sort: &Sort, direction: Direction) -> String {
    walk_order(sort, direction)
        .iter()
        .map(|(c, d, _)| format!("{c} {}", if *d { "DESC" } else { "ASC" }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_param(v: &KeyValue) -> Param {
    match v {
        KeyValue::Time(t) => Param::Int(*t),
        // Ids are kept as their 16 bytes, which sort as the lowercase text does.
        KeyValue::Text(s) => match s.parse::<uuid::Uuid>() {
            Ok(id) => Param::Uuid(id),
            Err(_) => Param::Text(s.clone()),
        },
    }
}

/// Adds "strictly after `pos` when walking in `direction`" to `w`.
fn push_keyset(w: &mut Where, sort: &Sort, direction: Direction, pos: &Position) {
    let order = walk_order(sort, direction);
    let seq = Param::Int(i64::try_from(pos.seq).unwrap_or(i64::MAX));
    let values: Vec<Param> = order
        .iter()
        .map(|(_, _, from)| match from {
            KeyFrom::Key(i) => pos.keys.get(*i).map_or(Param::Int(0), key_param),
            KeyFrom::Seq => seq.clone(),
        })
        .collect();
    let holes: Vec<String> = values.into_iter().map(|v| w.bind(v)).collect();
    if order.iter().all(|(_, d, _)| *d == order[0].1) {
        // One direction for every column: a row-value comparison, which the databases
        // turn into a single index range.
        let cols = order
            .iter()
            .map(|(c, _, _)| *c)
            .collect::<Vec<_>>()
            .join(", ");
        let op = if order[0].1 { "<" } else { ">" };
        w.push_raw(format!("({cols}) {op} ({})", holes.join(", ")));
        return;
    }
    // Mixed directions: (a ⋚ x) OR (a = x AND b ⋚ y) OR (a = x AND b = y AND seq ⋚ z).
    let mut alternatives = Vec::new();
    for (i, (col, desc, _)) in order.iter().enumerate() {
        let mut parts: Vec<String> = order[..i]
            .iter()
            .zip(&holes)
            .map(|((c, _, _), h)| format!("{c} = {h}"))
            .collect();
        parts.push(format!(
            "{col} {} {}",
            if *desc { "<" } else { ">" },
            holes[i]
        ));
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    w.push_raw(format!("({})", alternatives.join(" OR ")));
}

/// Up to `limit` rows (`columns` of `operations`) matching `filter`, walking `sort` in
/// `direction` from strictly after `after` (from the start without one).
pub fn page_query(
    dialect: Dialect,
    columns: &str,
    filter: &ListFilter,
    sort: &Sort,
    direction: Direction,
    after: Option<&Position>,
    limit: usize,
) -> Statement {
    let mut w = filter_where(dialect, filter);
    if let Some(pos) = after {
        push_keyset(&mut w, sort, direction, pos);
    }
    let order = order_by(sort, direction);
    let template = match merged_column(dialect, filter, sort) {
        // One branch per value of the column, each an ordered walk of its own range of
        // an index, cut at `limit`; PostgreSQL merges them in order (Merge Append) and
        // stops at `limit`, so a page costs a few short index walks, whatever the
        // project's size.
        Some((column, codes)) => {
            let branches = codes
                .iter()
                .map(|code| {
                    format!(
                        "(SELECT * FROM operations WHERE {{where}} AND {column} = {code} \
                         ORDER BY {order} LIMIT {limit})"
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            format!(
                "SELECT {columns} FROM ({branches}) AS operations ORDER BY {order} LIMIT {limit}"
            )
        }
        None => format!(
            "SELECT {columns} FROM operations WHERE {{where}} ORDER BY {order} LIMIT {limit}"
        ),
    };
    w.into_statement(&template)
}

/// The column a list walks one value at a time, merging the walks in order, when no
/// single index holds its rows in its order (PostgreSQL only). Its indexes are the
/// fewest that serve every filter in both orders (ARCHITECTURE.md, "Storage size"):
///
/// - `(project, status, seq)` and `(project, status, updated_at, seq)`: a list with no
///   equality filter in creation order, and any list without a status filter in update
///   order, walk them once per status;
/// - `(project, kind, type, seq)`: a kind filter walks it once per type, a type filter
///   once per kind.
///
/// SQLite keeps an index per shape instead: its entries hold neither `seq` nor a row
/// header, so one more index costs it far less than one walk per code.
fn merged_column(
    dialect: Dialect,
    filter: &ListFilter,
    sort: &Sort,
) -> Option<(&'static str, Vec<i64>)> {
    fn codes<T: Coded>(all: &[T]) -> Vec<i64> {
        all.iter().map(|v| v.code()).collect()
    }
    if dialect != Dialect::Postgres || filter.status.is_some() {
        return None;
    }
    match sort.terms().first()?.field {
        SortField::UpdatedAt => Some(("status", codes(Status::ALL))),
        SortField::CreatedAt if filter.resource_id.is_none() => {
            match (filter.kind, filter.op_type) {
                (None, None) => Some(("status", codes(Status::ALL))),
                (Some(_), None) => Some(("type", codes(OpType::ALL))),
                (None, Some(_)) => Some(("kind", codes(Kind::ALL))),
                (Some(_), Some(_)) => None,
            }
        }
        _ => None,
    }
}

/// Whether any row matches beyond `pos` walking in `direction` (`SELECT 1 … LIMIT 1`).
/// With `recheck` set the caller must use [`page_query`] instead and check rows.
pub fn exists_beyond_query(
    dialect: Dialect,
    filter: &ListFilter,
    sort: &Sort,
    direction: Direction,
    pos: &Position,
) -> Statement {
    page_query(dialect, "1", filter, sort, direction, Some(pos), 1)
}

/// How a page is cut from the rows read after its cursor: the part of a list that does
/// not depend on the database. A backend reads `fetch()` rows in `direction()`, then
/// [`PageShape::cut`] tells it whether to probe the other side, and
/// [`PageShape::finish`] makes the page.
#[derive(Debug)]
pub struct PageShape<'a> {
    sort: &'a Sort,
    page: &'a PageRequest,
}

/// A page cut from its rows, waiting for the answer to its probe.
#[derive(Debug)]
pub struct CutPage {
    items: Vec<Operation>,
    has_this_way: bool,
    direction: Direction,
    /// Where to probe for rows on the other side of the page, when the answer matters:
    /// walk `.0` from strictly after `.1`.
    pub probe: Option<(Direction, Position)>,
}

impl<'a> PageShape<'a> {
    /// The shape of `page` under `sort`.
    pub fn new(sort: &'a Sort, page: &'a PageRequest) -> Self {
        Self { sort, page }
    }

    /// The walking direction of the page.
    pub fn direction(&self) -> Direction {
        self.page
            .cursor
            .as_ref()
            .map_or(Direction::Next, |c| c.direction)
    }

    /// Where the walk starts (strictly after).
    pub fn after(&self) -> Option<&Position> {
        self.page.cursor.as_ref().map(|c| &c.position)
    }

    /// How many rows to read: one more than the page, to learn whether more follow.
    pub fn fetch(&self) -> usize {
        self.page.limit + 1
    }

    /// Cuts the rows read (in walking order) into the page.
    pub fn cut(&self, mut items: Vec<Operation>) -> CutPage {
        let direction = self.direction();
        let has_this_way = items.len() > self.page.limit;
        items.truncate(self.page.limit);
        if direction == Direction::Prev {
            items.reverse();
        }
        let probe = match (&self.page.cursor, items.first(), items.last()) {
            (Some(_), Some(first), Some(last)) => Some(match direction {
                Direction::Next => (Direction::Prev, self.sort.position_of(first)),
                Direction::Prev => (Direction::Next, self.sort.position_of(last)),
            }),
            _ => None,
        };
        CutPage {
            items,
            has_this_way,
            direction,
            probe,
        }
    }

    /// The page, given whether rows exist where the probe looked (ignored without one)
    /// and the total (when it was asked for).
    pub fn finish(&self, cut: CutPage, beyond: bool, total_count: u64) -> Page {
        let CutPage {
            items,
            has_this_way,
            direction,
            probe,
        } = cut;
        let (has_next, has_prev) = match (probe.is_some(), direction) {
            (false, _) => (has_this_way, false),
            (true, Direction::Next) => (has_this_way, beyond),
            (true, Direction::Prev) => (beyond, has_this_way),
        };
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return Page {
                items,
                next: None,
                prev: None,
                total_count,
            };
        };
        let next = has_next.then(|| Cursor {
            direction: Direction::Next,
            position: self.sort.position_of(last),
        });
        let prev = has_prev.then(|| Cursor {
            direction: Direction::Prev,
            position: self.sort.position_of(first),
        });
        Page {
            items,
            next,
            prev,
            total_count,
        }
    }
}
