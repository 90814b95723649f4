//! The outbox: each issued code's outgoing message, stored with its challenge until delivered.
//!
//! A message is written in the same sled batch as its challenge, so a crash
//! can never keep one without the other. The code inside is sealed: XORed
//! with `HMAC-SHA-256(key, "otpd-outbox" ‖ message id)`, a one-time pad from
//! a PRF keyed by the code key, which is not in the database. A message is
//! deleted once sent, dropped if its code died first, and moved to a
//! dead-letter record (without the code) when it fails for good.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::secret::{Code, CodeKey};
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

fn pad(key: &CodeKey, id: MessageId) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(b"otpd-outbox");
    mac.update(&id.0);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Seals a code of at most 32 bytes for storage.
pub(crate) fn seal(key: &CodeKey, id: MessageId, code: &Code) -> Vec<u8> {
    let pad = pad(key, id);
    code.expose().bytes().zip(pad).map(|(c, p)| c ^ p).collect()
}

/// Opens a sealed code.
pub(crate) fn unseal(key: &CodeKey, id: MessageId, sealed: &[u8]) -> Result<Code> {
    let pad = pad(key, id);
    let bytes: Vec<u8> = sealed.iter().zip(pad).map(|(c, p)| c ^ p).collect();
    String::from_utf8(bytes).map(Code::new).map_err(|_| {
        EngineError::Corrupt("an outbox message does not open with this code key".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_codes_open_only_with_their_key_and_id() {
        let key = CodeKey::new([1; 32]);
        let id = MessageId([2; 16]);
        let sealed = seal(&key, id, &Code::new("ABCDEFGHJK"));
        assert_ne!(sealed, b"ABCDEFGHJK");
        assert_eq!(unseal(&key, id, &sealed).unwrap().expose(), "ABCDEFGHJK");
        let other = unseal(&CodeKey::new([3; 32]), id, &sealed);
        assert!(other.map(|c| c.expose() != "ABCDEFGHJK").unwrap_or(true));
        let other_id = unseal(&key, MessageId([4; 16]), &sealed);
        assert!(other_id.map(|c| c.expose() != "ABCDEFGHJK").unwrap_or(true));
    }
}
