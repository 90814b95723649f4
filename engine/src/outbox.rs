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
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_first: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            sms_fallback_to_email: false,
            default_locale: Locale::Pt,
            enabled: vec![Channel::Sms, Channel::Email, Channel::Push, Channel::Letter],
        }
    }
}

/// A message as the outbox keeps it.
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
}

/// A message to send now, with its code unsealed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The idempotency key.
    pub id: MessageId,
    /// The challenge it carries the code of.
    pub challenge_id: ChallengeId,
    /// What the code is for.
    pub purpose: Purpose,
    /// How to send it.
    pub channel: Channel,
    /// Phone, email, push token or postal address.
    pub destination: String,
    /// The code.
    pub code: Code,
    /// The message language.
    pub locale: Locale,
    /// When the code stops working.
    pub expires_at: Timestamp,
    /// Which try this is (1 for the first).
    pub attempt: u32,
    /// For a signature: the document the code approves (its message names it).
    pub document: Option<Document>,
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
