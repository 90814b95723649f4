//! An error as answered: status, code, message, field, headers, and the
//! cause a 5xx logs but never shows.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

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
    /// Extra members of the error object (e.g. `attempts_remaining`).
    pub extra: Vec<(&'static str, Value)>,
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
            extra: Vec::new(),
            allow: None,
            cause: None,
        }
    }

    pub(super) fn field(mut self, field: impl Into<String>) -> Answer {
        self.field = Some(field.into());
        self
    }

    pub(super) fn with(mut self, key: &'static str, value: Value) -> Answer {
        self.extra.push((key, value));
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
    pub fn object(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message, "field": self.field });
        if let Some(object) = error.as_object_mut() {
            for (key, value) in &self.extra {
                object.insert((*key).to_owned(), value.clone());
            }
        }
        error
    }

    /// The response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = json!({ "error": self.object() }).to_string();
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
