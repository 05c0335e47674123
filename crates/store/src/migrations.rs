//! What both backends' migration runners decide alike: which embedded migrations a
//! database lacks, and refusing a database that is newer than this build.
//!
//! Each backend embeds its migrations as `(version, SQL)` in version order, with the
//! same version numbers on both (a step one backend does not need is a no-op there),
//! and applies them in transactions of its own kind. The list is append-only: a
//! released migration never changes. Every known version the database lacks is applied,
//! in version order, so two migrations written on parallel branches both land whatever
//! order they merge in.

use std::collections::BTreeSet;

/// The migrations of `known` whose versions are not in `present`, in order; an error
/// naming the version when the database has one this build does not know (written by a
/// newer opsd): guessing its schema could corrupt it.
pub fn pending<'m>(
    known: &'m [(i64, &'m str)],
    present: impl IntoIterator<Item = i64>,
) -> Result<Vec<(i64, &'m str)>, String> {
    let present: BTreeSet<i64> = present.into_iter().collect();
    let versions: BTreeSet<i64> = known.iter().map(|m| m.0).collect();
    if let Some(unknown) = present.difference(&versions).next() {
        return Err(format!(
            "database has schema version {unknown}, which this opsd does not know; is it newer?"
        ));
    }
    Ok(known
        .iter()
        .filter(|m| !present.contains(&m.0))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[(i64, &str)] = &[(1, "a"), (2, "b"), (3, "c")];

    #[test]
    fn what_is_missing_comes_in_version_order() {
        assert_eq!(pending(KNOWN, [2]).unwrap(), vec![(1, "a"), (3, "c")]);
        assert!(pending(KNOWN, [1, 2, 3]).unwrap().is_empty());
    }

    #[test]
    fn a_newer_database_is_refused() {
        let err = pending(KNOWN, [1, 4]).unwrap_err();
        assert!(err.contains("schema version 4"), "{err}");
    }
}
