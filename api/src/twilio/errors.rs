//! Twilio's error answers: `{"code", "message", "more_info", "status"}`
//! with Twilio's codes, translated from otpd's own answers so that every
//! refusal on the `/v2` surface (authentication, limits, bad input, a
//! missing resource) reads as a Twilio SDK expects.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::Answer;

/// A Twilio error body.
#[derive(Debug, Serialize)]
pub struct TwilioError {
    pub code: u32,
    pub message: String,
    pub more_info: String,
    pub status: u16,
    /// What otpd adds: why, in its words (Twilio's own answers carry it
    /// for authentication errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `Invalid parameter: <name>` (400, 60200).
pub fn invalid(name: &str, why: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::BAD_REQUEST,
        60200,
        format!("Invalid parameter: {name}"),
        Some(why.to_owned()),
        None,
    )
}

/// The resource at `path` was not found (404, 20404), and why.
pub fn not_found(path: &str, why: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        20404,
        format!("The requested resource {path} was not found"),
        Some(why.to_owned()),
        None,
    )
}

/// `Max check attempts reached` (429, 60202).
pub fn max_checks() -> Response<Full<Bytes>> {
    respond(
        StatusCode::TOO_MANY_REQUESTS,
        60202,
        "Max check attempts reached".into(),
        Some("this verification used up its attempts: start a new one".into()),
        None,
    )
}

/// otpd's answer `answer` to a request for `path`, as Twilio would say it.
pub fn translate(answer: Answer, path: &str) -> Response<Full<Bytes>> {
    let mut response = reply(
        answer.status,
        &twilio_error(&answer, path),
        answer.retry_after,
    );
    if let Some(allow) = answer.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
        response.headers_mut().insert(ALLOW, allow);
    }
    response
}

/// The body of [`translate`]'s answer (what an idempotency key keeps).
pub fn body(answer: &Answer, path: &str) -> Vec<u8> {
    serde_json::to_vec(&twilio_error(answer, path)).unwrap_or_default()
}

fn twilio_error(answer: &Answer, path: &str) -> TwilioError {
    let detail = Some(match answer.status.as_u16() {
        401 => "Your AccountSid or AuthToken was incorrect: HTTP Basic with the account SID \
                (AC…) and auth token of an otpd client key (docs/TWILIO.md)"
            .to_owned(),
        415 => "send the parameters form-encoded (Content-Type: \
                application/x-www-form-urlencoded)"
            .to_owned(),
        _ => answer.message.clone(),
    });
    let (code, message) = match answer.status.as_u16() {
        401 => (20003, "Authenticate".to_owned()),
        403 => (20403, format!("Permission denied: {}", answer.message)),
        404 => (
            20404,
            format!("The requested resource {path} was not found"),
        ),
        405 => (20004, "Method not allowed".to_owned()),
        400 | 415 => match answer.field.as_deref() {
            Some(field) => (60200, format!("Invalid parameter: {}", parameter(field))),
            None => (60200, "Invalid parameter".to_owned()),
        },
        429 => match answer.extra.reason {
            // A limit on codes to this destination (or its country, or
            // all SMS): Twilio's "too many sends" for this To.
            // (An account-less code's "account" is its client's To.)
            Some(reason)
                if reason.starts_with("destination")
                    || reason.starts_with("sms")
                    || reason == "account_issue_rate" =>
            {
                (60203, "Max send attempts reached".to_owned())
            }
            _ => (20429, "Too Many Requests".to_owned()),
        },
        // SMS to a prefix the operator does not serve.
        409 if answer.code == "destination_not_allowed" => {
            (60605, "Verification delivery attempt blocked".to_owned())
        }
        409 => (20409, format!("Conflict: {}", answer.message)),
        503 => (20503, "Service Unavailable".to_owned()),
        s if s >= 500 => (20500, "Internal Server Error".to_owned()),
        s => (u32::from(s), answer.message.clone()),
    };
    TwilioError {
        code,
        more_info: format!("https://www.twilio.com/docs/errors/{code}"),
        message,
        status: answer.status.as_u16(),
        detail,
    }
}

/// The Twilio parameter an otpd field stands for.
fn parameter(field: &str) -> &str {
    match field {
        "phone" | "email" | "to" => "To",
        "channel" => "Channel",
        "locale" => "Locale",
        "code" => "Code",
        "challenge_id" => "VerificationSid",
        "friendly_name" => "FriendlyName",
        "code_length" => "CodeLength",
        "body" => "body",
        other => other,
    }
}

fn respond(
    status: StatusCode,
    code: u32,
    message: String,
    detail: Option<String>,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let body = TwilioError {
        code,
        message,
        more_info: format!("https://www.twilio.com/docs/errors/{code}"),
        status: status.as_u16(),
        detail,
    };
    reply(status, &body, retry_after)
}

fn reply(
    status: StatusCode,
    body: &TwilioError,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(body).unwrap_or_default(),
    )));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(seconds) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}
