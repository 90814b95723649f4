//! The outbox as the sender sees it: messages due now, claimed; the outcome of each send (sent, retry with backoff, dead letter, SMS-to-email fallback).

use std::time::Duration;

use crate::challenge::ChallengeState;
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::keys::Seal;
use crate::outbox::{DeadLetter, Message, Outgoing, SendResult};
use crate::secret::Code;
use crate::store::Durable;
use crate::terms::{Channel, DeliveryState, MessageId};

use super::Engine;
use super::remote::{Came, Entry, Remote};

/// What a sender's claim of a queued message found.
#[derive(Debug, Clone)]
enum Taken {
    /// Due and alive: send it.
    Send(Outgoing),
    /// Gone, or its code died (dropped).
    Gone,
    /// Not due before then (a cluster's entry ahead of its message).
    Later(Timestamp),
}

/// How soon a due message whose record could not be read (the cluster did
/// not answer) is tried again.
const RETRY_UNREAD: Duration = Duration::from_secs(1);

impl Engine {
    /// Up to `limit` messages due now, oldest first, marked in flight. Messages
    /// whose code has died (expired, superseded, used) are dropped instead:
    /// a code is never sent late.
    ///
    /// On a cluster: first the messages this node queued itself, then
    /// those any node queued that are due, claimed from the due indexes
    /// under a lease.
    pub fn outbox_due(&self, limit: usize) -> Vec<Outgoing> {
        if let Some(remote) = &self.remote {
            return self.outbox_due_remote(remote, limit);
        }
        let now = self.now();
        let mut outgoing = Vec::new();
        // Each message looked at leaves the due order (claimed or dropped)
        // or is passed by the cursor: the loop ends.
        let mut cursor = None;
        while outgoing.len() < limit {
            let due = self.outbox.due(now, cursor, limit - outgoing.len());
            let Some(&last) = due.last() else {
                break;
            };
            cursor = Some(last);
            for (_, id) in due {
                outgoing.extend(self.claim_due(id));
            }
        }
        outgoing
    }

    /// [`Engine::outbox_due`] on a cluster. A share of each poll is kept
    /// for claims, so retries and messages other nodes did not send are
    /// taken even while this node's own codes would fill every poll.
    fn outbox_due_remote(&self, remote: &Remote, limit: usize) -> Vec<Outgoing> {
        let now = self.now();
        let lease = self.config.outbox.lease;
        let for_claims = (limit / 4).max(1);
        let mut outgoing = Vec::new();
        let own = |outgoing: &mut Vec<Outgoing>, up_to: usize| {
            while outgoing.len() < up_to {
                let Some((entry, until)) = remote.next_handed_off(now, lease / 2) else {
                    break;
                };
                outgoing.extend(self.take_entry(remote, entry, until, Came::HandedOff));
            }
        };
        own(&mut outgoing, limit.saturating_sub(for_claims));
        if remote.time_to_claim(!outgoing.is_empty()) {
            // Counted (`otpd_cluster_errors_total`) if the cluster does not
            // answer; the next poll asks again.
            let until = now.plus(lease);
            let asked = limit - outgoing.len();
            let claimed = remote.claim_due(now, until, asked).unwrap_or_default();
            remote.claimed(claimed.len(), asked);
            for (entry, expired) in claimed {
                outgoing.extend(self.take_entry(remote, entry, until, Came::Claimed { expired }));
            }
        }
        own(&mut outgoing, limit);
        outgoing
    }

    /// The message of `entry` (leased to this node until `until`), for its
    /// sender; `None` if it is gone (its entry is removed), its code has
    /// died (it is dropped) or it is not due yet (its entry moves to when
    /// it is). A message that could not be read falls due again soon.
    fn take_entry(
        &self,
        remote: &Remote,
        entry: Entry,
        until: Timestamp,
        came: Came,
    ) -> Option<Outgoing> {
        match self.claim_message(entry.account, entry.challenge, entry.message) {
            Ok(Taken::Send(outgoing)) => {
                remote.note_sending(entry, until);
                remote.count_taken(came);
                Some(outgoing)
            }
            Ok(Taken::Gone) | Err(EngineError::AccountNotFound) => {
                remote.remove_entry(entry);
                None
            }
            Ok(Taken::Later(at)) => {
                remote.schedule_entry(entry, at);
                None
            }
            // Counted (`otpd_cluster_errors_total`).
            Err(_) => {
                remote.schedule_entry(entry, self.now().plus(RETRY_UNREAD));
                None
            }
        }
    }

    /// Message `id`, claimed for a sender; `None` if it is gone, or
    /// dropped because its code has died meanwhile.
    fn claim_due(&self, id: MessageId) -> Option<Outgoing> {
        let account = self.outbox.account_of(&id)?;
        // A drop that is lost in a crash is simply made again on the next start.
        match self.claim_message(account, None, id) {
            Ok(Taken::Send(outgoing)) => Some(outgoing),
            _ => None,
        }
    }

    /// Message `id` of `account`'s (about `challenge`, if known), for a
    /// sender; [`Taken::Gone`] if it is gone or its code has died (then it
    /// is dropped, and its challenge says so).
    fn claim_message(
        &self,
        account: AccountId,
        challenge: Option<ChallengeId>,
        id: MessageId,
    ) -> Result<Taken> {
        let claimed = self.mutate_message(account, challenge, id, |tx, now| {
            let Some(message) = self.message_in(tx, id) else {
                return Ok(Taken::Gone);
            };
            if message.in_flight {
                return Ok(Taken::Gone);
            }
            // On a cluster an entry may fall due before its message (a
            // retry's new time lost in a failover): the message decides.
            if self.remote.is_some() && message.next_attempt_at > now {
                return Ok(Taken::Later(message.next_attempt_at));
            }
            if let Some(notice) = message.notice {
                // A notice lives on its own, until sent or too old to matter.
                if now >= message.expires_at {
                    tx.remove_message(id);
                    return Ok(Taken::Gone);
                }
                if !self.claim_in_memory(id) {
                    return Ok(Taken::Gone); // swept meanwhile
                }
                return Ok(Taken::Send(Outgoing {
                    id,
                    challenge_id: ChallengeId::NONE,
                    purpose: message.purpose,
                    channel: message.channel,
                    destination: message.destination.to_string(),
                    code: Code::new(""),
                    locale: message.locale,
                    expires_at: message.expires_at,
                    attempt: message.attempts + 1,
                    document: None,
                    notice: Some(notice),
                }));
            }
            let challenge = self
                .challenge_in(tx, message.challenge)
                .filter(|c| c.message == Some(id));
            let Some(mut challenge) = challenge else {
                tx.remove_message(id);
                return Ok(Taken::Gone);
            };
            if challenge.state != ChallengeState::Live || now >= challenge.expires_at {
                tx.remove_message(id);
                challenge.message = None;
                challenge.delivery = DeliveryState::Dropped;
                tx.put(challenge);
                return Ok(Taken::Gone);
            }
            // Unsealed before the claim: a message that cannot be unsealed
            // must not sit in flight with no sender to report on it.
            let code = self.keys.unseal(message.seal, id, &message.sealed_code)?;
            if !self.claim_in_memory(id) {
                return Ok(Taken::Gone); // swept meanwhile
            }
            Ok(Taken::Send(Outgoing {
                id,
                challenge_id: message.challenge,
                purpose: message.purpose,
                channel: message.channel,
                destination: message.destination.to_string(),
                code,
                locale: message.locale,
                expires_at: message.expires_at,
                attempt: message.attempts + 1,
                document: challenge.document.as_deref().cloned(),
                notice: None,
            }))
        });
        Ok(claimed?.peek().clone())
    }

    /// Marks message `id` in flight in this node's queue (embedded); on a
    /// cluster the lease on its entry is the mark.
    fn claim_in_memory(&self, id: MessageId) -> bool {
        self.remote.is_some() || self.outbox.claim(&id)
    }

    /// Records what a send came to: sent, retry later (with backoff and
    /// jitter, honouring the gateway's wait), or failed for good (dead letter,
    /// and the optional SMS-to-email fallback).
    ///
    /// "Sent" for a code is kept in memory and reaches the store with the
    /// challenge's next write (or at shutdown): it costs no write of its
    /// own. A crash before then costs one resend of the same code, while it
    /// is still valid, and its status reads "queued" until that resend.
    pub fn outbox_report(&self, id: MessageId, result: SendResult) -> Result<Durable<()>> {
        let held = match &self.remote {
            // Not this node's (or claimed before its restart): the lease
            // runs out and the message is sent again, by the same id.
            Some(remote) => match remote.reported(id) {
                // Past its lease another node may hold the message: only a
                // send that went out is recorded (the other node's report
                // then finds it gone); a retry or failure is that node's to
                // report, not rescheduled or dead-lettered twice.
                Some((_, until)) if self.now() >= until && !matches!(result, SendResult::Sent) => {
                    None
                }
                held => held.map(|(e, _)| (e.account, e.challenge)),
            },
            None => self.outbox.account_of(&id).map(|account| (account, None)),
        };
        let Some((account, challenge)) = held else {
            // Dropped meanwhile (superseded, cancelled, swept): nothing to record.
            return Ok(self.ready(()));
        };
        let policy = &self.config.outbox;
        self.mutate_message(account, challenge, id, |tx, now| {
            let Some(mut message) = self.message_in(tx, id) else {
                return Ok(());
            };
            message.in_flight = false;
            message.attempts += 1;
            let challenge = self
                .challenge_in(tx, message.challenge)
                .filter(|c| c.message == Some(id));
            let reason = match &result {
                SendResult::Sent => {
                    let Some(mut c) = challenge else {
                        tx.remove_message(id);
                        return Ok(());
                    };
                    if self.remote.is_some() {
                        // A cluster node keeps nothing in memory: "sent"
                        // is written now (the change drops the message).
                        c.delivery = DeliveryState::Sent;
                        tx.put(c);
                        return Ok(());
                    }
                    // Not written: memory knows at once, the store with the
                    // challenge's next write (see `settle_sent`). A crash
                    // before that costs a resend of the same, still valid
                    // code; never a lost or reusable one.
                    self.outbox.remove(&id);
                    if let Some(mut held) = self.challenges.get_mut(&c.id) {
                        held.delivery = DeliveryState::Sent;
                    }
                    return Ok(());
                }
                SendResult::Retry { after, .. } if message.attempts < policy.max_attempts => {
                    let wait = after.unwrap_or_else(|| self.backoff(message.attempts));
                    message.next_attempt_at = now.plus(wait);
                    tx.put_message(message);
                    return Ok(());
                }
                SendResult::Retry { reason, .. } => {
                    format!("gave up after {} attempts: {reason}", message.attempts)
                }
                SendResult::Permanent { reason } => reason.clone(),
            };
            tx.remove_message(id);
            tx.dead.push(DeadLetter {
                id,
                challenge_id: message.challenge,
                channel: message.channel,
                attempts: message.attempts,
                reason,
                failed_at: now,
            });
            let Some(mut c) = challenge else {
                return Ok(());
            };
            c.message = None;
            c.delivery = DeliveryState::Failed;
            let fallback = policy.sms_fallback_to_email
                && message.channel == Channel::Sms
                && c.state == ChallengeState::Live
                && now < c.expires_at;
            if let (true, Some(email)) = (fallback, tx.account.email.clone()) {
                let code = self.keys.unseal(message.seal, id, &message.sealed_code)?;
                let new_id = MessageId(self.random());
                c.channel = Channel::Email;
                c.destination = email.as_str().into();
                c.delivery = DeliveryState::Queued;
                c.message = Some(new_id);
                tx.put_message(Message {
                    id: new_id,
                    channel: Channel::Email,
                    destination: email.as_str().into(),
                    sealed_code: self.keys.seal(new_id, &code),
                    seal: Seal::Aead,
                    attempts: 0,
                    next_attempt_at: now,
                    in_flight: false,
                    created_at: now,
                    ..message
                });
            }
            tx.put(c);
            Ok(())
        })
    }

    /// Writes every delivery report that memory holds and the store does
    /// not yet (for a clean shutdown: a restart then resends nothing). A
    /// report of a sent code is otherwise written with its challenge's next
    /// change (the verify, mostly), so a step-up flow makes two writes, not
    /// three. One write per such challenge, each made while its account is
    /// held, so none can overtake a newer change of the same challenge.
    pub(super) fn settle_sent(&self) -> Result<()> {
        let unsettled: Vec<(AccountId, ChallengeId)> = self
            .challenges
            .iter()
            .filter(|c| c.sent_unrecorded().is_some())
            .map(|c| (c.account, c.id))
            .collect();
        for (account, id) in unsettled {
            let settled = self.mutate(account, |tx, _| {
                if let Some(c) = self.challenge_in(tx, id)
                    && c.sent_unrecorded().is_some()
                {
                    tx.put(c);
                }
                Ok(())
            });
            match settled {
                Ok(written) => drop(written),
                // Gone meanwhile (an account erased): nothing to settle.
                Err(crate::error::EngineError::AccountNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The wait before retry `attempt`: `first · 2^(attempt-1)`, capped, less
    /// up to half at random so retries from many messages spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let policy = &self.config.outbox;
        let doublings = attempt.saturating_sub(1).min(31);
        let full = policy
            .backoff_first
            .saturating_mul(1u32 << doublings)
            .min(policy.backoff_max);
        let [r0, r1, r2, r3] = self.random::<4>();
        let fraction = f64::from(u32::from_le_bytes([r0, r1, r2, r3])) / f64::from(u32::MAX);
        full.mul_f64(1.0 - fraction / 2.0)
    }

    /// Messages that failed for good, newest last.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        // Read from the store, and the sender does not wait for its reports
        // to be written: let every queued write land first, so a message
        // already shown as failed is listed here too.
        self.store.flush()?;
        let mut all = Vec::new();
        self.store.scan_dead_letters(&mut |d| {
            all.push(d);
            Ok(())
        })?;
        all.sort_by_key(|d| d.failed_at);
        Ok(all)
    }
}
