//! The outbox: each issued code's outgoing message, stored with its challenge until delivered.
//!
//! A message is written in the same batch as its challenge, so a crash can
//! never keep one without the other. The code inside is sealed with
//! ChaCha20-Poly1305 under a subkey of the code key, which is not in the
//! database (see `keys.rs`). A message is deleted once sent, dropped if its
//! code died first, and moved to a dead-letter record (without the code)
//! when it fails for good.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::document::Document;
use crate::id::{AccountId, ChallengeId};
use crate::keys::Seal;
use crate::secret::Code;
use crate::terms::{Channel, Locale, MessageId, Purpose};

/// How the outbox retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxPolicy {
    /// Sends tried before a message is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time (with jitter).
    pub backoff_first: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
    /// When SMS fails for good and the account has an email, send the code by email.
    pub sms_fallback_to_email: bool,
    /// Language when the request names none.
    pub default_locale: Locale,
    /// Channels that can deliver; codes are not issued for the others.
    pub enabled: Vec<Channel>,
    /// On a cluster: how long a node holds a message it is sending before
    /// another node may take it (longer than any send may take).
    pub lease: Duration,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_first: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            sms_fallback_to_email: false,
            default_locale: Locale::Pt,
            enabled: Channel::ALL.to_vec(),
            lease: Duration::from_secs(60),
        }
    }
}

/// A message as the outbox keeps it.
/// A notice to the citizen of a change to their account: no code, sent to
/// the account's contacts so that a change they did not make is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The citizen changed the PIN.
    PinChanged,
    /// An operator reset the PIN.
    PinReset,
    /// A phone number, email or direct-message handle was replaced (sent to the old one too).
    ContactChanged,
    /// A contact was removed (sent to the removed one too).
    ContactRemoved,
    /// An app was registered for push codes.
    PushDeviceSet,
    /// The account was locked.
    Locked,
}

impl Notice {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::PinChanged => "pin_changed",
            Notice::PinReset => "pin_reset",
            Notice::ContactChanged => "contact_changed",
            Notice::PushDeviceSet => "push_device_set",
            Notice::Locked => "locked",
            Notice::ContactRemoved => "contact_removed",
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            Notice::PinChanged => 0,
            Notice::PinReset => 1,
            Notice::ContactChanged => 2,
            Notice::PushDeviceSet => 3,
            Notice::Locked => 4,
            Notice::ContactRemoved => 5,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Notice> {
        Some(match tag {
            0 => Notice::PinChanged,
            1 => Notice::PinReset,
            2 => Notice::ContactChanged,
            3 => Notice::PushDeviceSet,
            4 => Notice::Locked,
            5 => Notice::ContactRemoved,
            _ => return None,
        })
    }
}

/// Which changes the citizen is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticePolicy {
    /// When the citizen changes the PIN.
    pub pin_changed: bool,
    /// When an operator resets it.
    pub pin_reset: bool,
    /// When a phone, email or direct-message handle is replaced, or a contact removed.
    pub contact_changed: bool,
    /// When an app is registered for push codes.
    pub push_device_set: bool,
    /// When the account is locked.
    pub locked: bool,
}

impl Default for NoticePolicy {
    fn default() -> Self {
        Self {
            pin_changed: false,
            pin_reset: true,
            contact_changed: true,
            push_device_set: false,
            locked: false,
        }
    }
}

impl NoticePolicy {
    pub(crate) fn sends(&self, notice: Notice) -> bool {
        match notice {
            Notice::PinChanged => self.pin_changed,
            Notice::PinReset => self.pin_reset,
            Notice::ContactChanged | Notice::ContactRemoved => self.contact_changed,
            Notice::PushDeviceSet => self.push_device_set,
            Notice::Locked => self.locked,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) id: MessageId,
    pub(crate) challenge: ChallengeId,
    pub(crate) account: AccountId,
    pub(crate) purpose: Purpose,
    pub(crate) channel: Channel,
    pub(crate) destination: Box<str>,
    pub(crate) sealed_code: Vec<u8>,
    /// How `sealed_code` is sealed.
    pub(crate) seal: Seal,
    pub(crate) locale: Locale,
    pub(crate) expires_at: Timestamp,
    pub(crate) created_at: Timestamp,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_at: Timestamp,
    /// Memory only: handed to a sender and not yet reported.
    pub(crate) in_flight: bool,
    /// For a notice: which. A notice has no challenge (`challenge` is
    /// [`ChallengeId::NONE`]) and no code (`sealed_code` is empty).
    pub(crate) notice: Option<Notice>,
}

/// A message to send now, with its code unsealed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The idempotency key.
    pub id: MessageId,
    /// The challenge it carries the code of ([`ChallengeId::NONE`] for a notice).
    pub challenge_id: ChallengeId,
    /// What the code is for.
    pub purpose: Purpose,
    /// How to send it.
    pub channel: Channel,
    /// Phone, email, push token, postal address, or `platform:handle` for a direct message.
    pub destination: String,
    /// The code (empty for a notice).
    pub code: Code,
    /// The message language.
    pub locale: Locale,
    /// When the code stops working.
    pub expires_at: Timestamp,
    /// Which try this is (1 for the first).
    pub attempt: u32,
    /// For a signature: the document the code approves (its message names it).
    pub document: Option<Document>,
    /// For a notice of a change (no code): which change.
    pub notice: Option<Notice>,
}

/// What a send attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// The gateway accepted it.
    Sent,
    /// A transient failure (5xx, 429, SMTP 4xx, connection error); retry.
    Retry {
        /// The gateway's own wait (`Retry-After`), if it gave one.
        after: Option<Duration>,
        /// For the dead-letter record.
        reason: String,
    },
    /// A permanent failure (4xx, SMTP 5xx); do not retry.
    Permanent {
        /// For the dead-letter record.
        reason: String,
    },
}

/// A message that failed for good, kept for inspection (without its code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message id.
    pub id: MessageId,
    /// Its challenge.
    pub challenge_id: ChallengeId,
    /// Its channel.
    pub channel: Channel,
    /// Tries made.
    pub attempts: u32,
    /// The last failure.
    pub reason: String,
    /// When it was given up.
    pub failed_at: Timestamp,
}
