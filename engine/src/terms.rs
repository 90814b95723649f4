//! The names challenges and outgoing messages share: what a code is for,
//! how it travels, in which language, where its delivery stands, and the
//! message's id. A leaf: it depends on nothing of the engine but errors.

use crate::error::{EngineError, Result};

/// What a code is for. Issuing a code supersedes the account's previous
/// code of the same purpose: only the last one sent is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Second factor after the PIN.
    Login,
    /// Re-confirmation by an already authenticated citizen (no PIN).
    StepUp,
    /// Activation of a pre-registered account.
    Activation,
    /// Proof of a new phone number or email address.
    ContactChange,
    /// Authorisation to sign one document (the code is bound to its hash).
    Signature,
    /// Proof that someone controls a phone number or an email address,
    /// with no account (account-less verification, the Twilio Verify
    /// surface): the code is held by the calling client's holder for that
    /// destination (`engine/destinations.rs`).
    Destination,
}

impl Purpose {
    /// Every purpose, in slot order.
    pub const ALL: [Purpose; 6] = [
        Purpose::Login,
        Purpose::StepUp,
        Purpose::Activation,
        Purpose::ContactChange,
        Purpose::Signature,
        Purpose::Destination,
    ];

    pub(crate) fn slot(self) -> usize {
        match self {
            Purpose::Login => 0,
            Purpose::StepUp => 1,
            Purpose::Activation => 2,
            Purpose::ContactChange => 3,
            Purpose::Signature => 4,
            Purpose::Destination => 5,
        }
    }

    pub(crate) fn from_slot(slot: u8) -> Option<Self> {
        Purpose::ALL.get(usize::from(slot)).copied()
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::StepUp => "step_up",
            Purpose::Activation => "activation",
            Purpose::ContactChange => "contact_change",
            Purpose::Signature => "signature",
            Purpose::Destination => "destination",
        }
    }
}

/// How a code reaches the citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Text message to the mobile number.
    Sms,
    /// Email to the address on file.
    Email,
    /// Notification to the citizen's registered app.
    Push,
    /// Postal letter to the address on file (activation only).
    Letter,
    /// Direct message to the citizen's handle on a messaging platform, through a relay.
    Dm,
}

impl Channel {
    /// Every channel, in tag order.
    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::Email,
        Channel::Push,
        Channel::Letter,
        Channel::Dm,
    ];

    /// Parses the API name.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sms" => Ok(Channel::Sms),
            "email" => Ok(Channel::Email),
            "push" => Ok(Channel::Push),
            "letter" => Ok(Channel::Letter),
            "dm" => Ok(Channel::Dm),
            _ => Err(EngineError::invalid(
                "channel",
                "must be one of sms, email, push, letter, dm",
            )),
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Push => "push",
            Channel::Letter => "letter",
            Channel::Dm => "dm",
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            Channel::Sms => 0,
            Channel::Email => 1,
            Channel::Push => 2,
            Channel::Letter => 3,
            Channel::Dm => 4,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        Channel::ALL.get(usize::from(tag)).copied()
    }
}

/// The language of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    /// Portuguese.
    Pt,
    /// English.
    En,
}

impl Locale {
    /// Parses `pt` or `en` (a region such as `pt-PT` is accepted and ignored).
    pub fn parse(text: &str) -> Result<Locale> {
        let lang = text.trim().split(['-', '_']).next().unwrap_or("");
        match lang.to_ascii_lowercase().as_str() {
            "pt" => Ok(Locale::Pt),
            "en" => Ok(Locale::En),
            _ => Err(EngineError::invalid("locale", "must be pt or en")),
        }
    }

    /// The language tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Pt => "pt",
            Locale::En => "en",
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            Locale::Pt => 0,
            Locale::En => 1,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Locale> {
        match tag {
            0 => Some(Locale::Pt),
            1 => Some(Locale::En),
            _ => None,
        }
    }
}

/// Where a challenge's message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting in the outbox (or between retries).
    Queued,
    /// Accepted by the gateway.
    Sent,
    /// Failed for good; see the dead-letter record.
    Failed,
    /// Not sent because the code expired or was replaced first.
    Dropped,
    /// Never sent: a test destination's fixed code (test mode).
    Withheld,
}

impl DeliveryState {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Dropped => "dropped",
            DeliveryState::Withheld => "withheld",
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Sent => 1,
            DeliveryState::Failed => 2,
            DeliveryState::Dropped => 3,
            DeliveryState::Withheld => 4,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        [
            Self::Queued,
            Self::Sent,
            Self::Failed,
            Self::Dropped,
            Self::Withheld,
        ]
        .get(usize::from(tag))
        .copied()
    }
}

/// A message id: the idempotency key towards the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub(crate) [u8; 16]);

impl MessageId {
    /// A message id from its bytes (for tests and tools).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        MessageId(bytes)
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::hex::write(f, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_parse_with_or_without_region() {
        assert_eq!(Locale::parse("pt-PT").unwrap(), Locale::Pt);
        assert_eq!(Locale::parse("EN").unwrap(), Locale::En);
        assert!(Locale::parse("fr").is_err());
    }

    #[test]
    fn tags_and_slots_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::from_slot(u8::try_from(p.slot()).unwrap()), Some(p));
        }
        for c in Channel::ALL {
            assert_eq!(Channel::from_tag(c.tag()), Some(c));
            assert_eq!(Channel::parse(c.as_str()).unwrap(), c);
        }
        for d in [
            DeliveryState::Queued,
            DeliveryState::Sent,
            DeliveryState::Failed,
            DeliveryState::Dropped,
            DeliveryState::Withheld,
        ] {
            assert_eq!(DeliveryState::from_tag(d.tag()), Some(d));
        }
    }
}
