//! The outbox in memory: every message not yet sent, and the order in
//! which they fall due.
//!
//! The sender asks for the messages due now many times a second, and
//! again each time a code is queued. Scanning every queued message for
//! that costs nothing while the gateways keep up, but during a gateway
//! outage the outbox holds every code waiting for its retry: a scan of
//! 100,000 messages per code queued would take the engine down with the
//! gateway. So the messages waiting to be sent are also kept in order of
//! their next attempt (`due`), and asking costs O(log n) plus what is
//! taken. A message handed to a sender (in flight) leaves that order
//! until its report puts it back (a retry) or removes it.
//!
//! Each change takes the order's lock around the map's change, so the two
//! never disagree: a message is in `due` exactly when it is in the map
//! and not in flight, under its `next_attempt_at`.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;

use crate::clock::Timestamp;
use crate::id::AccountId;
use crate::outbox::Message;
use crate::terms::MessageId;

/// A place in the order of attempts.
pub(crate) type DueKey = (Timestamp, MessageId);

/// Queued messages by id, and those waiting to be sent by due time.
#[derive(Default)]
pub(crate) struct Queue {
    messages: DashMap<MessageId, Message>,
    due: Mutex<BTreeSet<DueKey>>,
}

impl Queue {
    fn order(&self) -> MutexGuard<'_, BTreeSet<DueKey>> {
        // A panic elsewhere cannot leave the set half-changed: each change
        // is one insert or remove.
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Messages queued, in flight included.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// A copy of one message (no reference into the map is handed out:
    /// holding one while changing the queue would deadlock).
    pub(crate) fn cloned(&self, id: &MessageId) -> Option<Message> {
        self.messages.get(id).map(|m| m.clone())
    }

    /// A copy of every queued message (for `otpd migrate`).
    pub(crate) fn all(&self) -> Vec<Message> {
        self.messages.iter().map(|m| m.clone()).collect()
    }

    /// Whose message this is.
    pub(crate) fn account_of(&self, id: &MessageId) -> Option<AccountId> {
        self.messages.get(id).map(|m| m.account)
    }

    /// Adds or replaces a message; waiting (not in flight), it takes its
    /// place in the order under its next attempt.
    pub(crate) fn insert(&self, message: Message) {
        let place = (!message.in_flight).then_some((message.next_attempt_at, message.id));
        let mut order = self.order();
        if let Some(place) = place {
            order.insert(place);
        }
        if let Some(old) = self.messages.insert(message.id, message) {
            let was = (!old.in_flight).then_some((old.next_attempt_at, old.id));
            if let Some(was) = was.filter(|was| Some(*was) != place) {
                order.remove(&was);
            }
        }
    }

    /// Removes a message (sent, dropped, failed for good).
    pub(crate) fn remove(&self, id: &MessageId) -> Option<Message> {
        let mut order = self.order();
        let (_, gone) = self.messages.remove(id)?;
        if !gone.in_flight {
            order.remove(&(gone.next_attempt_at, gone.id));
        }
        Some(gone)
    }

    /// Marks a waiting message in flight (handed to a sender): it leaves
    /// the order until its report. False if it is gone or already in flight.
    pub(crate) fn claim(&self, id: &MessageId) -> bool {
        let mut order = self.order();
        let Some(mut message) = self.messages.get_mut(id) else {
            return false;
        };
        if message.in_flight {
            return false;
        }
        message.in_flight = true;
        order.remove(&(message.next_attempt_at, message.id));
        true
    }

    /// Up to `n` waiting messages due at `now`, in order of their next
    /// attempt, after `after` (the last one an earlier call returned).
    pub(crate) fn due(&self, now: Timestamp, after: Option<DueKey>, n: usize) -> Vec<DueKey> {
        let order = self.order();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        order
            .range((from, Bound::Unbounded))
            .take_while(|(at, _)| *at <= now)
            .take(n)
            .copied()
            .collect()
    }

    /// Messages waiting to be sent (not in flight), due or not.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.order().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChallengeId;
    use crate::keys::Seal;
    use crate::terms::{Channel, Locale, Purpose};

    fn message(n: u8, next_attempt_at: u64) -> Message {
        Message {
            id: MessageId([n; 16]),
            challenge: ChallengeId::NONE,
            account: AccountId([n; 16]),
            purpose: Purpose::StepUp,
            channel: Channel::Sms,
            destination: "+351912345678".into(),
            sealed_code: Vec::new(),
            seal: Seal::Aead,
            locale: Locale::Pt,
            expires_at: Timestamp(1_000_000),
            created_at: Timestamp(0),
            attempts: 0,
            next_attempt_at: Timestamp(next_attempt_at),
            in_flight: false,
            notice: None,
        }
    }

    fn ids(keys: &[DueKey]) -> Vec<u8> {
        keys.iter().map(|(_, id)| id.0[0]).collect()
    }

    #[test]
    fn due_messages_come_in_order_of_their_next_attempt_and_not_before() {
        let queue = Queue::default();
        queue.insert(message(1, 300));
        queue.insert(message(2, 100));
        queue.insert(message(3, 200));
        queue.insert(message(4, 900));
        assert_eq!(ids(&queue.due(Timestamp(300), None, 10)), [2, 3, 1]);
        assert_eq!(ids(&queue.due(Timestamp(300), None, 2)), [2, 3]);
        let first = queue.due(Timestamp(300), None, 1);
        assert_eq!(
            ids(&queue.due(Timestamp(300), first.last().copied(), 10)),
            [3, 1]
        );
        assert!(queue.due(Timestamp(99), None, 10).is_empty());
    }

    #[test]
    fn a_claimed_message_leaves_the_order_until_a_retry_puts_it_back() {
        let queue = Queue::default();
        queue.insert(message(1, 100));
        assert!(queue.claim(&MessageId([1; 16])));
        assert!(!queue.claim(&MessageId([1; 16])), "already in flight");
        assert!(queue.due(Timestamp(500), None, 10).is_empty());
        assert_eq!(queue.len(), 1, "in flight, still queued");
        // The report: a retry at 400, no longer in flight.
        let mut retry = queue.cloned(&MessageId([1; 16])).unwrap();
        retry.in_flight = false;
        retry.next_attempt_at = Timestamp(400);
        queue.insert(retry);
        assert!(queue.due(Timestamp(399), None, 10).is_empty());
        assert_eq!(ids(&queue.due(Timestamp(400), None, 10)), [1]);
        assert_eq!(queue.waiting(), 1);
    }

    #[test]
    fn replacing_or_removing_a_message_leaves_no_stale_place_in_the_order() {
        let queue = Queue::default();
        queue.insert(message(1, 100));
        queue.insert(message(1, 700)); // rescheduled while waiting
        assert_eq!(queue.waiting(), 1);
        assert!(queue.due(Timestamp(500), None, 10).is_empty());
        queue.insert(message(1, 700)); // the same again
        assert_eq!(queue.waiting(), 1);
        assert!(queue.remove(&MessageId([1; 16])).is_some());
        assert_eq!((queue.len(), queue.waiting()), (0, 0));
        assert!(queue.remove(&MessageId([1; 16])).is_none());
        queue.insert(message(2, 100));
        assert!(queue.claim(&MessageId([2; 16])));
        assert!(queue.remove(&MessageId([2; 16])).is_some());
        assert_eq!((queue.len(), queue.waiting()), (0, 0));
        assert!(!queue.claim(&MessageId([2; 16])), "gone");
    }

    #[test]
    fn with_many_messages_waiting_for_later_only_the_due_ones_come() {
        // A gateway outage: 100,000 codes wait for their retries, one is due.
        let queue = Queue::default();
        for n in 0..100_000u32 {
            let mut m = message(0, 10_000 + u64::from(n));
            m.id = MessageId(u128::from(n).to_be_bytes());
            queue.insert(m);
        }
        let mut due = message(0, 50);
        due.id = MessageId([0xff; 16]);
        queue.insert(due);
        assert_eq!(queue.due(Timestamp(9_999), None, 64).len(), 1);
        assert_eq!(queue.due(Timestamp(10_009), None, 64).len(), 11);
    }
}
