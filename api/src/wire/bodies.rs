//! Request bodies as sent, field by field: PINs and codes go straight into
//! the engine's redacting types, so a request's `Debug` never shows them.

use engine::{Code, Pin};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::object::Object;

/// An identity as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityIn {
    /// `civil_id`, `passport` or `social_security`.
    #[schema(example = "civil_id")]
    pub kind: String,
    /// The document number.
    #[schema(example = "12345678")]
    pub number: String,
    /// Issuing country, for passports.
    pub country: Option<String>,
}

/// A direct-message handle as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DmIn {
    /// The platform, one of `delivery.dm.platforms`.
    pub platform: String,
    /// The citizen's handle on it (a leading `@` is dropped).
    pub handle: String,
}

/// `POST /v1/accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    #[schema(value_type = IdentityIn)]
    pub identity: Object<IdentityIn>,
    #[schema(example = "+351910000000")]
    pub phone: Option<String>,
    #[schema(example = "dev@example.pt")]
    pub email: Option<String>,
    #[serde(deserialize_with = "pin")]
    #[schema(example = "4821", value_type = String)]
    pub pin: Pin,
    pub birth_date: Option<String>,
    pub postal_address: Option<String>,
    #[schema(value_type = Option<DmIn>)]
    pub dm: Option<Object<DmIn>>,
    /// `pt` or `en`: the language of every message to the citizen.
    #[schema(example = "pt")]
    pub locale: Option<String>,
}

/// `POST /v1/accounts/pre-register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreRegisterIn {
    #[schema(value_type = IdentityIn)]
    pub identity: Object<IdentityIn>,
    #[schema(example = "1980-05-17")]
    pub birth_date: String,
    #[schema(example = "+351910000000")]
    pub phone: Option<String>,
    pub email: Option<String>,
    pub postal_address: Option<String>,
    /// `pt` or `en`: the language of every message to the citizen.
    pub locale: Option<String>,
}

/// `POST /v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    #[schema(example = "+351910000000")]
    pub phone: Option<String>,
    pub email: Option<String>,
    #[serde(deserialize_with = "pin")]
    #[schema(example = "4821", value_type = String)]
    pub pin: Pin,
    #[schema(example = "sms")]
    pub channel: Option<String>,
    pub lifetime_seconds: Option<u64>,
    /// `pt` or `en`: the language of the message.
    pub locale: Option<String>,
}

/// A document to sign, as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// Its name, as the citizen will see it.
    #[schema(example = "contrato.pdf")]
    pub name: String,
    /// SHA-256 of its bytes, 64 hexadecimal digits.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub sha256: String,
    /// Its size in bytes.
    pub size: Option<u64>,
}

/// `POST /v1/signatures`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureIn {
    #[schema(example = "+351910000000")]
    pub phone: Option<String>,
    pub email: Option<String>,
    #[serde(deserialize_with = "pin")]
    #[schema(example = "4821", value_type = String)]
    pub pin: Pin,
    #[schema(value_type = DocumentIn)]
    pub document: Object<DocumentIn>,
    pub channel: Option<String>,
    pub lifetime_seconds: Option<u64>,
    /// `pt` or `en`: the language of the message.
    pub locale: Option<String>,
}

/// `POST /v1/verify`, `/v1/step-up/verify`, `/v1/contact-changes/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    #[schema(example = "50121a2b9c3d4e5f60718293a4b5c6d7")]
    pub challenge_id: String,
    #[serde(deserialize_with = "code")]
    #[schema(example = "123456", value_type = String)]
    pub code: Code,
}

/// `POST /v1/destinations/verify`: a code to a phone or an email, no account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationVerifyIn {
    /// E.164, with its country code. Exactly one of `phone` and `email`.
    #[schema(example = "+351910000000")]
    pub phone: Option<String>,
    pub email: Option<String>,
    /// `sms` for a phone, `email` for an email (the default for each).
    #[schema(example = "sms")]
    pub channel: Option<String>,
    /// `pt` or `en`: the language of the message.
    pub locale: Option<String>,
    /// Shorter than the policy's lifetime (`codes.destination`), at least 10.
    pub lifetime_seconds: Option<u64>,
}

/// `POST /v1/step-up`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpIn {
    #[schema(example = "0f1e2d3c4b5a69788796a5b4c3d2e1f0")]
    pub account_id: String,
    pub channel: Option<String>,
    pub lifetime_seconds: Option<u64>,
    pub locale: Option<String>,
}

/// `POST /v1/activation/request`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequestIn {
    #[schema(value_type = IdentityIn)]
    pub identity: Object<IdentityIn>,
    #[schema(example = "1980-05-17")]
    pub birth_date: String,
    #[schema(example = "letter")]
    pub channel: String,
    pub locale: Option<String>,
}

/// `POST /v1/activation/complete`: the code with the challenge id the
/// request answered, or with the identity (as typed from a letter).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationCompleteIn {
    pub challenge_id: Option<String>,
    #[schema(value_type = Option<IdentityIn>)]
    pub identity: Option<Object<IdentityIn>>,
    pub birth_date: Option<String>,
    #[serde(deserialize_with = "code")]
    #[schema(value_type = String)]
    pub code: Code,
    #[serde(deserialize_with = "pin")]
    #[schema(value_type = String)]
    pub pin: Pin,
}

/// `POST /v1/accounts/{id}/pin`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePinIn {
    #[serde(deserialize_with = "pin")]
    #[schema(value_type = String)]
    pub current_pin: Pin,
    pub challenge_id: String,
    #[serde(deserialize_with = "code")]
    #[schema(value_type = String)]
    pub code: Code,
    #[serde(deserialize_with = "pin")]
    #[schema(value_type = String)]
    pub new_pin: Pin,
}

/// `POST /v1/accounts/{id}/contact`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactChangeIn {
    pub proof_challenge_id: String,
    #[serde(deserialize_with = "code")]
    #[schema(value_type = String)]
    pub proof_code: Code,
    pub phone: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Option<DmIn>)]
    pub dm: Option<Object<DmIn>>,
    pub locale: Option<String>,
}

/// `POST /v1/accounts/{id}/contact/remove`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveContactIn {
    /// `phone`, `email`, `push_device` or `dm`.
    pub contact: String,
    pub proof_challenge_id: String,
    #[serde(deserialize_with = "code")]
    #[schema(value_type = String)]
    pub proof_code: Code,
}

/// `PUT /v1/accounts/{id}/locale`: a language, or `null` for the server's default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocaleIn {
    /// Absent: refused (so an empty body never clears a choice); `null`: the default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub locale: Option<Option<String>>,
}

/// `PUT /v1/accounts/{id}/push-device`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushDeviceIn {
    pub push_token: String,
}

/// `POST /v1/admin/accounts/{id}/lock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockIn {
    #[schema(example = "reported stolen phone")]
    pub reason: String,
}

/// `POST /v1/admin/accounts/{id}/pin-reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPinIn {
    #[serde(deserialize_with = "pin")]
    #[schema(value_type = String)]
    pub pin: Pin,
}

/// `POST /v1/accounts/{id}/recovery/unlock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryIn {
    /// `citizen_card`, `in_person` or `qualified_certificate`.
    pub method: String,
    /// The recovery service's reference for the proof.
    pub reference: String,
}

/// `POST /v1/accounts/{id}/recovery/pin`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPinIn {
    /// `citizen_card`, `in_person` or `qualified_certificate`.
    pub method: String,
    /// The recovery service's reference for the proof.
    pub reference: String,
    #[serde(deserialize_with = "pin")]
    #[schema(value_type = String)]
    pub new_pin: Pin,
}

/// `POST /v1/admin/import`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    #[schema(value_type = Vec<ImportAccountIn>)]
    pub accounts: Vec<Object<ImportAccountIn>>,
}

/// One account in a bulk import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportAccountIn {
    #[schema(value_type = IdentityIn)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddClientIn {
    #[schema(example = "portal")]
    pub name: String,
    #[schema(example = json!(["auth", "accounts"]))]
    pub scopes: Vec<String>,
    /// Left out or `null`: every purpose.
    pub purposes: Option<Vec<String>>,
    /// Left out or `null`: every channel.
    pub channels: Option<Vec<String>>,
    /// Left out or `null`: no rate of its own.
    #[schema(value_type = Option<IssueRateIn>)]
    pub issue_rate: Option<Object<IssueRateIn>>,
    #[serde(default)]
    pub test: bool,
    /// When its key stops working, RFC 3339.
    pub expires_at: Option<String>,
}

/// A client's issuance rate: `codes` per `per` (`second`, `minute`, `hour`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRateIn {
    pub codes: u32,
    pub per: String,
}

/// `PATCH /v1/admin/clients/{name}`: a field left out is kept as it is;
/// `null` lifts a restriction (every purpose, every channel, no rate).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientIn {
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub purposes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<IssueRateIn>)]
    pub issue_rate: Option<Option<Object<IssueRateIn>>>,
}

/// `POST /v1/admin/clients/{name}/keys` (an empty body is all defaults).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyIn {
    /// When the new key stops working, RFC 3339.
    pub expires_at: Option<String>,
    /// When the client's other live keys stop working (brought forward, never postponed).
    pub previous_expires_at: Option<String>,
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
}
