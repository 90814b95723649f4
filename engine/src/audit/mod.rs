//! The audit trail: one event for every security-relevant operation,
//! written in the same atomic batch as the change it describes, chained by
//! SHA-256 and checkpointed with Ed25519 signatures so that editing,
//! removing, reordering or forging events is detected.
//!
//! Who acted (the client, the request id, the source address) is not a
//! parameter of every engine operation: the caller sets it for the
//! duration of one synchronous engine call with [`acting`], and the events
//! that call writes carry it. Calls made outside `acting` (the sweeper, the
//! sender, offline commands) are the system's own.

mod chain;
mod detail;
mod kind;
mod seal;
mod signer;

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

pub use chain::{Break, Chain, Report, Verifier, canonical, verify};
pub use detail::{Detail, Details, Key};
pub use kind::{EventKind, Outcome};
pub use seal::{Numbered, Sealer, Sealing, Unsealed};
pub use signer::{AuditKey, AuditPublicKey};

use crate::client::ClientId;
use crate::clock::Timestamp;
use crate::id::AccountId;
use crate::idempotency::Claim;

/// Who caused an event. Its texts are shared, so every event of a request
/// carries them without copying them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The client (relying party) whose request it was.
    pub client: Option<Arc<str>>,
    /// The request's id (`x-request-id`).
    pub request_id: Option<Arc<str>>,
    /// The request's source address, as the configuration allows it kept.
    pub source_ip: Option<Arc<str>>,
    /// The request's idempotency key, if it sent one: the first batch the
    /// call writes records it (`crate::idempotency`). Never part of an event.
    pub idempotency: Option<Arc<Claim>>,
    /// The client's id: what its challenges belong to, and whose policy
    /// the call is held to. Not recorded: events name the client by `client`.
    pub client_id: Option<ClientId>,
}

/// Whether this build records the audit trail: always, except in a build
/// made with `--cfg otpd_no_audit`, which exists only to measure the
/// trail's cost against the same code without it (`scripts/audit-cost.sh`).
/// Such a build builds no events and writes none; otpd says so loudly at
/// startup and `/readyz` fails, so it cannot pass for a real one.
pub const RECORDED: bool = !cfg!(otpd_no_audit);

thread_local! {
    static ACTOR: RefCell<Option<Actor>> = const { RefCell::new(None) };
}

/// Runs `f` (one synchronous engine call) with `actor` as the cause of the
/// events it writes.
pub fn acting<T>(actor: &Actor, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Actor>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            ACTOR.with(|a| *a.borrow_mut() = previous);
        }
    }
    let previous = ACTOR.with(|a| a.borrow_mut().replace(actor.clone()));
    let _restore = Restore(previous);
    f()
}

/// The id of the client whose engine call runs on this thread; `None` for
/// the system's own (the sweeper, the sender, offline commands).
pub(crate) fn current_client_id() -> Option<ClientId> {
    ACTOR.with(|a| a.borrow().as_ref().and_then(|a| a.client_id))
}

/// The actor of the engine call running on this thread.
pub(crate) fn current_actor() -> Actor {
    ACTOR
        .with(|a| {
            a.borrow().as_ref().map(|actor| Actor {
                client: actor.client.clone(),
                request_id: actor.request_id.clone(),
                source_ip: actor.source_ip.clone(),
                idempotency: None,
                client_id: actor.client_id,
            })
        })
        .unwrap_or_default()
}

/// The idempotency claim of the engine call running on this thread.
pub(crate) fn current_claim() -> Option<Arc<Claim>> {
    ACTOR.with(|a| {
        a.borrow()
            .as_ref()
            .and_then(|actor| actor.idempotency.clone())
    })
}

/// An event before it has a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Whether it succeeded, failed or was refused.
    pub outcome: Outcome,
    /// The account it concerns, if any.
    pub account: Option<AccountId>,
    /// Who caused it.
    pub actor: Actor,
    /// The few fields that matter for the kind, sorted by key. Never a
    /// PIN, a code, a key or a whole contact. Kept inline (`detail.rs`), so
    /// building an event on the request path allocates nothing.
    pub details: Details,
}

impl Event {
    /// An event of the current actor.
    pub(crate) fn new(kind: EventKind, account: Option<AccountId>) -> Event {
        Event {
            kind,
            outcome: kind.outcome(),
            account,
            actor: if RECORDED {
                current_actor()
            } else {
                Actor::default()
            },
            details: Details::new(),
        }
    }

    /// Adds a detail. Details are kept sorted by key, so an export as a
    /// JSON object reads back in the order the hash covers.
    pub(crate) fn with(mut self, key: &'static str, value: impl Into<Detail>) -> Event {
        if !RECORDED {
            return self;
        }
        let at = self.details.partition_point(|(k, _)| k.as_ref() < key);
        self.details.insert(at, (Cow::Borrowed(key), value.into()));
        self
    }

    /// A detail's value.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One operation's events, as recorded: most operations write one,
/// held inline so that recording them allocates nothing.
pub type Events = smallvec::SmallVec<[Event; 1]>;

/// An event in the chain, as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its place: 1, 2, 3… with no gaps.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// What it says.
    pub event: Event,
    /// The hash of the event before it (zeros before the first).
    pub prev: [u8; 32],
    /// `SHA-256(prev ‖ canonical encoding)`.
    pub hash: [u8; 32],
}
