//! Group commit, for any backend: whoever records while no commit runs writes everything queued
//! so far in one transaction; the others wait for their own outcome, or take the next turn. Every
//! caller still returns only after its own record is durable (or failed).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use anyhow::Result;

use super::{AcmeRow, Record, Stale, Unavailable};

/// Why one record of a batch was not written: `unavailable` when the database could not be
/// reached (worth a retry), `stale` when the ACME object to move with it had moved, with the
/// message.
#[derive(Clone, Debug)]
pub(super) struct Failed {
    pub unavailable: bool,
    pub stale: bool,
    pub message: String,
}

impl Failed {
    /// The failure of `e`, keeping whether it was [`Unavailable`] or [`Stale`].
    pub fn of(e: &anyhow::Error) -> Self {
        Failed {
            unavailable: e.downcast_ref::<Unavailable>().is_some(),
            stale: e.downcast_ref::<Stale>().is_some(),
            message: format!("{e:#}"),
        }
    }
}

/// A record waiting for its transaction, with the ACME object (if any) that must move with it.
pub(super) struct Queued {
    pub record: Record,
    pub then: Option<AcmeRow>,
}

/// The outcome of one queued record.
pub(super) type Outcome = std::result::Result<(), Failed>;

#[derive(Default)]
struct Queue {
    queue: Vec<(u64, Queued)>,
    done: HashMap<u64, Outcome>,
    committing: bool,
    next: u64,
}

/// Records waiting for the next transaction.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    committed: Condvar,
}

impl GroupCommit {
    /// Queue `r` (and the compare-and-swap of `then`) and return once it is committed; `commit`
    /// writes a batch in one transaction and returns an outcome per record (never holding this
    /// queue's lock).
    pub fn record(
        &self,
        r: &Record,
        then: Option<&AcmeRow>,
        commit: impl Fn(&[(u64, Queued)]) -> Vec<(u64, Outcome)>,
    ) -> Result<()> {
        let mut g = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let id = g.next;
        g.next += 1;
        g.queue.push((
            id,
            Queued {
                record: r.clone(),
                then: then.cloned(),
            },
        ));
        loop {
            if let Some(outcome) = g.done.remove(&id) {
                return outcome.map_err(|f| {
                    if f.unavailable {
                        anyhow::Error::new(Unavailable(f.message))
                    } else if f.stale {
                        anyhow::Error::new(Stale(f.message))
                    } else {
                        anyhow::anyhow!(f.message)
                    }
                });
            }
            if g.committing {
                g = self.committed.wait(g).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            g.committing = true;
            let batch = std::mem::take(&mut g.queue);
            drop(g);
            let outcomes = commit(&batch);
            g = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            g.committing = false;
            g.done.extend(outcomes);
            self.committed.notify_all();
        }
    }
}
