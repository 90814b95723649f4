//! Challenges: one issued code, what it is for, where it went, and how it ended.

use crate::account::AccountState;
use crate::client::ClientId;
use crate::clock::Timestamp;
use crate::document::Document;
use crate::id::{AccountId, ChallengeId};
use crate::identity::Identity;
use crate::keys::MacKey;
use crate::secret::{Code, CodeMac};
use crate::terms::{Channel, DeliveryState, Locale, MessageId, Purpose};

/// How a challenge stands apart from time and attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeState {
    Live,
    Consumed,
    Superseded,
    /// Ended by its client before use (account-less codes only).
    Cancelled,
}

/// One issued code, as the engine keeps it: never the code itself.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    pub(crate) id: ChallengeId,
    pub(crate) account: AccountId,
    pub(crate) purpose: Purpose,
    pub(crate) channel: Channel,
    pub(crate) destination: Box<str>,
    pub(crate) mac: CodeMac,
    /// Which key made `mac`.
    pub(crate) mac_key: MacKey,
    /// For a signature: the document the code approves (its hash is in `mac`).
    pub(crate) document: Option<Box<Document>>,
    pub(crate) created_at: Timestamp,
    pub(crate) expires_at: Timestamp,
    pub(crate) attempts: u8,
    pub(crate) max_attempts: u8,
    pub(crate) state: ChallengeState,
    pub(crate) delivery: DeliveryState,
    /// Its outgoing message while one is queued.
    pub(crate) message: Option<MessageId>,
    /// The language its message was written in.
    pub(crate) locale: Locale,
    /// The client that asked for it: no other client sees it. `None` for
    /// the system's and for those made before challenges had owners.
    pub(crate) client: Option<ClientId>,
}

impl Challenge {
    /// The message of a code reported sent whose report the store has not
    /// yet seen (it learns it with the challenge's next write; see
    /// `Engine::outbox_report`): the store still holds that message.
    pub(crate) fn sent_unrecorded(&self) -> Option<MessageId> {
        self.message
            .filter(|_| self.delivery == DeliveryState::Sent)
    }

    /// Why this challenge cannot verify at `now`, checked in a fixed order.
    pub(crate) fn refusal(&self, now: Timestamp) -> Option<Verification> {
        match self.state {
            ChallengeState::Consumed => Some(Verification::AlreadyUsed),
            ChallengeState::Superseded => Some(Verification::Superseded),
            ChallengeState::Cancelled => Some(Verification::Cancelled),
            ChallengeState::Live if now >= self.expires_at => Some(Verification::Expired),
            ChallengeState::Live if self.attempts >= self.max_attempts => {
                Some(Verification::Exhausted)
            }
            ChallengeState::Live => None,
        }
    }

    pub(crate) fn status(&self, now: Timestamp) -> ChallengeStatus {
        let state = match self.refusal(now) {
            None => ChallengeStatusKind::Pending,
            Some(Verification::AlreadyUsed) => ChallengeStatusKind::Verified,
            Some(Verification::Superseded) => ChallengeStatusKind::Superseded,
            Some(Verification::Expired) => ChallengeStatusKind::Expired,
            Some(Verification::Cancelled) => ChallengeStatusKind::Cancelled,
            Some(_) => ChallengeStatusKind::Exhausted,
        };
        ChallengeStatus {
            id: self.id,
            account: self.account,
            purpose: self.purpose,
            channel: self.channel,
            masked_destination: mask_destination(self.channel, &self.destination),
            created_at: self.created_at,
            expires_at: self.expires_at,
            attempts_remaining: u32::from(self.max_attempts.saturating_sub(self.attempts)),
            state,
            delivery: self.delivery,
            document: self.document.as_deref().cloned(),
        }
    }
}

pub(crate) fn mask_destination(channel: Channel, destination: &str) -> String {
    match channel {
        Channel::Sms => crate::identity::Phone::parse(destination)
            .map(|p| p.masked())
            .unwrap_or_else(|_| "***".into()),
        Channel::Email => crate::identity::Email::parse(destination)
            .map(|e| e.masked())
            .unwrap_or_else(|_| "***".into()),
        Channel::Push => "registered app".into(),
        Channel::Letter => "postal address on file".into(),
        Channel::Dm => crate::identity::DmHandle::from_destination(destination)
            .map(|d| d.masked())
            .unwrap_or_else(|_| "***".into()),
    }
}

/// A code just issued: what delivery needs, and what the caller may show.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The new challenge.
    pub challenge_id: ChallengeId,
    /// Whose it is.
    pub account_id: AccountId,
    /// What it is for.
    pub purpose: Purpose,
    /// How it is sent.
    pub channel: Channel,
    /// Where it is sent, in full (phone, email, push token or postal address): for delivery only.
    pub destination: String,
    /// Where it is sent, masked for display.
    pub masked_destination: String,
    /// When it stops being valid.
    pub expires_at: Timestamp,
    /// The code, for delivery only; never returned to API callers.
    pub code: Code,
    /// The outgoing message queued for it.
    pub message_id: MessageId,
    /// For a signature: the document the code is bound to.
    pub document: Option<Box<Document>>,
}

/// The outcome of presenting a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The code was right; the challenge is now used up.
    Approved(Approval),
    /// The code was wrong; this many attempts remain on the challenge.
    WrongCode {
        /// Attempts left on this challenge.
        attempts_remaining: u32,
    },
    /// The challenge is past its lifetime.
    Expired,
    /// A newer code for the same purpose was issued; only the last is valid.
    Superseded,
    /// The challenge used up its attempts.
    Exhausted,
    /// The code was already used.
    AlreadyUsed,
    /// Its client cancelled the challenge (account-less codes only).
    Cancelled,
    /// The account is locked; the code was not even checked.
    Locked,
}

/// Who was approved, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The account.
    pub account_id: AccountId,
    /// Its identity.
    pub identity: Identity,
    /// The challenge's purpose.
    pub purpose: Purpose,
    /// The account's state once the code was accepted (an activation code
    /// leaves it `Active`), so callers need not read the account again.
    pub state: AccountState,
    /// How the code reached the citizen.
    pub channel: Channel,
    /// For a signature: the document the citizen approved.
    pub document: Option<Document>,
}

/// Where a challenge stands, for status reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeStatus {
    /// The challenge.
    pub id: ChallengeId,
    /// Its account.
    pub account: AccountId,
    /// Its purpose.
    pub purpose: Purpose,
    /// Its channel.
    pub channel: Channel,
    /// Its destination, masked.
    pub masked_destination: String,
    /// When issued.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Wrong guesses left.
    pub attempts_remaining: u32,
    /// Its state.
    pub state: ChallengeStatusKind,
    /// Where its message stands.
    pub delivery: DeliveryState,
    /// For a signature: the document its code approves.
    pub document: Option<Document>,
}

/// The state of a challenge as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeStatusKind {
    /// Waiting for its code.
    Pending,
    /// Its code was accepted.
    Verified,
    /// Replaced by a newer code.
    Superseded,
    /// Past its lifetime.
    Expired,
    /// Out of attempts.
    Exhausted,
    /// Cancelled by its client.
    Cancelled,
}

impl ChallengeStatusKind {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Superseded => "superseded",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
            Self::Cancelled => "cancelled",
        }
    }
}
