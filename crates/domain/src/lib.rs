//! opsd's domain: the operation record, its life cycle, validation and list cursors.
//!
//! Nothing here does I/O; the store and the HTTP layer build on these pure types.
//! Read in this order: `operation` (the record), `state_machine` (how it moves),
//! `cancel` (how it is asked to stop),
//! `new_operation` and `validate` (what producers may send), `list` and `cursor`
//! (how lists are asked for and paged), `lease` and `duration` (the rules of live
//! operations: worker leases, wait timeouts, retention).

mod auth;
pub mod cancel;
mod cursor;
pub mod duration;
mod error;
pub mod google_filter;
pub mod google_view;
pub mod lease;
pub mod limits;
mod list;
pub mod lro_view;
mod new_operation;
mod operation;
pub mod state_machine;
pub mod strict_json;
pub mod trace_context;
pub mod validate;

pub use auth::{ApiKey, Denied, NewApiKey, Principal, ProjectScope, Role};
pub use cursor::{Cursor, Direction, KeyValue, Position};
pub use error::{ChangeError, ValidationError, check_deletable};
pub use list::{
    DEFAULT_LIMIT, ListFilter, MAX_LIMIT, Page, PageRequest, Sort, SortField, SortTerm, micros,
};
pub use new_operation::NewOperation;
pub use operation::{
    Details, DiffValue, ErrorItem, Event, FieldDiff, Kind, OpType, Operation, OperationError,
    Status, Warning, WarningData, now, truncate_micros,
};
pub use state_machine::Patch;
pub use trace_context::TraceContext;
