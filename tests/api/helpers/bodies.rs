//! The bodies tests send: typed builders for identities, accounts,
//! contacts, the choices of a call that sends a code, and activations.

use serde_json::{Value, json};

/// An identity as the API takes it.
#[derive(Debug, Clone)]
pub struct Identity(pub(super) Value);

impl Identity {
    pub fn civil_id(number: &str) -> Identity {
        Identity(json!({ "kind": "civil_id", "number": number }))
    }

    pub fn social_security(number: &str) -> Identity {
        Identity(json!({ "kind": "social_security", "number": number }))
    }

    pub fn passport(number: &str, country: &str) -> Identity {
        Identity(json!({ "kind": "passport", "number": number, "country": country }))
    }
}

/// An account as registration, pre-registration or import takes it: an
/// identity and the fields the call sets.
#[derive(Debug, Clone)]
pub struct NewAccount(pub(super) Value);

impl NewAccount {
    pub fn new(identity: Identity) -> NewAccount {
        NewAccount(json!({ "identity": identity.0 }))
    }

    fn with(mut self, field: &str, value: &str) -> NewAccount {
        self.0[field] = value.into();
        self
    }

    pub fn phone(self, phone: &str) -> NewAccount {
        self.with("phone", phone)
    }

    pub fn email(self, email: &str) -> NewAccount {
        self.with("email", email)
    }

    pub fn pin(self, pin: &str) -> NewAccount {
        self.with("pin", pin)
    }

    pub fn birth_date(self, date: &str) -> NewAccount {
        self.with("birth_date", date)
    }

    pub fn postal_address(self, address: &str) -> NewAccount {
        self.with("postal_address", address)
    }

    /// A direct-message handle on `platform`.
    pub fn dm(mut self, platform: &str, handle: &str) -> NewAccount {
        self.0["dm"] = json!({ "platform": platform, "handle": handle });
        self
    }

    /// `pt` or `en`: the language of the citizen's messages.
    pub fn locale(self, locale: &str) -> NewAccount {
        self.with("locale", locale)
    }

    /// Import only: an Argon2 PHC string.
    pub fn pin_hash(self, hash: &str) -> NewAccount {
        self.with("pin_hash", hash)
    }

    /// Import only: `active`, `pending_activation` or `locked`.
    pub fn state(self, state: &str) -> NewAccount {
        self.with("state", state)
    }

    /// Import only: why a `locked` account is locked.
    pub fn lock_reason(self, reason: &str) -> NewAccount {
        self.with("lock_reason", reason)
    }
}

/// A phone or an email: how a login names its account, or a new contact
/// (a direct-message handle too).
#[derive(Debug, Clone, Copy)]
pub enum Contact<'a> {
    Phone(&'a str),
    Email(&'a str),
    /// A platform and a handle on it.
    Dm(&'a str, &'a str),
}

impl Contact<'_> {
    pub(super) fn add_to(self, body: &mut Value) {
        match self {
            Contact::Phone(phone) => body["phone"] = phone.into(),
            Contact::Email(email) => body["email"] = email.into(),
            Contact::Dm(platform, handle) => {
                body["dm"] = json!({ "platform": platform, "handle": handle });
            }
        }
    }
}

/// The optional choices of a call that sends a code (none: the server's defaults).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sending<'a> {
    channel: Option<&'a str>,
    lifetime_seconds: Option<u64>,
    locale: Option<&'a str>,
}

impl<'a> Sending<'a> {
    /// By `channel`: `sms`, `email`, `push`, `letter` or `dm`.
    pub fn by(channel: &'a str) -> Sending<'a> {
        Sending {
            channel: Some(channel),
            ..Sending::default()
        }
    }

    pub fn lifetime_seconds(self, seconds: u64) -> Sending<'a> {
        Sending {
            lifetime_seconds: Some(seconds),
            ..self
        }
    }

    pub fn locale(self, locale: &'a str) -> Sending<'a> {
        Sending {
            locale: Some(locale),
            ..self
        }
    }

    pub(super) fn add_to(self, body: &mut Value) {
        if let Some(channel) = self.channel {
            body["channel"] = channel.into();
        }
        if let Some(seconds) = self.lifetime_seconds {
            body["lifetime_seconds"] = seconds.into();
        }
        if let Some(locale) = self.locale {
            body["locale"] = locale.into();
        }
    }
}

/// What completes an activation: the code with a new PIN, for a challenge
/// or (as typed from a letter) for an identity.
#[derive(Debug, Clone)]
pub struct Activation(pub(super) Value);

impl Activation {
    pub fn by_challenge(challenge_id: &str, code: &str, pin: &str) -> Activation {
        Activation(json!({ "challenge_id": challenge_id, "code": code, "pin": pin }))
    }

    pub fn by_identity(identity: &Identity, code: &str, pin: &str) -> Activation {
        Activation(json!({ "identity": identity.0, "code": code, "pin": pin }))
    }

    /// Must match the birth date on file.
    pub fn birth_date(mut self, date: &str) -> Activation {
        self.0["birth_date"] = date.into();
        self
    }
}

/// A well-formed code that is not `right`.
pub fn wrong(right: &str) -> String {
    let mut digits: Vec<u8> = right.bytes().collect();
    digits[0] = if digits[0] == b'9' {
        b'0'
    } else {
        digits[0] + 1
    };
    String::from_utf8(digits).unwrap()
}

/// A document to sign, as a signing service describes it.
#[derive(Debug, Clone)]
pub struct Document(pub(super) Value);

impl Document {
    pub fn new(name: &str, sha256: &str) -> Document {
        Document(json!({ "name": name, "sha256": sha256 }))
    }

    pub fn size(mut self, size: u64) -> Document {
        self.0["size"] = json!(size);
        self
    }

    /// Any body for `document`, for bad input.
    pub fn raw(value: Value) -> Document {
        Document(value)
    }
}
