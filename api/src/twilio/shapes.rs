//! The JSON Twilio answers with, in its snake_case shapes: a Service, a
//! Verification and a VerificationCheck. Every field Twilio's SDKs read is
//! here; those for features otpd does not offer are `false` or `null`.

use engine::{ChallengeStatusKind, DeliveryState, DestinationStatus, Service, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

/// Where the answers' `url`s point: the scheme and host the request came to.
pub struct Base {
    pub origin: String,
    pub account_sid: String,
}

/// A time as Twilio writes it: `2015-07-30T20:00:00Z` (no fraction: the
/// Python SDK parses exactly this and leaves anything else a string).
pub fn date(t: Timestamp) -> String {
    let full = crate::wire::rfc3339(t);
    format!("{}Z", &full[..19])
}

/// A Service sid: `VA` + 32 hex digits.
pub fn service_sid(service: &Service) -> String {
    format!("VA{}", service.id)
}

/// A Verification sid: `VE` + the challenge id.
pub fn verification_sid(status: &DestinationStatus) -> String {
    format!("VE{}", status.status.id)
}

/// `GET`/`POST /v2/Services`.
#[derive(Debug, Serialize)]
pub struct ServiceOut {
    sid: String,
    account_sid: String,
    friendly_name: String,
    code_length: u8,
    lookup_enabled: bool,
    psd2_enabled: bool,
    skip_sms_to_landlines: bool,
    dtmf_input_required: bool,
    tts_name: Option<String>,
    do_not_share_warning_enabled: bool,
    custom_code_enabled: bool,
    push: Option<Value>,
    totp: Option<Value>,
    whatsapp: Option<Value>,
    default_template_sid: Option<String>,
    verify_event_subscription_enabled: bool,
    date_created: String,
    date_updated: String,
    url: String,
    links: Value,
}

impl ServiceOut {
    pub fn new(service: &Service, base: &Base) -> Self {
        let sid = service_sid(service);
        let url = format!("{}/v2/Services/{sid}", base.origin);
        Self {
            account_sid: base.account_sid.clone(),
            friendly_name: service.friendly_name.clone(),
            code_length: service.code_length,
            lookup_enabled: false,
            psd2_enabled: false,
            skip_sms_to_landlines: false,
            dtmf_input_required: false,
            tts_name: None,
            do_not_share_warning_enabled: false,
            custom_code_enabled: false,
            push: None,
            totp: None,
            whatsapp: None,
            default_template_sid: None,
            verify_event_subscription_enabled: false,
            date_created: date(service.created_at),
            date_updated: date(service.created_at),
            links: json!({
                "verifications": format!("{url}/Verifications"),
                "verification_checks": format!("{url}/VerificationCheck"),
            }),
            url,
            sid,
        }
    }
}

/// A Verification's status as Twilio names it.
pub fn status(s: &DestinationStatus) -> &'static str {
    match s.status.state {
        ChallengeStatusKind::Pending if s.status.delivery == DeliveryState::Failed => "failed",
        ChallengeStatusKind::Pending => "pending",
        ChallengeStatusKind::Verified => "approved",
        ChallengeStatusKind::Expired => "expired",
        ChallengeStatusKind::Exhausted => "max_attempts_reached",
        // A newer code to the same To replaced it: it can no longer be
        // approved (Twilio would have kept one Verification).
        ChallengeStatusKind::Cancelled | ChallengeStatusKind::Superseded => "canceled",
    }
}

/// `…/Verifications` and `…/Verifications/{sid}`.
#[derive(Debug, Serialize)]
pub struct VerificationOut {
    sid: String,
    service_sid: String,
    account_sid: String,
    to: String,
    channel: &'static str,
    status: &'static str,
    valid: bool,
    lookup: Value,
    amount: Option<String>,
    payee: Option<String>,
    send_code_attempts: Vec<Value>,
    date_created: String,
    date_updated: String,
    sna: Option<Value>,
    url: String,
}

impl VerificationOut {
    /// `updated`: when the answer's request changed it (else its creation).
    pub fn new(s: &DestinationStatus, service: &str, base: &Base, updated: Timestamp) -> Self {
        let sid = verification_sid(s);
        let created = date(s.status.created_at);
        Self {
            url: format!("{}/v2/Services/{service}/Verifications/{sid}", base.origin),
            service_sid: service.to_owned(),
            account_sid: base.account_sid.clone(),
            to: s.destination.clone(),
            channel: s.status.channel.as_str(),
            status: status(s),
            valid: s.status.state == ChallengeStatusKind::Verified,
            lookup: json!({}),
            amount: None,
            payee: None,
            // One send per Verification: otpd sends a new code (a new
            // Verification) every time.
            send_code_attempts: vec![json!({
                "attempt_sid": format!("VL{}", s.status.id),
                "channel": s.status.channel.as_str(),
                "time": created,
            })],
            date_updated: date(updated),
            date_created: created,
            sna: None,
            sid,
        }
    }
}

/// `…/VerificationCheck`.
#[derive(Debug, Serialize)]
pub struct CheckOut {
    sid: String,
    service_sid: String,
    account_sid: String,
    to: String,
    channel: &'static str,
    status: &'static str,
    valid: bool,
    amount: Option<String>,
    payee: Option<String>,
    sna_attempts_error_codes: Vec<Value>,
    date_created: String,
    date_updated: String,
}

impl CheckOut {
    pub fn new(s: &DestinationStatus, service: &str, base: &Base, updated: Timestamp) -> Self {
        Self {
            sid: verification_sid(s),
            service_sid: service.to_owned(),
            account_sid: base.account_sid.clone(),
            to: s.destination.clone(),
            channel: s.status.channel.as_str(),
            status: status(s),
            valid: s.status.state == ChallengeStatusKind::Verified,
            amount: None,
            payee: None,
            sna_attempts_error_codes: Vec::new(),
            date_created: date(s.status.created_at),
            date_updated: date(updated),
        }
    }
}
