//! Between the two round trips: every write of the batch decided in Rust, in batch order,
//! by the shared rules (`opsd_store::rules`, the calls the SQLite backend makes), against
//! the rows the batch read. A later write sees what an earlier one of the same batch did
//! (the rows are updated here as the writes are decided). A write the rules refuse
//! changes nothing and never reaches the database.
//!
//! Keys and console sessions are the exception: their statements are conditional on
//! what the database holds (the first key only if none exists; a session only while its
//! key is live), so they go to the write flight as they are and are answered from it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use opsd_domain::lease::ClaimRequest;
use opsd_domain::{NewOperation, Operation};
use opsd_store::{Claimed, Created, Renewed, Result, StoreError, rules};
use time::OffsetDateTime;
use uuid::Uuid;

use super::load::{ClaimFilter, Current, Loaded, Requests};
use opsd_store::write::{Write, Written};

/// How a write is answered.
pub enum Answer {
    /// Decided here (boxed: a written operation is large, a key answer small).
    Ready(Box<Result<Written>>),
    /// Decided by the database: the write's statement is in [`Decided::keys`], in the
    /// same order as these answers.
    Key,
}

fn ready(result: Result<Written>) -> Answer {
    Answer::Ready(Box::new(result))
}

/// A batch, decided.
pub struct Decided<'w> {
    /// The time stamped on every change (the write flight may move it to a later feed
    /// head's stamp: `writes::restamp`).
    pub now: OffsetDateTime,
    /// See [`Loaded::may_restamp`].
    pub may_restamp: bool,
    /// One answer per write, in batch order.
    pub answers: Vec<Answer>,
    /// Every row read or created, as the batch leaves it.
    pub rows: HashMap<Uuid, Current>,
    /// Operations to insert (ids, in creation order) with their fingerprints.
    pub inserts: Vec<(Uuid, Option<Vec<u8>>)>,
    /// The ids of `inserts`, to look up.
    created: HashSet<Uuid>,
    /// Existing operations changed (ids, in the order first changed).
    pub dirty: Vec<Uuid>,
    /// The events, in the order their seqs are assigned.
    pub events: Vec<Arc<Operation>>,
    /// Operations to delete with their events (retention).
    pub purge: Vec<Uuid>,
    /// Key and session writes, for the write flight.
    pub keys: Vec<&'w Write>,
}

impl Decided<'_> {
    /// Whether `id` is an operation this batch creates (its seq is still its creation
    /// event's place in the batch).
    pub fn is_new(&self, id: Uuid) -> bool {
        self.created.contains(&id)
    }

    /// Whether the batch changes nothing in the database.
    pub fn is_read_only(&self) -> bool {
        self.inserts.is_empty()
            && self.dirty.is_empty()
            && self.events.is_empty()
            && self.purge.is_empty()
            && self.keys.is_empty()
    }
}

/// Decides every write of the batch.
pub fn decide<'w>(writes: &[&'w Write], loaded: Loaded) -> Result<Decided<'w>> {
    let Loaded {
        now,
        may_restamp,
        rows,
        mut requests,
        claimable,
        expiring,
        purgeable,
    } = loaded;
    let mut d = Decided {
        now,
        may_restamp,
        answers: Vec::with_capacity(writes.len()),
        rows,
        inserts: Vec::new(),
        created: HashSet::new(),
        dirty: Vec::new(),
        events: Vec::new(),
        purge: Vec::new(),
        keys: Vec::new(),
    };
    let mut expiring = expiring.into_iter();
    let mut purgeable = purgeable.into_iter();
    let mut claimed = HashSet::new();
    for &write in writes {
        let answer = match write {
            Write::Create(new) => ready(d.create(new, &mut requests).map(Written::Created)),
            Write::Update { id, patch, pre } => ready(
                d.change(*id, |cur, now| {
                    let u = rules::update(&cur.op, cur.lease.as_ref(), patch, pre, now)?;
                    if u.release_lease {
                        cur.lease = None;
                    }
                    Ok(Some(u.next))
                })
                .map(Written::Updated),
            ),
            Write::Cancel(id) => ready(
                d.change(*id, |cur, now| {
                    Ok(opsd_domain::cancel::cancel(&cur.op, now)?)
                })
                .map(Written::Updated),
            ),
            Write::Heartbeat { id, heartbeat } => {
                let mut expires = None;
                let changed = d.change(*id, |cur, now| {
                    let beat = rules::heartbeat(&cur.op, cur.lease.as_ref(), heartbeat, now)?;
                    expires = Some(beat.renewed.expires_at);
                    cur.lease = Some(beat.renewed);
                    Ok(beat.next)
                });
                ready(changed.and_then(|operation| {
                    let lease_expires_at = expires
                        .ok_or(StoreError::Internal("a heartbeat renewed no lease".into()))?;
                    Ok(Written::Renewed(Renewed {
                        operation,
                        lease_expires_at,
                    }))
                }))
            }
            Write::Claim(request) => ready(
                d.claim(request, &claimable, &mut claimed)
                    .map(Written::Claimed),
            ),
            Write::ExpireLeases { .. } => {
                let ids = expiring.next().unwrap_or_default();
                ready(Ok(Written::Expired(d.expire(&ids))))
            }
            Write::Delete(id) => ready(d.delete(*id).map(|()| Written::Purged(1))),
            Write::Purge { .. } => {
                let ids = purgeable.next().unwrap_or_default();
                // A row this batch changed is no longer what retention picked.
                let before = d.purge.len();
                d.purge
                    .extend(ids.into_iter().filter(|id| !d.dirty.contains(id)));
                ready(Ok(Written::Purged((d.purge.len() - before) as u64)))
            }
            Write::CreateKey { .. }
            | Write::RevokeKey(_)
            | Write::CreateSession { .. }
            | Write::EndSession { .. } => {
                d.keys.push(write);
                Answer::Key
            }
            // PostgreSQL's readiness asks the database directly; a probe write has
            // nothing to prove that the batch's own COMMIT does not.
            Write::Probe => ready(Ok(Written::Done)),
        };
        d.answers.push(answer);
    }
    Ok(d)
}

impl Decided<'_> {
    /// A create, or the replay of the operation an identical earlier request created
    /// (in an earlier batch or earlier in this one).
    ///
    /// The new operation's seq is its creation event's, which only the write flight
    /// learns (`feed::ADVANCE_SQL`): until then it holds the event's place in the batch,
    /// counted from 1, and [`Decided::is_new`] tells it apart (`super::finish`).
    fn create(&mut self, new: &NewOperation, requests: &mut Requests) -> Result<Created> {
        let hash = rules::request_hash(new);
        let key = new
            .request_id
            .as_ref()
            .map(|r| (new.project_id.clone(), r.clone()));
        let existing = key.as_ref().and_then(|k| requests.get(k)).cloned();
        if let Some(id) = rules::idempotent_replay(new, hash.as_deref(), existing)? {
            let operation = self
                .rows
                .get(&id)
                .map(|cur| cur.op.clone())
                .ok_or(StoreError::NotFound(id))?;
            return Ok(Created {
                operation,
                created: false,
            });
        }
        let mut op = new.clone().into_operation(Uuid::now_v7(), self.now);
        op.seq = self.events.len() as u64 + 1;
        if let Some(key) = key {
            requests.insert(key, (op.id, hash.clone()));
        }
        self.inserts.push((op.id, hash));
        self.created.insert(op.id);
        self.events.push(Arc::new(op.clone()));
        self.rows.insert(
            op.id,
            Current {
                op: op.clone(),
                lease: None,
            },
        );
        Ok(Created {
            operation: op,
            created: true,
        })
    }

    /// Applies `decide` to operation `id`: it may change the lease in place and returns
    /// the operation's next version, if there is one (`None`: no new version, no event).
    /// Answers the operation as it then stands.
    fn change(
        &mut self,
        id: Uuid,
        decide: impl FnOnce(&mut Current, OffsetDateTime) -> Result<Option<Operation>>,
    ) -> Result<Operation> {
        let now = self.now;
        let cur = self.rows.get_mut(&id).ok_or(StoreError::NotFound(id))?;
        // Decided on a copy, so a refused write leaves the row as it was.
        let mut next = Current {
            op: cur.op.clone(),
            lease: cur.lease.clone(),
        };
        let version = decide(&mut next, now)?;
        if let Some(op) = version {
            next.op = op;
            self.events.push(Arc::new(next.op.clone()));
        }
        let answer = next.op.clone();
        *cur = next;
        self.mark_dirty(id);
        Ok(answer)
    }

    /// Deletes a finished operation with its events, as retention does. The row leaves
    /// the batch's rows, so a later write of the batch finds no such operation.
    fn delete(&mut self, id: Uuid) -> Result<()> {
        let cur = self.rows.get(&id).ok_or(StoreError::NotFound(id))?;
        opsd_domain::check_deletable(cur.op.status)?;
        if self.dirty.contains(&id) {
            // Written earlier in this same batch: deleting it too would race that write.
            return Err(StoreError::Unavailable(
                "the operation changed at the same moment; retry".into(),
            ));
        }
        self.rows.remove(&id);
        self.purge.push(id);
        Ok(())
    }

    fn mark_dirty(&mut self, id: Uuid) {
        if !self.dirty.contains(&id) && !self.is_new(id) {
            self.dirty.push(id);
        }
    }

    /// Claims the oldest candidate that still matches (an earlier write of the batch may
    /// have claimed or moved it).
    fn claim(
        &mut self,
        request: &ClaimRequest,
        claimable: &HashMap<ClaimFilter, Vec<Uuid>>,
        claimed: &mut HashSet<Uuid>,
    ) -> Result<Option<Claimed>> {
        let candidates = claimable
            .get(&ClaimFilter::of(request))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(&id) = candidates.iter().find(|id| {
            !claimed.contains(*id)
                && self
                    .rows
                    .get(*id)
                    .is_some_and(|cur| request.statuses.contains(&cur.op.status))
        }) else {
            return Ok(None);
        };
        let mut grant = None;
        let operation = self.change(id, |cur, now| {
            let claim = rules::claim(&cur.op, request, now)?;
            cur.lease = Some(claim.lease);
            grant = Some(claim.token);
            Ok(Some(claim.next))
        })?;
        claimed.insert(id);
        let lease = self.rows.get(&id).and_then(|cur| cur.lease.as_ref());
        match (grant, lease) {
            (Some(lease_token), Some(lease)) => Ok(Some(Claimed {
                lease_expires_at: lease.expires_at,
                operation,
                lease_token,
            })),
            _ => Err(StoreError::Internal("a claim granted no lease".into())),
        }
    }

    /// Moves the operations whose lease ran out to `unknown`, dropping the lease. A
    /// lease renewed earlier in this batch is no longer expired and is left alone.
    fn expire(&mut self, ids: &[Uuid]) -> Vec<Operation> {
        let now = self.now;
        let mut expired = Vec::new();
        for &id in ids {
            let Some(held) = self
                .rows
                .get(&id)
                .and_then(|cur| cur.lease.clone())
                .filter(|held| held.expires_at <= now)
            else {
                continue;
            };
            let mut unknown = None;
            // The closure never refuses, so there is nothing to answer here.
            let _ = self.change(id, |cur, now| {
                cur.lease = None;
                match rules::expire(&cur.op, &held, now) {
                    Ok(next) => {
                        unknown = Some(next.clone());
                        Ok(Some(next))
                    }
                    // Logged, and the stale lease dropped rather than retried forever.
                    Err(e) => {
                        tracing::error!(%id, error = %e, "expired lease on an operation that cannot become unknown");
                        Ok(None)
                    }
                }
            });
            expired.extend(unknown);
        }
        expired
    }
}
