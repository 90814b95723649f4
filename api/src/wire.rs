//! JSON shapes of requests and responses, and their conversion to engine types.

use std::time::Duration;

use engine::{
    AccountView, BirthDate, ChallengeId, ChallengeStatus, Channel, ChannelSet, Code, DmHandle,
    Document, Email, Engine, EngineError, Identity, IdentityKind, Issued, Phone, Pin,
    PostalAddress, Purpose, PurposeSet, Rate, Scope, Scopes, Timestamp,
};
use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::error::ApiError;

/// A JSON object read as `T`, and only an object: serde's derive would also
/// take an array of the fields in order (`["+351…", null, "4821"]`).
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<T> std::ops::Deref for Object<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }

        d.deserialize_map(Only(std::marker::PhantomData))
    }
}

/// The body of an endpoint that takes no input: nothing, or `{}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

/// An identity as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityIn {
    /// `civil_id`, `passport` or `social_security`.
    pub kind: String,
    /// The document number.
    pub number: String,
    /// Issuing country, for passports.
    pub country: Option<String>,
}

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

/// A direct-message handle as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmIn {
    /// The platform, one of `delivery.dm.platforms`.
    pub platform: String,
    /// The citizen's handle on it (a leading `@` is dropped).
    pub handle: String,
}

/// `POST /v1/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    pub identity: Object<IdentityIn>,
    pub phone: Option<String>,
    pub email: Option<String>,
    #[serde(deserialize_with = "pin")]
    pub pin: Pin,
    pub birth_date: Option<String>,
    pub postal_address: Option<String>,
    pub dm: Option<Object<DmIn>>,
    /// `pt` or `en`: the language of every message to the citizen.
    pub locale: Option<String>,
}

/// `POST /v1/accounts/pre-register`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreRegisterIn {
    pub identity: Object<IdentityIn>,
    pub birth_date: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub postal_address: Option<String>,
    /// `pt` or `en`: the language of every message to the citizen.
    pub locale: Option<String>,
}

/// `POST /v1/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub phone: Option<String>,
    pub email: Option<String>,
    #[serde(deserialize_with = "pin")]
    pub pin: Pin,
    pub channel: Option<String>,
    pub lifetime_seconds: Option<u64>,
    /// `pt` or `en`: the language of the message.
    pub locale: Option<String>,
}

/// A document to sign, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// Its name, as the citizen will see it.
    pub name: String,
    /// SHA-256 of its bytes, 64 hexadecimal digits.
    pub sha256: String,
    /// Its size in bytes.
    pub size: Option<u64>,
}

impl DocumentIn {
    /// Parses into an engine document (errors name `document.*`).
    pub fn parse(&self) -> Result<Document, ApiError> {
        Ok(Document::parse(&self.name, &self.sha256, self.size)?)
    }
}

/// `POST /v1/signatures`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureIn {
    pub phone: Option<String>,
    pub email: Option<String>,
    #[serde(deserialize_with = "pin")]
    pub pin: Pin,
    pub document: Object<DocumentIn>,
    pub channel: Option<String>,
    pub lifetime_seconds: Option<u64>,
    /// `pt` or `en`: the language of the message.
    pub locale: Option<String>,
}

/// `POST /v1/verify`, `/v1/step-up/verify`, `/v1/contact-changes/confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    pub challenge_id: String,
    #[serde(deserialize_with = "code")]
    pub code: Code,
}

/// `POST /v1/step-up`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpIn {
    pub account_id: String,
    pub channel: Option<String>,
    pub lifetime_seconds: Option<u64>,
    pub locale: Option<String>,
}

/// `POST /v1/activation/request`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequestIn {
    pub identity: Object<IdentityIn>,
    pub birth_date: String,
    pub channel: String,
    pub locale: Option<String>,
}

/// `POST /v1/activation/complete`: the code with the challenge id the
/// request answered, or with the identity (as typed from a letter).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationCompleteIn {
    pub challenge_id: Option<String>,
    pub identity: Option<Object<IdentityIn>>,
    pub birth_date: Option<String>,
    #[serde(deserialize_with = "code")]
    pub code: Code,
    #[serde(deserialize_with = "pin")]
    pub pin: Pin,
}

/// `POST /v1/accounts/{id}/pin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePinIn {
    #[serde(deserialize_with = "pin")]
    pub current_pin: Pin,
    pub challenge_id: String,
    #[serde(deserialize_with = "code")]
    pub code: Code,
    #[serde(deserialize_with = "pin")]
    pub new_pin: Pin,
}

/// `POST /v1/accounts/{id}/contact`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactChangeIn {
    pub proof_challenge_id: String,
    #[serde(deserialize_with = "code")]
    pub proof_code: Code,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub dm: Option<Object<DmIn>>,
    pub locale: Option<String>,
}

/// `POST /v1/accounts/{id}/contact/remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveContactIn {
    /// `phone`, `email`, `push_device` or `dm`.
    pub contact: String,
    pub proof_challenge_id: String,
    #[serde(deserialize_with = "code")]
    pub proof_code: Code,
}

/// `PUT /v1/accounts/{id}/locale`: a language, or `null` for the server's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocaleIn {
    /// Absent: refused (so an empty body never clears a choice); `null`: the default.
    #[serde(default, deserialize_with = "present")]
    pub locale: Option<Option<String>>,
}

/// `PUT /v1/accounts/{id}/push-device`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushDeviceIn {
    pub push_token: String,
}

/// `POST /v1/admin/accounts/{id}/lock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockIn {
    pub reason: String,
}

/// `POST /v1/admin/accounts/{id}/pin-reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPinIn {
    #[serde(deserialize_with = "pin")]
    pub pin: Pin,
}

/// `POST /v1/accounts/{id}/recovery/unlock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryIn {
    /// `citizen_card`, `in_person` or `qualified_certificate`.
    pub method: String,
    /// The recovery service's reference for the proof.
    pub reference: String,
}

impl RecoveryIn {
    /// Parses into the engine's recovery.
    pub fn parse(&self) -> Result<engine::Recovery, ApiError> {
        let method = engine::RecoveryMethod::parse(&self.method)?;
        Ok(engine::Recovery::new(method, &self.reference)?)
    }
}

/// `POST /v1/accounts/{id}/recovery/pin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPinIn {
    /// `citizen_card`, `in_person` or `qualified_certificate`.
    pub method: String,
    /// The recovery service's reference for the proof.
    pub reference: String,
    #[serde(deserialize_with = "pin")]
    pub new_pin: Pin,
}

/// `POST /v1/admin/import`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    pub accounts: Vec<Object<ImportAccountIn>>,
}

/// One account in a bulk import.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportAccountIn {
    pub identity: Object<IdentityIn>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub birth_date: Option<String>,
    pub postal_address: Option<String>,
    pub pin_hash: Option<String>,
    /// `active` (default), `pending_activation` or `locked`.
    pub state: Option<String>,
    /// Why it is locked, for `locked`.
    pub lock_reason: Option<String>,
}

/// `POST /v1/admin/clients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddClientIn {
    pub name: String,
    pub scopes: Vec<String>,
    /// Left out or `null`: every purpose.
    pub purposes: Option<Vec<String>>,
    /// Left out or `null`: every channel.
    pub channels: Option<Vec<String>>,
    /// Left out or `null`: no rate of its own.
    pub issue_rate: Option<Object<IssueRateIn>>,
    #[serde(default)]
    pub test: bool,
    /// When its key stops working, RFC 3339.
    pub expires_at: Option<String>,
}

/// A client's issuance rate: `codes` per `per` (`second`, `minute`, `hour`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRateIn {
    pub codes: u32,
    pub per: String,
}

/// `PATCH /v1/admin/clients/{name}`: a field left out is kept as it is;
/// `null` lifts a restriction (every purpose, every channel, no rate).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientIn {
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub purposes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub channels: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub issue_rate: Option<Option<Object<IssueRateIn>>>,
}

/// `POST /v1/admin/clients/{name}/keys` (an empty body is all defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyIn {
    /// When the new key stops working, RFC 3339.
    pub expires_at: Option<String>,
    /// When the client's other live keys stop working (brought forward, never postponed).
    pub previous_expires_at: Option<String>,
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

/// A field that was sent, `null` included (`Some(None)`), as opposed to left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A PIN goes straight into the engine's redacting, zeroing type, so the
/// `Debug` of a request never shows it.
fn pin<'de, D: Deserializer<'de>>(d: D) -> Result<Pin, D::Error> {
    String::deserialize(d).map(Pin::new)
}

/// A code, likewise.
fn code<'de, D: Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
    String::deserialize(d).map(Code::new)
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

/// A direct-message handle as returned: the platform, and the handle masked.
pub fn dm_masked(dm: &DmHandle) -> Value {
    json!({ "platform": dm.platform(), "handle": dm.masked_handle() })
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

/// An identity as returned.
pub fn identity(id: &Identity) -> Value {
    json!({ "kind": id.kind().as_str(), "number": id.number(), "country": id.country() })
}

/// A just-issued challenge as returned: never the code or the full destination.
pub fn issued(issued: &Issued) -> Value {
    let mut body = json!({
        "challenge_id": issued.challenge_id.to_string(),
        "purpose": issued.purpose.as_str(),
        "channel": issued.channel.as_str(),
        "masked_destination": issued.masked_destination,
        "expires_at": rfc3339(issued.expires_at),
    });
    if let Some(d) = &issued.document {
        body["document"] = document(d);
    }
    body
}

/// A document as returned: what the citizen is shown, fingerprint included.
pub fn document(d: &Document) -> Value {
    json!({
        "name": d.name(),
        "sha256": d.sha256_hex(),
        "size": d.size(),
        "fingerprint": d.fingerprint(),
    })
}

/// A challenge's status as returned.
pub fn status(s: &ChallengeStatus) -> Value {
    let mut body = json!({
        "challenge_id": s.id.to_string(),
        "account_id": s.account.to_string(),
        "purpose": s.purpose.as_str(),
        "channel": s.channel.as_str(),
        "masked_destination": s.masked_destination,
        "created_at": rfc3339(s.created_at),
        "expires_at": rfc3339(s.expires_at),
        "attempts_remaining": s.attempts_remaining,
        "state": s.state.as_str(),
        "delivery": s.delivery.as_str(),
    });
    if let Some(d) = &s.document {
        body["document"] = document(d);
    }
    body
}

/// An account as returned: masked contacts, never the PIN hash.
pub fn account(view: &AccountView) -> Value {
    let lock = match &view.state {
        engine::AccountState::Locked(lock) => json!({
            "reason": match &lock.reason {
                engine::LockReason::PinFailures => "pin_failures".to_owned(),
                engine::LockReason::CodeFailures => "code_failures".to_owned(),
                engine::LockReason::Administrative(why) => format!("administrative: {why}"),
            },
            "since": rfc3339(lock.since),
            "until": lock.until.map(rfc3339),
        }),
        _ => Value::Null,
    };
    json!({
        "account_id": view.id.to_string(),
        "identity": identity(&view.identity),
        "state": view.state.as_str(),
        "lock": lock,
        "phone": view.phone.as_ref().map(Phone::masked),
        "email": view.email.as_ref().map(Email::masked),
        "has_postal_address": view.has_postal_address,
        "has_push_device": view.has_push_device,
        "dm": view.dm.as_ref().map(dm_masked),
        "locale": view.locale.map(engine::Locale::as_str),
        "pin_failures": view.pin_failures,
        "code_failures": view.code_failures,
        "created_at": rfc3339(view.created_at),
        "updated_at": rfc3339(view.updated_at),
    })
}

/// A client as returned: never a key or its hash.
pub fn client(info: &engine::ClientInfo, now: Timestamp) -> Value {
    let keys: Vec<Value> = info
        .keys
        .iter()
        .map(|k| {
            let state = if k.revoked_at.is_some() {
                "revoked"
            } else if k.live_at(now) {
                "live"
            } else {
                "expired"
            };
            json!({
                "key_id": k.id.to_string(),
                "state": state,
                "created_at": rfc3339(k.created_at),
                "expires_at": k.expires_at.map(rfc3339),
                "revoked_at": k.revoked_at.map(rfc3339),
            })
        })
        .collect();
    let policy = &info.policy;
    json!({
        "name": info.name,
        "client_id": info.id.to_string(),
        "scopes": info.scopes.iter().map(engine::Scope::as_str).collect::<Vec<_>>(),
        "purposes": policy.purposes.map(|p| p.iter().map(engine::Purpose::as_str).collect::<Vec<_>>()),
        "channels": policy.channels.map(|c| c.iter().map(Channel::as_str).collect::<Vec<_>>()),
        "issue_rate": policy.issue_rate.map(|r| json!({
            "codes": r.count,
            "per": match r.per.as_secs() {
                1 => "second",
                60 => "minute",
                _ => "hour",
            },
        })),
        "test": info.test,
        "state": if info.revoked_at.is_some() { "revoked" } else { "active" },
        "created_at": rfc3339(info.created_at),
        "revoked_at": info.revoked_at.map(rfc3339),
        "keys": keys,
    })
}

/// `2026-11-23T10:15:30.250Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let days = i64::try_from(t.0 / 86_400_000).unwrap_or(i64::MAX);
    let ms_of_day = t.0 % 86_400_000;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_never_show_pins_or_codes_in_debug() {
        let change: ChangePinIn = serde_json::from_str(
            r#"{"current_pin":"4821","challenge_id":"x","code":"123456","new_pin":"5930"}"#,
        )
        .unwrap();
        let printed = format!("{change:?}");
        for secret in ["4821", "123456", "5930"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        let register: RegisterIn = serde_json::from_str(
            r#"{"identity":{"kind":"civil_id","number":"12345678"},"phone":"+351912345678","pin":"7391"}"#,
        )
        .unwrap();
        assert!(!format!("{register:?}").contains("7391"));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_795_392_000_000)),
            "2026-11-23T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp(951_782_400_000 + 3_723_004)),
            "2000-02-29T01:02:03.004Z"
        );
    }
}
