//! The chain in two halves: events are *numbered* on the request path, in
//! the order their batches are queued, and *sealed* (hashed, checkpoints
//! signed, encoded) by the store's writer, which applies the batches in
//! that same order.
//!
//! Why split: the hash, the encoding and a checkpoint's signature are most
//! of what an event costs, and none of it needs to happen before a request
//! is answered: the answer waits for the batch to be durable, which the
//! writer makes it. What the request path must know at once it still
//! knows: each event's sequence number (an account's record holds its
//! newest, and the next event of the account links to it).

use std::sync::Arc;

use super::{AuditKey, AuditRecord, Chain, Event, EventKind, chain};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::AccountId;

/// An event with its place in the chain, not yet hashed.
#[derive(Debug)]
pub struct Unsealed {
    /// Its sequence number.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// The sequence number of its account's previous event, through which
    /// the store finds an account's events (filled in by the engine).
    pub link: Option<u64>,
    /// The event, or a checkpoint to be signed over the event before it.
    pub what: Sealing,
}

/// What an [`Unsealed`] becomes.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every one is an event: boxing it would allocate once per event"
)]
pub enum Sealing {
    /// This event.
    Event(Event),
    /// A checkpoint signing the head before it, stating `every`: the
    /// longest run of unsigned events that may follow it.
    Checkpoint {
        /// The run it allows.
        every: u64,
    },
}

impl Unsealed {
    /// The account the event concerns (a checkpoint concerns none).
    pub fn account(&self) -> Option<AccountId> {
        match &self.what {
            Sealing::Event(e) => e.account,
            Sealing::Checkpoint { .. } => None,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match &self.what {
            Sealing::Event(e) => e.kind,
            Sealing::Checkpoint { .. } => EventKind::Checkpoint,
        }
    }
}

/// Events numbered for the store, in their order: one operation's, so
/// usually one (a login writes two, and a checkpoint may follow), held
/// inline. The store's queue carries the usual one to its writer thread
/// without a heap allocation made on one thread and freed on the other
/// (docs/CAPACITY.md, "The audit trail").
pub type Numbered = smallvec::SmallVec<[Unsealed; 1]>;

impl Chain {
    /// Gives `events` their places after the head, each followed by a
    /// checkpoint when `every` events have passed since the last one (so
    /// no run of unsigned events is ever longer than `every`). Returns them
    /// and the head they lead to; the caller stores them in this order and
    /// then calls [`Chain::advance`]. The head's hash is not kept up to date
    /// here: the [`Sealer`] holds it.
    pub(crate) fn number(
        &self,
        events: impl IntoIterator<Item = Event>,
        at: Timestamp,
        every: u64,
    ) -> (Numbered, Chain) {
        let mut next = self.clone();
        let mut out = Numbered::new();
        for event in events {
            next.seq += 1;
            out.push(Unsealed {
                seq: next.seq,
                at,
                link: None,
                what: Sealing::Event(event),
            });
            next.since_checkpoint += 1;
            if every > 0 && next.since_checkpoint >= every {
                out.push(next.number_checkpoint(at, every));
            }
        }
        (out, next)
    }

    /// The next place, for a checkpoint.
    pub(crate) fn number_checkpoint(&mut self, at: Timestamp, every: u64) -> Unsealed {
        self.seq += 1;
        self.since_checkpoint = 0;
        self.last_checkpoint_at = at;
        Unsealed {
            seq: self.seq,
            at,
            link: None,
            what: Sealing::Checkpoint { every },
        }
    }
}

/// The writer's half: the head's hash and the key that signs checkpoints.
#[derive(Debug, Clone)]
pub struct Sealer {
    seq: u64,
    hash: [u8; 32],
    key: Arc<AuditKey>,
}

impl Sealer {
    /// Seals on from `head` (sequence number and hash; zeros before the first event).
    pub fn new(key: Arc<AuditKey>, head: (u64, [u8; 32])) -> Sealer {
        Sealer {
            seq: head.0,
            hash: head.1,
            key,
        }
    }

    /// The last event sealed: its sequence number and hash.
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.seq, self.hash)
    }

    /// Hashes `u` onto the head (signing it first if it is a checkpoint).
    /// Events must come in their numbered order: one out of it would fork
    /// the chain, so it is refused and the head stays.
    pub fn seal(&mut self, u: Unsealed) -> Result<AuditRecord> {
        if u.seq != self.seq + 1 {
            return Err(EngineError::Corrupt(format!(
                "audit event {} came to be sealed after event {}",
                u.seq, self.seq
            )));
        }
        let event = match u.what {
            Sealing::Event(event) => event,
            Sealing::Checkpoint { every } => {
                let signature = self.key.sign_checkpoint(self.seq, &self.hash, every);
                chain::checkpoint_event(self.seq, &self.hash, every, &signature)
            }
        };
        let hash = chain::link(&self.hash, u.seq, u.at, &event);
        let record = AuditRecord {
            seq: u.seq,
            at: u.at,
            event,
            prev: self.hash,
            hash,
        };
        self.seq = u.seq;
        self.hash = hash;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;
    use crate::secret::CodeKey;

    fn key() -> Arc<AuditKey> {
        Arc::new(AuditKey::derive(&CodeKey::new([3; 32])).unwrap())
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|_| Event {
                kind: EventKind::CodeIssued,
                outcome: EventKind::CodeIssued.outcome(),
                account: None,
                actor: Actor::default(),
                details: Default::default(),
            })
            .collect()
    }

    #[test]
    fn numbered_then_sealed_is_the_chain_sealed_at_once() {
        let key = key();
        let head = Chain::resume(None, 0);
        let mut at_once = Sealer::new(Arc::clone(&key), (0, [0; 32]));
        let (whole, _) = head.seal(events(7), Timestamp(5), &mut at_once, 3);
        let (numbered, next) = head.number(events(7), Timestamp(5), 3);
        assert_eq!(next.seq, 9, "seven events and two checkpoints");
        let mut sealer = Sealer::new(key, (0, [0; 32]));
        let sealed: Vec<AuditRecord> = numbered
            .into_iter()
            .map(|u| sealer.seal(u).unwrap())
            .collect();
        assert_eq!(sealed, whole);
        assert_eq!(sealer.head(), (9, whole[8].hash));
    }

    #[test]
    fn an_event_out_of_order_is_refused_and_the_head_stays() {
        let mut sealer = Sealer::new(key(), (0, [0; 32]));
        let (mut numbered, _) = Chain::resume(None, 0).number(events(2), Timestamp(5), 0);
        let second = numbered.pop().unwrap();
        assert!(matches!(sealer.seal(second), Err(EngineError::Corrupt(_))));
        assert_eq!(sealer.head(), (0, [0; 32]));
    }
}
