//! Account-less verification: proof that someone controls a phone number or
//! an email address, before (or without) an account.
//!
//! Such a code still needs what every code has: "only the last one sent is
//! valid", an attempt budget, single use, an owner, a send queue and
//! recovery. They come from a *holder*: an account-shaped record per
//! (client, destination), its id a keyed digest of both (so every node, and
//! a restart, finds the same one), with identity [`Identity::Destination`]
//! and the destination as its only contact. A holder claims no index key
//! (a citizen may register that phone later, or already has), is never
//! listed, counted or shown as an account, takes no part in lockout
//! (failures are bounded by the attempt budget and the send limits), and
//! is erased once its code has ended: by the sweeper on the embedded store,
//! by its record's TTL on a cluster.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::account::{Account, Current, Status};
use crate::audit::{Detail, EventKind, current_client_id};
use crate::challenge::{Challenge, ChallengeState, ChallengeStatus, Issued, Verification};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::identity::{Email, Identity, Phone};
use crate::secret::Code;
use crate::store::{Change, Changes, Durable};
use crate::terms::{Channel, DeliveryState, Locale, Purpose};

use super::Engine;
use super::codes::Issue;
use super::tx::Tx;

/// Why an ended verification cannot be cancelled or approved.
const NOT_PENDING: &str = "only a pending verification can be cancelled or approved: this one was \
                           used, replaced, cancelled, expired or out of attempts";

thread_local! {
    /// Set while this thread runs an account-less operation: only then may
    /// a client's change reach a holder (`tenancy.rs`, `admit_account`).
    static ON_HOLDERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` as an account-less operation (see [`ON_HOLDERS`]).
fn on_holders<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_HOLDERS.with(|on| on.set(self.0));
        }
    }
    let _restore = Restore(ON_HOLDERS.with(|on| on.replace(true)));
    f()
}

/// Whether this thread runs an account-less operation now.
pub(super) fn on_holders_now() -> bool {
    ON_HOLDERS.with(std::cell::Cell::get)
}

/// A phone number or an email address to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A mobile number (codes by SMS).
    Phone(Phone),
    /// An email address (codes by email).
    Email(Email),
}

impl Destination {
    /// The destination as codes are sent to it (E.164, or the address).
    pub fn as_str(&self) -> &str {
        match self {
            Destination::Phone(p) => p.as_str(),
            Destination::Email(e) => e.as_str(),
        }
    }

    /// The channel its codes take unless another is named (and the only one
    /// allowed): SMS for a phone, email for an email.
    pub fn channel(&self) -> Channel {
        match self {
            Destination::Phone(_) => Channel::Sms,
            Destination::Email(_) => Channel::Email,
        }
    }
}

/// A request for an account-less code.
#[derive(Debug, Clone)]
pub struct DestinationRequest {
    /// Where the code goes.
    pub destination: Destination,
    /// `sms` for a phone, `email` for an email; the destination's own if `None`.
    pub channel: Option<Channel>,
    /// The message's language; the server's default if `None`.
    pub locale: Option<Locale>,
    /// Shorter than the policy's lifetime, if asked.
    pub lifetime: Option<Duration>,
}

/// Which account-less challenge an operation is about: by its id, or the
/// calling client's live one to a destination.
#[derive(Debug, Clone)]
pub enum DestinationTarget {
    /// This challenge.
    Challenge(ChallengeId),
    /// The calling client's live code to this destination.
    To(Destination),
}

/// An account-less challenge as its client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStatus {
    /// Where it stands (its `account` is the holder's id: not an account).
    pub status: ChallengeStatus,
    /// The destination, in full: the client gave it.
    pub destination: String,
}

impl DestinationStatus {
    fn of(c: &Challenge, now: Timestamp) -> Self {
        DestinationStatus {
            status: c.status(now),
            destination: c.destination.to_string(),
        }
    }
}

/// What checking an account-less code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationCheck {
    /// The outcome (`Approved` carries no identity worth reading: use `status`).
    pub outcome: Verification,
    /// The challenge as the check left it.
    pub status: DestinationStatus,
}

/// How a client ends its own live account-less code without the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Cancelled: the code no longer verifies.
    Cancel,
    /// Approved: the client verified the destination another way.
    Approve,
}

impl Engine {
    /// Sends a new account-less code to `request.destination` for the
    /// calling client; its previous code to that destination dies. Every
    /// issuance limit applies (per destination, per country, overall SMS,
    /// the client's rate), charged before anything is held.
    /// Answers the code issued, and its challenge as its client reads it.
    pub fn verify_destination(
        &self,
        request: DestinationRequest,
    ) -> Result<Durable<(Issued, DestinationStatus)>> {
        let DestinationRequest {
            destination,
            channel,
            locale,
            lifetime,
        } = request;
        let channel = channel.unwrap_or(destination.channel());
        if channel != destination.channel() {
            return Err(EngineError::invalid(
                "channel",
                match destination {
                    Destination::Phone(_) => "a phone number is verified by sms",
                    Destination::Email(_) => "an email address is verified by email",
                },
            ));
        }
        self.admit_purpose(Purpose::Destination, Some(channel))?;
        let (phone, email) = match &destination {
            Destination::Phone(p) => (Some(p), None),
            Destination::Email(e) => (None, Some(e)),
        };
        self.admit_contacts(phone, email)?;
        let to = destination.as_str().to_owned();
        let id = self.holder_id(&to);
        // Everything that can refuse the code is checked before a limit is
        // spent, and the limits before anything is held: a refused request
        // costs no budget it did not use, and holds nothing (a rotation of
        // destinations leaves no holder behind).
        let (fixed, _) = self.issue_terms(Purpose::Destination, channel, &to, lifetime)?;
        let admitted = self
            .admit_issue(Purpose::Destination, channel, fixed.is_some())
            .and_then(|()| match fixed {
                Some(_) => Ok(()),
                None => self.limits.admit_accountless(id, channel, &to),
            });
        if let Err(e) = admitted {
            // A limit's refusal is a security event, as for any code.
            return Err(self.refused(id, e));
        }
        let issue = |tx: &mut Tx, now: Timestamp| {
            let issue = Issue {
                purpose: Purpose::Destination,
                channel,
                destination: to.clone(),
                lifetime,
                locale,
                document: None,
                admitted: true,
            };
            let issued = self.issue_in(tx, issue, now)?;
            let status = self.status_in(tx, issued.challenge_id, now)?;
            Ok((issued, status))
        };
        if self.remote.is_some() {
            // The slot's compare-and-set makes the holder if it is not there.
            return on_holders(|| self.mutate_holder(id, &destination, issue));
        }
        // The sweeper may erase a holder between `hold` and the change
        // (its last code ended): it is then made again.
        for _ in 0..3 {
            let created = self.hold(id, &destination);
            let outcome = on_holders(|| self.mutate(id, issue));
            match outcome {
                Err(EngineError::AccountNotFound) => continue,
                Err(e) => {
                    if let Some(created) = created {
                        // Nothing was written: the holder made for this call
                        // goes, unless another call used it since. (Two calls
                        // in one millisecond may leave it in memory with its
                        // record on disk: a start erases such holders.)
                        let dropped = self.accounts.remove_if(&id, |_, held| {
                            held.current == Current::None && held.updated_at == created
                        });
                        if dropped.is_some() {
                            self.holders.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    return Err(e);
                }
                done => return done,
            }
        }
        Err(EngineError::Storage(
            "a destination's holder was erased under this request three times in a row".into(),
        ))
    }

    /// Checks an account-less code. A code verifies at most once; a wrong
    /// one spends the challenge's attempts (never a lockout: there is no
    /// account to lock).
    pub fn check_destination(
        &self,
        target: DestinationTarget,
        code: &Code,
    ) -> Result<Durable<DestinationCheck>> {
        let (holder, challenge) = self.destination_target(&target)?;
        let checked = on_holders(|| {
            self.mutate_about(holder, challenge, |tx, now| {
                let outcome = self.check_code(tx, challenge, Purpose::Destination, code, now)?;
                let status = self.status_in(tx, challenge, now)?;
                Ok(DestinationCheck { outcome, status })
            })
        });
        match checked {
            // Its holder was erased once its last code ended: an ended code
            // answers for itself (nothing changes).
            Err(EngineError::AccountNotFound) => Ok(self.ready(DestinationCheck {
                outcome: self.ended(challenge)?,
                status: self.destination_status(challenge)?,
            })),
            other => other,
        }
    }

    /// Cancels, or approves without its code, the calling client's live
    /// account-less code. Only a live one (pending, attempts left).
    pub fn end_destination(
        &self,
        target: DestinationTarget,
        ending: Ending,
    ) -> Result<Durable<DestinationStatus>> {
        let (holder, challenge) = self.destination_target(&target)?;
        let done = on_holders(|| {
            self.mutate_about(holder, challenge, |tx, now| {
                let mut c = self
                    .challenge_in(tx, challenge)
                    .filter(|c| c.purpose == Purpose::Destination && self.may_see(c))
                    .ok_or(EngineError::ChallengeNotFound)?;
                if c.refusal(now).is_some() {
                    return Err(EngineError::WrongState(NOT_PENDING));
                }
                let kind = match ending {
                    Ending::Cancel => EventKind::CodeCancelled,
                    Ending::Approve => EventKind::CodeApprovedByClient,
                };
                let event = tx
                    .event(kind)
                    .with("purpose", c.purpose.as_str())
                    .with("challenge_id", Detail::hex(&c.id.to_bytes()))
                    .with("channel", c.channel.as_str());
                tx.record(event);
                c.state = match ending {
                    Ending::Cancel => ChallengeState::Cancelled,
                    Ending::Approve => ChallengeState::Consumed,
                };
                if let Some(message) = c.message.take() {
                    tx.remove_message(message);
                    if c.delivery != DeliveryState::Sent {
                        c.delivery = match ending {
                            // Not sent, and now never will be.
                            Ending::Cancel => DeliveryState::Dropped,
                            // Used (the client says so) before its send was reported.
                            Ending::Approve => DeliveryState::Sent,
                        };
                    }
                }
                if tx.account.current(Purpose::Destination) == Some(c.id) {
                    tx.account_mut().current.set(Purpose::Destination, None);
                }
                let status = DestinationStatus::of(&c, now);
                tx.put(c);
                Ok(status)
            })
        });
        match done {
            Err(EngineError::AccountNotFound) => {
                // Its holder was erased: the code has ended.
                self.ended(challenge)?;
                Err(EngineError::WrongState(NOT_PENDING))
            }
            other => other,
        }
    }

    /// An account-less challenge of the calling client.
    pub fn destination_status(&self, challenge: ChallengeId) -> Result<DestinationStatus> {
        let now = self.now();
        self.with_challenge(challenge, |c| {
            (c.purpose == Purpose::Destination && self.may_see(c))
                .then(|| DestinationStatus::of(c, now))
        })?
        .flatten()
        .ok_or(EngineError::ChallengeNotFound)
    }

    /// The calling client's live account-less code to `destination`, if any.
    pub fn live_destination_challenge(&self, destination: &Destination) -> Result<ChallengeId> {
        let id = self.holder_id(destination.as_str());
        let account = match &self.remote {
            Some(remote) => remote.account(id)?,
            None => self.accounts.get(&id).map(|a| Account::clone(&a)),
        };
        account
            .filter(Account::is_holder)
            .and_then(|a| a.current(Purpose::Destination))
            .ok_or(EngineError::ChallengeNotFound)
    }

    /// Challenge `id` as change `tx` leaves it (no second read).
    fn status_in(&self, tx: &Tx, id: ChallengeId, now: Timestamp) -> Result<DestinationStatus> {
        self.challenge_in(tx, id)
            .map(|c| DestinationStatus::of(&c, now))
            .ok_or(EngineError::ChallengeNotFound)
    }

    /// Why challenge `challenge`, whose holder is gone, cannot verify (an
    /// ended code); `ChallengeNotFound` if it is gone too, or somehow live.
    fn ended(&self, challenge: ChallengeId) -> Result<Verification> {
        let now = self.now();
        self.with_challenge(challenge, |c| c.refusal(now))?
            .flatten()
            .ok_or(EngineError::ChallengeNotFound)
    }

    /// The holder and challenge `target` names, if the caller may see them.
    fn destination_target(&self, target: &DestinationTarget) -> Result<(AccountId, ChallengeId)> {
        let challenge = match target {
            DestinationTarget::Challenge(id) => *id,
            DestinationTarget::To(destination) => self.live_destination_challenge(destination)?,
        };
        let holder = self
            .with_challenge(challenge, |c| {
                (c.purpose == Purpose::Destination && self.may_see(c)).then_some(c.account)
            })?
            .flatten()
            .ok_or(EngineError::ChallengeNotFound)?;
        Ok((holder, challenge))
    }

    /// The id of the calling client's holder for `destination`.
    fn holder_id(&self, destination: &str) -> AccountId {
        let client = current_client_id().map(|c| c.0).unwrap_or_default();
        AccountId(self.keys.holder_id(&client, destination))
    }

    /// A holder for `destination` with id `id`, as first made.
    pub(super) fn new_holder(&self, id: AccountId, destination: &Destination) -> Account {
        let now = self.now();
        let (phone, email) = match destination {
            Destination::Phone(p) => (Some(p.clone()), None),
            Destination::Email(e) => (None, Some(e.clone())),
        };
        Account {
            id,
            identity: Identity::Destination,
            phone,
            email,
            birth_date: None,
            postal_address: None,
            push_token: None,
            dm: None,
            locale: None,
            pin: None,
            status: Status::Active,
            lockout: Default::default(),
            created_at: now,
            updated_at: now,
            current: Current::None,
        }
    }

    /// On the embedded store: puts holder `id` in memory if it is not there
    /// (its first write stores it); answers its creation time if made now.
    fn hold(&self, id: AccountId, destination: &Destination) -> Option<Timestamp> {
        let mut created = None;
        self.accounts.entry(id).or_insert_with(|| {
            let holder = self.new_holder(id, destination);
            created = Some(holder.updated_at);
            self.holders.fetch_add(1, Ordering::Relaxed);
            Box::new(holder)
        });
        created
    }

    /// Erases holder `id` if its code has ended (no live challenge): from
    /// the store and memory, while holding its entry, so a request making
    /// a new code waits and then makes the holder again (its write cannot
    /// land between the erasure's two halves). Its challenges' records go
    /// with the sweeper.
    pub(super) fn erase_holder_if_done(&self, id: AccountId) -> Result<()> {
        if let dashmap::Entry::Occupied(entry) = self.accounts.entry(id)
            && entry.get().is_holder()
            && entry.get().current == Current::None
        {
            self.store
                .write(Changes(vec![Change::RemoveAccount(id)]))
                .map(drop)?;
            entry.remove();
            self.holders.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How long a holder's record lives on a cluster from now: past the
    /// longest code it can hold, and the records' grace.
    pub(super) fn holder_lifetime(&self) -> Duration {
        self.config
            .codes
            .for_code(Purpose::Destination, Channel::Sms)
            .lifetime
            .max(
                self.config
                    .codes
                    .for_code(Purpose::Destination, Channel::Email)
                    .lifetime,
            )
            + super::remote::CHALLENGE_GRACE
    }
}
