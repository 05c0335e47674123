//! Bugs planted in a history, to show the checker catches each: every one is what a
//! broken opsd would have recorded (a lost commit, a stream that repeats or skips, a
//! lease handed out twice, a retry applied twice, …).

use serde_json::json;

use super::record::{History, Kind, Outcome};

/// A bug and the anomaly that must report it.
pub struct Bug {
    pub name: &'static str,
    pub catches: &'static str,
}

pub const BUGS: &[Bug] = &[
    Bug {
        name: "an acknowledged update lost",
        catches: "acknowledged change lost",
    },
    Bug {
        name: "a version skipped",
        catches: "versions not gap-free and increasing",
    },
    Bug {
        name: "a watch stream delivering a change twice",
        catches: "watch repeated or reordered",
    },
    Bug {
        name: "a watch stream skipping a change",
        catches: "watch missed a change",
    },
    Bug {
        name: "a claim granted twice",
        catches: "claim granted twice",
    },
    Bug {
        name: "a refused update applied",
        catches: "refused write applied",
    },
    Bug {
        name: "a retried create applied twice",
        catches: "created twice",
    },
    Bug {
        name: "a lease handed on while still held",
        catches: "two holders of one lease",
    },
];

/// `h` with `bug` planted; `None` when `h` has nothing to plant it in.
pub fn plant(h: &History, bug: &Bug) -> Option<History> {
    let mut h = h.clone();
    match bug.catches {
        "acknowledged change lost" => {
            let (id, version) = h.calls.iter().find_map(|c| match (&c.kind, &c.outcome) {
                (Kind::Update { id, .. }, Outcome::Ok(op)) => {
                    Some((id.clone(), op["version"].as_u64()?))
                }
                _ => None,
            })?;
            let op = h.ops.iter_mut().find(|o| o.id == id)?;
            op.events.retain(|e| e.version != version);
        }
        "versions not gap-free and increasing" => {
            let op = h.ops.iter_mut().find(|o| !o.events.is_empty())?;
            let last = op.events.iter_mut().max_by_key(|e| e.seq)?;
            last.version += 1;
            op.version += 1;
        }
        "watch repeated or reordered" => {
            let watch = h.watches.iter_mut().find(|w| w.len() > 1)?;
            let again = watch[0].clone();
            watch.insert(1, again);
        }
        "watch missed a change" => {
            let watch = h.watches.iter_mut().find(|w| w.len() > 1)?;
            watch.remove(watch.len() / 2);
        }
        "claim granted twice" => {
            let granted = h
                .calls
                .iter()
                .find(|c| matches!((&c.kind, &c.outcome), (Kind::Claim, Outcome::Ok(b)) if !b.is_null()))?
                .clone();
            let mut twice = granted;
            if let Outcome::Ok(body) = &mut twice.outcome {
                body["lease_token"] = json!("another-token");
            }
            h.calls.push(twice);
        }
        "refused write applied" => {
            let call = h
                .calls
                .iter_mut()
                .find(|c| matches!((&c.kind, &c.outcome), (Kind::Update { .. }, Outcome::Ok(_))))?;
            call.outcome = Outcome::Refused {
                status: 412,
                code: "precondition_failed".into(),
            };
        }
        "created twice" => {
            let mut copy = h.ops.iter().find(|o| o.request_id.is_some())?.clone();
            copy.id = format!("{}-again", copy.id);
            h.ops.push(copy);
        }
        "two holders of one lease" => {
            // An operation granted twice: the events between the grants stay running.
            let mut grants: Vec<(String, u64)> = h
                .calls
                .iter()
                .filter_map(|c| match (&c.kind, &c.outcome) {
                    (Kind::Claim, Outcome::Ok(b)) if !b.is_null() => Some((
                        b["operation"]["id"].as_str()?.to_owned(),
                        b["operation"]["version"].as_u64()?,
                    )),
                    _ => None,
                })
                .collect();
            grants.sort();
            let (id, first, next) = grants
                .windows(2)
                .find(|p| p[0].0 == p[1].0)
                .map(|p| (p[0].0.clone(), p[0].1, p[1].1))?;
            let op = h.ops.iter_mut().find(|o| o.id == id)?;
            for e in &mut op.events {
                if e.version > first && e.version < next {
                    e.status = "running".into();
                    e.message = None;
                }
            }
        }
        _ => return None,
    }
    Some(h)
}
