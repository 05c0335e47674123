//! How the stores keep the closed enums: a small integer each instead of the wire name
//! (ARCHITECTURE.md, "Storage size"). On SQLite an integer of 0 or 1 takes no byte of
//! the record at all and one up to 127 takes one, where `nks_node_pool` took thirteen;
//! on PostgreSQL a `smallint` takes two; in the row and again in every index that holds
//! the column.
//!
//! The numbers are stored: never change or reuse one, only append.

use opsd_domain::{Kind, OpType, Status};

/// A closed enum with a stored code per variant.
pub trait Coded: Copy + PartialEq + 'static {
    /// Every variant with its code.
    const CODES: &'static [(Self, i64)];

    /// The stored code.
    fn code(self) -> i64 {
        // Every variant is in CODES (tested below), so the fallback is never taken.
        Self::CODES
            .iter()
            .find(|(v, _)| *v == self)
            .map_or(-1, |(_, c)| *c)
    }

    /// The variant stored as `code`; `None` for a code this build does not know.
    fn from_code(code: i64) -> Option<Self> {
        Self::CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(v, _)| *v)
    }
}

impl Coded for Kind {
    const CODES: &'static [(Self, i64)] = &[
        (Kind::Vm, 0),
        (Kind::Volume, 1),
        (Kind::Vpc, 2),
        (Kind::FirewallRule, 3),
        (Kind::NksCluster, 4),
        (Kind::NksNodePool, 5),
        (Kind::ConnectConnection, 6),
        (Kind::NksLoadBalancer, 7),
        (Kind::NksNode, 8),
    ];
}

impl Coded for OpType {
    const CODES: &'static [(Self, i64)] = &[
        (OpType::Create, 0),
        (OpType::Update, 1),
        (OpType::Delete, 2),
        (OpType::Restart, 3),
    ];
}

impl Coded for Status {
    const CODES: &'static [(Self, i64)] = &[
        (Status::Pending, 0),
        (Status::Running, 1),
        (Status::Done, 2),
        (Status::Failed, 3),
        (Status::Unknown, 4),
    ];
}

/// A `CASE column WHEN code THEN 'name' … END` mapping every variant's code to `text(v)`,
/// for SQL that must compute on the names (migrations, the Google filter).
pub fn case_of<T: Coded>(column: &str, text: impl Fn(T) -> String) -> String {
    let arms: String = T::CODES
        .iter()
        .map(|(v, c)| format!(" WHEN {c} THEN '{}'", text(*v)))
        .collect();
    format!("(CASE {column}{arms} END)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn every_variant_has_one_unique_code<T: Coded + std::fmt::Debug>(all: &[T]) {
        assert_eq!(T::CODES.len(), all.len(), "a variant has no code");
        let codes: HashSet<i64> = T::CODES.iter().map(|(_, c)| *c).collect();
        assert_eq!(codes.len(), all.len(), "two variants share a code");
        for v in all {
            assert_eq!(T::from_code(v.code()), Some(*v), "{v:?}");
        }
        assert_eq!(T::from_code(1_000), None);
    }

    #[test]
    fn codes_cover_every_variant_once() {
        every_variant_has_one_unique_code(Kind::ALL);
        every_variant_has_one_unique_code(OpType::ALL);
        every_variant_has_one_unique_code(Status::ALL);
    }
}
