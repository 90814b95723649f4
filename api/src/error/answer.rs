//! An error as answered: status, code, message, field, headers, and the
//! cause a 5xx logs but never shows.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorOut<'a>,
}

/// The error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorOut<'a> {
    /// Machine-readable: `invalid_field`, `unauthenticated`, `wrong_code`,
    /// `locked`, `rate_limited`, ... (docs/API.md lists them all).
    pub code: &'static str,
    /// For people; opaque for 5xx (the cause is logged under the request id).
    pub message: &'a str,
    /// The request field at fault by its path (`phone`, `identity.number`),
    /// `body` when the body as a whole is wrong, or `null`.
    pub field: Option<&'a str>,
    #[serde(flatten)]
    pub extra: &'a ErrorExtra,
}

/// Members some errors add to the error object.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorExtra {
    /// `wrong_code`: attempts left on the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    /// `rate_limited`: which limit (`ip_issue_rate`, `sms_country_budget`, ...);
    /// `too_soon`: `resend_cooldown`; `destination_not_allowed`: `sms_country_not_allowed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// `rate_limited`: requests allowed per `period_seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u64>,
    /// `idempotent_answer_not_kept`: the status of the answer not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_status: Option<u16>,
}

/// An error as answered: everything the response and the log line need.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message (opaque for 5xx).
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Members of the error object some errors add.
    pub extra: ErrorExtra,
    /// The methods a 405's path takes (the `Allow` header).
    pub allow: Option<String>,
    /// The cause of a 5xx, for the log only.
    pub cause: Option<String>,
}

impl Answer {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Answer {
        Answer {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            extra: ErrorExtra::default(),
            allow: None,
            cause: None,
        }
    }

    pub(super) fn field(mut self, field: impl Into<String>) -> Answer {
        self.field = Some(field.into());
        self
    }

    pub(super) fn with(mut self, extra: impl FnOnce(&mut ErrorExtra)) -> Answer {
        extra(&mut self.extra);
        self
    }

    pub(super) fn retry_after(mut self, seconds: u64) -> Answer {
        self.retry_after = Some(seconds);
        self
    }

    pub(super) fn cause(mut self, cause: impl Into<String>) -> Answer {
        self.cause = Some(cause.into());
        self
    }

    /// The error object: `{"code", "message", "field", …extra}`.
    pub fn object(&self) -> ErrorOut<'_> {
        ErrorOut {
            code: self.code,
            message: &self.message,
            field: self.field.as_deref(),
            extra: &self.extra,
        }
    }

    /// The whole body: `{"error": {…}}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody {
            error: self.object(),
        })
        .unwrap_or_default()
    }

    /// The response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = self.body();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(ALLOW, allow);
        }
        response
    }
}
