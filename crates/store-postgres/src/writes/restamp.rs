//! The batch's answers and changes moved to the stamp the write flight gave it.
//!
//! A batch decides with its own time `t0`, read before it held the feed head. If another
//! process committed a later stamp in between, the head (`feed::ADVANCE_SQL`) gives the
//! batch that later stamp instead (migration 0012), and the flight's statements write
//! every time equal to `t0` as the head's stamp (`feed::restamped`), so that times never
//! go backwards in seq order. The same rule is applied here to what the callers and the
//! feed are told, so that they see what was stored. It is exact because the write flight
//! only restamps when `t0` is later than every time the batch carried over.

use opsd_domain::Operation;
use time::OffsetDateTime;

/// Moves every time of `op` equal to `from` to `to`. The lease's expiry (answered
/// beside the operation) is left as decided, as the write flight leaves it.
pub fn operation(op: &mut Operation, from: OffsetDateTime, to: OffsetDateTime) {
    let at = |t: &mut OffsetDateTime| {
        if *t == from {
            *t = to;
        }
    };
    at(&mut op.created_at);
    at(&mut op.updated_at);
    for t in [&mut op.started_at, &mut op.ended_at].into_iter().flatten() {
        at(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsd_domain::{Kind, NewOperation, OpType};

    #[test]
    fn only_the_times_the_batch_set_move() {
        let earlier = opsd_domain::now() - time::Duration::seconds(5);
        let t0 = earlier + time::Duration::seconds(1);
        let head = t0 + time::Duration::milliseconds(3);
        let new = NewOperation::new("p", Kind::Vm, OpType::Create, "vm-1");
        let mut op = new.into_operation(uuid::Uuid::now_v7(), earlier);
        op.started_at = Some(earlier);
        op.ended_at = Some(t0);
        op.updated_at = t0;
        operation(&mut op, t0, head);
        assert_eq!(op.created_at, earlier, "carried over: stays");
        assert_eq!(op.started_at, Some(earlier), "carried over: stays");
        assert_eq!(op.ended_at, Some(head), "set by the batch: moves");
        assert_eq!(op.updated_at, head, "set by the batch: moves");
    }
}
