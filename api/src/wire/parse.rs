//! Requests turned into engine types: every field checked, an error
//! naming the field that is wrong.

use std::time::Duration;

use engine::{
    BirthDate, ChallengeId, Channel, ChannelSet, DmHandle, Document, Email, Engine, EngineError,
    Identity, IdentityKind, Phone, PostalAddress, Purpose, PurposeSet, Rate, Scope, Scopes,
    Timestamp,
};

use super::bodies::*;
use super::object::Object;
use crate::error::ApiError;

impl IdentityIn {
    /// Parses into an engine identity.
    pub fn parse(&self) -> Result<Identity, ApiError> {
        let kind = IdentityKind::parse(&self.kind)?;
        Ok(Identity::parse(
            kind,
            &self.number,
            self.country.as_deref(),
        )?)
    }
}

impl DocumentIn {
    /// Parses into an engine document (errors name `document.*`).
    pub fn parse(&self) -> Result<Document, ApiError> {
        Ok(Document::parse(&self.name, &self.sha256, self.size)?)
    }
}

impl RecoveryIn {
    /// Parses into the engine's recovery.
    pub fn parse(&self) -> Result<engine::Recovery, ApiError> {
        let method = engine::RecoveryMethod::parse(&self.method)?;
        Ok(engine::Recovery::new(method, &self.reference)?)
    }
}

impl AddClientIn {
    /// The client to add, every field checked.
    pub fn parse(self) -> Result<engine::NewClient, ApiError> {
        Ok(engine::NewClient {
            name: self.name,
            scopes: scopes(&self.scopes)?,
            policy: engine::ClientPolicy {
                purposes: self.purposes.as_deref().map(purposes).transpose()?,
                channels: self.channels.as_deref().map(channels).transpose()?,
                issue_rate: self.issue_rate.as_ref().map(issue_rate).transpose()?,
            },
            test: self.test,
            key_expires_at: time("expires_at", self.expires_at.as_deref())?,
        })
    }
}

/// Scopes by name (`scopes`).
pub fn scopes(names: &[String]) -> Result<Scopes, ApiError> {
    let parsed: Result<Vec<Scope>, _> = names.iter().map(|s| Scope::parse(s)).collect();
    Ok(Scopes::of(&parsed?))
}

/// Purposes by name (`purposes`).
pub fn purposes(names: &[String]) -> Result<PurposeSet, ApiError> {
    let parsed: Result<Vec<Purpose>, _> = names.iter().map(|p| PurposeSet::parse_one(p)).collect();
    Ok(PurposeSet::of(&parsed?))
}

/// Channels by name (`channels`).
pub fn channels(names: &[String]) -> Result<ChannelSet, ApiError> {
    let parsed: Result<Vec<Channel>, _> = names
        .iter()
        .map(|c| {
            Channel::parse(c).map_err(|e| match e {
                EngineError::Invalid { message, .. } => {
                    ApiError::invalid("channels", format!("unknown channel {c:?}: {message}"))
                }
                other => ApiError::from(other),
            })
        })
        .collect();
    Ok(ChannelSet::of(&parsed?))
}

/// `{"codes": 10, "per": "minute"}` as a rate (`issue_rate`).
pub fn issue_rate(rate: &Object<IssueRateIn>) -> Result<Rate, ApiError> {
    let per = match rate.per.trim().to_ascii_lowercase().as_str() {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        _ => {
            return Err(ApiError::invalid(
                "issue_rate.per",
                "must be second, minute or hour",
            ));
        }
    };
    Ok(Rate {
        count: rate.codes,
        per: std::time::Duration::from_secs(per),
    })
}

/// An optional RFC 3339 time in field `field`.
pub fn time(field: &'static str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| crate::cli::parse_time(t).map_err(|why| ApiError::invalid(field, why)))
        .transpose()
}

/// Parses a challenge id sent in a body.
pub fn challenge_id(text: &str) -> Result<ChallengeId, ApiError> {
    Ok(ChallengeId::parse("challenge_id", text)?)
}

/// A code's requested lifetime (`lifetime_seconds`).
pub fn lifetime(seconds: Option<u64>) -> Option<Duration> {
    seconds.map(Duration::from_secs)
}

/// A phone number or an email address: exactly one was sent.
#[derive(Debug)]
pub enum PhoneOrEmail {
    /// The phone number.
    Phone(Phone),
    /// The email address.
    Email(Email),
}

/// Parses the one of `phone` and `email` that was sent (login, a new contact).
pub fn phone_or_email(phone: Option<&str>, email: Option<&str>) -> Result<PhoneOrEmail, ApiError> {
    match (phone, email) {
        (Some(phone), None) => Ok(PhoneOrEmail::Phone(Phone::parse(phone)?)),
        (None, Some(email)) => Ok(PhoneOrEmail::Email(Email::parse(email)?)),
        _ => Err(ApiError::invalid(
            "phone",
            "send exactly one of phone or email",
        )),
    }
}

/// Parses an optional phone.
pub fn phone(raw: Option<&str>) -> Result<Option<Phone>, ApiError> {
    Ok(raw.map(Phone::parse).transpose()?)
}

/// Parses an optional email.
pub fn email(raw: Option<&str>) -> Result<Option<Email>, ApiError> {
    Ok(raw.map(Email::parse).transpose()?)
}

/// Parses an optional direct-message handle on a platform the engine accepts.
pub fn dm(engine: &Engine, raw: Option<&DmIn>) -> Result<Option<DmHandle>, ApiError> {
    Ok(raw
        .map(|d| engine.parse_dm(&d.platform, &d.handle))
        .transpose()?)
}

/// Parses an optional postal address.
pub fn address(raw: Option<&str>) -> Result<Option<PostalAddress>, ApiError> {
    Ok(raw.map(PostalAddress::parse).transpose()?)
}

/// Parses an optional birth date.
pub fn birth_date(raw: Option<&str>, today: Timestamp) -> Result<Option<BirthDate>, ApiError> {
    Ok(raw.map(|d| BirthDate::parse(d, today)).transpose()?)
}

/// Parses an optional locale.
pub fn locale(raw: Option<&str>) -> Result<Option<engine::Locale>, ApiError> {
    Ok(raw.map(engine::Locale::parse).transpose()?)
}

/// Parses an optional channel.
pub fn channel(raw: Option<&str>) -> Result<Option<Channel>, ApiError> {
    Ok(raw.map(Channel::parse).transpose()?)
}
