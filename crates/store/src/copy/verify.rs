//! Verification of a copy: a fingerprint of each store, read through the same `Store`
//! calls the API serves from, so that two stores agree when what they serve agrees.

use opsd_domain::{ListFilter, PageRequest, Sort};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Counts;
use crate::{Result, Store, StoreError};

/// What verification compares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fingerprint {
    /// Operations, events and keys.
    pub counts: Counts,
    /// SHA-256 over every operation as it is rendered (JSON), with its history (without
    /// event seqs, which a copy renumbers), in id order.
    pub sha256: String,
}

/// The fingerprint of a store, read through the same [`Store`] calls the API serves
/// from: every project, every page of its operations, every operation's history.
pub async fn fingerprint(store: &dyn Store, counts: Counts) -> Result<Fingerprint> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut operations = Vec::new();
    for project in store.projects().await? {
        let filter = ListFilter {
            project_id: project.project_id.clone(),
            ..ListFilter::default()
        };
        let mut cursor = None;
        loop {
            let page = store
                .list(
                    &filter,
                    &Sort::default(),
                    &PageRequest {
                        cursor,
                        limit: 100,
                        count_total: false,
                    },
                )
                .await?;
            operations.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    // Histories are read several at a time: one round trip each on PostgreSQL.
    let mut lines: Vec<(Uuid, Vec<u8>)> = futures_util::stream::iter(operations)
        .map(|op| async move {
            // Seqs are the store's own numbering, renumbered by a copy.
            let mut rendered = serde_json::to_value(&op).map_err(internal)?;
            if let Some(fields) = rendered.as_object_mut() {
                fields.remove("seq");
            }
            let mut line = serde_json::to_vec(&rendered).map_err(internal)?;
            for e in store.events(op.id).await? {
                let event = serde_json::json!([
                    e.version,
                    e.status,
                    e.progress,
                    e.status_message,
                    opsd_domain::micros(e.at),
                ]);
                line.extend(serde_json::to_vec(&event).map_err(internal)?);
            }
            Ok::<_, StoreError>((op.id, line))
        })
        .buffered(16)
        .try_collect()
        .await?;
    lines.sort_by_key(|l| l.0);
    let mut hasher = Sha256::new();
    for (_, line) in &lines {
        hasher.update(line);
        hasher.update(b"\n");
    }
    if lines.len() as u64 != counts.operations {
        return Err(StoreError::Internal(format!(
            "{} operations listed, {} stored",
            lines.len(),
            counts.operations
        )));
    }
    Ok(Fingerprint {
        counts,
        sha256: hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

fn internal(e: serde_json::Error) -> StoreError {
    StoreError::Internal(format!("rendering for verification: {e}"))
}
