//! The outbox as the sender sees it: messages due now, claimed; the outcome of each send (sent, retry with backoff, dead letter, SMS-to-email fallback).

use std::time::Duration;

use crate::challenge::ChallengeState;
use crate::error::Result;
use crate::id::{AccountId, ChallengeId};
use crate::keys::Seal;
use crate::outbox::{DeadLetter, Message, Outgoing, SendResult};
use crate::secret::Code;
use crate::store::Durable;
use crate::terms::{Channel, DeliveryState, MessageId};

use super::Engine;

impl Engine {
    /// Up to `limit` messages due now, oldest first, marked in flight. Messages
    /// whose code has died (expired, superseded, used) are dropped instead:
    /// a code is never sent late.
    pub fn outbox_due(&self, limit: usize) -> Vec<Outgoing> {
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

    /// Message `id`, claimed for a sender; `None` if it is gone, or
    /// dropped because its code has died meanwhile.
    fn claim_due(&self, id: MessageId) -> Option<Outgoing> {
        let account = self.outbox.account_of(&id)?;
        let claimed = self.mutate(account, |tx, now| {
            let Some(message) = self.outbox.cloned(&id) else {
                return Ok(None);
            };
            if message.in_flight {
                return Ok(None);
            }
            if let Some(notice) = message.notice {
                // A notice lives on its own, until sent or too old to matter.
                if now >= message.expires_at {
                    tx.remove_message(id);
                    return Ok(None);
                }
                if !self.outbox.claim(&id) {
                    return Ok(None); // swept meanwhile
                }
                return Ok(Some(Outgoing {
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
                return Ok(None);
            };
            if challenge.state != ChallengeState::Live || now >= challenge.expires_at {
                tx.remove_message(id);
                challenge.message = None;
                challenge.delivery = DeliveryState::Dropped;
                tx.put(challenge);
                return Ok(None);
            }
            // Unsealed before the claim: a message that cannot be unsealed
            // must not sit in flight with no sender to report on it.
            let code = self.keys.unseal(message.seal, id, &message.sealed_code)?;
            if !self.outbox.claim(&id) {
                return Ok(None); // swept meanwhile
            }
            Ok(Some(Outgoing {
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
        // A drop that is lost in a crash is simply made again on the next start.
        claimed.ok().and_then(|d| d.peek().clone())
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
        let Some(account) = self.outbox.account_of(&id) else {
            // Dropped meanwhile (superseded, cancelled, swept): nothing to record.
            return Ok(self.ready(()));
        };
        let policy = &self.config.outbox;
        self.mutate(account, |tx, now| {
            let Some(mut message) = self.outbox.cloned(&id) else {
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
