//! Every shape a list can take, for the backends' tests that ask their database how it
//! would run each one (`list_plans`): each must walk an index in order and never sort a
//! project's rows, which is what keeps a page's cost flat as a project grows.

use opsd_domain::{
    Direction, KeyValue, Kind, ListFilter, OpType, Position, Sort, SortField, SortTerm, Status,
};

use super::{Dialect, Statement, page_query};

/// Every filter the API combines, one of each kind of combination.
fn filters() -> Vec<ListFilter> {
    let project = ListFilter {
        project_id: "p".into(),
        ..ListFilter::default()
    };
    let bounded = ListFilter {
        created_at_min: Some(time::OffsetDateTime::UNIX_EPOCH),
        created_at_max: Some(time::OffsetDateTime::now_utc()),
        ..project.clone()
    };
    let with = |change: fn(&mut ListFilter), base: &ListFilter| {
        let mut f = base.clone();
        change(&mut f);
        f
    };
    vec![
        project.clone(),
        with(|f| f.status = Some(Status::Pending), &project),
        with(|f| f.kind = Some(Kind::Vm), &project),
        with(|f| f.op_type = Some(OpType::Create), &project),
        with(|f| f.resource_id = Some("vm-1".into()), &project),
        with(
            |f| (f.status, f.kind) = (Some(Status::Running), Some(Kind::Volume)),
            &project,
        ),
        with(
            |f| (f.kind, f.op_type) = (Some(Kind::Volume), Some(OpType::Delete)),
            &project,
        ),
        with(
            |f| (f.status, f.op_type) = (Some(Status::Failed), Some(OpType::Restart)),
            &project,
        ),
        bounded.clone(),
        with(|f| f.status = Some(Status::Done), &bounded),
    ]
}

/// The page query of every filter × sort (creation or update order, either direction)
/// × first page, next page and previous page, in `dialect`, selecting `columns`.
/// A creation-time range in update order is left out: it is two ranges at once, and no
/// index serves both.
pub fn page_queries(dialect: Dialect, columns: &str) -> Vec<Statement> {
    let position = Position {
        keys: vec![KeyValue::Time(1_700_000_000_000_000)],
        seq: 42,
    };
    let mut statements = Vec::new();
    for filter in filters() {
        let bounded = filter.created_at_min.is_some() || filter.created_at_max.is_some();
        for field in [SortField::CreatedAt, SortField::UpdatedAt] {
            if bounded && field == SortField::UpdatedAt {
                continue;
            }
            for descending in [true, false] {
                let Some(sort) = Sort::new(vec![SortTerm { field, descending }]) else {
                    continue;
                };
                for (direction, after) in [
                    (Direction::Next, None),
                    (Direction::Next, Some(&position)),
                    (Direction::Prev, Some(&position)),
                ] {
                    statements.push(page_query(
                        dialect, columns, &filter, &sort, direction, after, 11,
                    ));
                }
            }
        }
    }
    statements
}
