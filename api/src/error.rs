//! Every error the API can answer, and the one place engine errors become HTTP statuses.
//!
//! Bodies are `{"error": {"code", "message", "field"}}`. 5xx bodies are
//! opaque; their cause is logged with the request id.

use bytes::Bytes;
use std::time::Duration;

use engine::{EngineError, Limited, Rate};
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

/// An error answer. Boxed, so `Result<_, ApiError>` stays small on the hot path.
#[derive(Debug)]
pub struct ApiError(Box<ApiErrorBody>);

/// The parts of an error answer.
#[derive(Debug)]
pub struct ApiErrorBody {
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
    pub extra: Vec<(&'static str, serde_json::Value)>,
    /// The cause of a 5xx, for the log only.
    pub cause: Option<String>,
}

impl std::ops::Deref for ApiError {
    type Target = ApiErrorBody;

    fn deref(&self) -> &ApiErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ApiErrorBody {
        &mut self.0
    }
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(ApiErrorBody {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            extra: Vec::new(),
            cause: None,
        }))
    }

    /// 400 for an invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_field", message);
        e.field = Some(field.into());
        e
    }

    /// A 500 whose cause is logged, never shown.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        );
        e.cause = Some(cause.into());
        e
    }

    /// Adds a member to the error object.
    pub fn with(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.extra.push((key, value));
        self
    }

    /// The response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let this = *self.0;
        let mut error = serde_json::json!({
            "code": this.code,
            "message": this.message,
            "field": this.field,
        });
        if let Some(object) = error.as_object_mut() {
            for (key, value) in this.extra {
                object.insert(key.to_owned(), value);
            }
        }
        let body = serde_json::json!({ "error": error }).to_string();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = this.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(seconds) = this.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use StatusCode as S;
        match e {
            EngineError::Invalid { field, message } => ApiError::invalid(field, message),
            EngineError::Conflict { field } => {
                let mut err = ApiError::new(
                    S::CONFLICT,
                    "conflict",
                    format!("this {field} is already registered to another account"),
                );
                err.field = Some(field.to_owned());
                err
            }
            EngineError::AccountNotFound => {
                ApiError::new(S::NOT_FOUND, "account_not_found", "no account has this id")
            }
            EngineError::ChallengeNotFound => ApiError::new(
                S::NOT_FOUND,
                "challenge_not_found",
                "no challenge of this kind has this id",
            ),
            EngineError::ActivationNotFound => ApiError::new(
                S::NOT_FOUND,
                "activation_not_found",
                "no pending activation matches this identity (and birth date), or it cannot be activated now; check them, or ask for a new code",
            ),
            EngineError::Locked { .. } => locked(),
            EngineError::WrongState(why) => ApiError::new(S::CONFLICT, "wrong_state", why),
            EngineError::ChannelUnavailable(what) => {
                let mut err = ApiError::new(
                    S::CONFLICT,
                    "channel_unavailable",
                    format!("the account has no {what} to send a code to"),
                );
                err.field = Some("channel".into());
                err
            }
            EngineError::TooSoon { retry_after } => {
                let seconds = whole_seconds(retry_after);
                counted_refusal("resend_cooldown");
                let mut err = ApiError::new(
                    S::TOO_MANY_REQUESTS,
                    "too_soon",
                    format!("a new code can be requested in {seconds} s"),
                )
                .with("reason", "resend_cooldown".into());
                err.retry_after = Some(seconds);
                err
            }
            EngineError::RateLimited {
                reason,
                limit,
                per,
                retry_after,
            } => rate_limited(Limited {
                reason,
                rate: Rate { count: limit, per },
                retry_after,
            }),
            EngineError::DestinationNotAllowed(why) => {
                counted_refusal("sms_country_not_allowed");
                tracing::warn!(
                    reason = "sms_country_not_allowed",
                    "SMS refused: destination country not allowed"
                );
                let mut err = ApiError::new(S::CONFLICT, "destination_not_allowed", why)
                    .with("reason", "sms_country_not_allowed".into());
                err.field = Some("channel".into());
                err
            }
            EngineError::Storage(cause) => storage_unavailable(
                "the store cannot take writes right now; nothing was changed",
                cause,
            ),
            e @ EngineError::DiskFull(_) => storage_unavailable(
                "the store's disk is full, so it takes no writes until space is freed; \
                 nothing was changed",
                e.to_string(),
            ),
            EngineError::NotStored(cause) => storage_unavailable(
                "the store failed to write this change, so it is not acknowledged",
                cause,
            ),
            EngineError::Corrupt(cause)
            | EngineError::StoreInUse(cause)
            | EngineError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

/// 503 `storage_unavailable`: `message` for the caller, `cause` for the log.
fn storage_unavailable(message: &str, cause: String) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        message,
    );
    err.retry_after = Some(5);
    err.cause = Some(cause);
    err
}

/// 429 for a rate limit, with `Retry-After`, the limit's name (`reason`) and
/// its rate. Counted in `otpd_rate_limited_total{reason}`.
pub fn rate_limited(limited: Limited) -> ApiError {
    let seconds = whole_seconds(limited.retry_after);
    counted_refusal(limited.reason);
    if limited.reason.starts_with("sms_") {
        // Budgets are the SMS-pumping defence: an operator wants to see these.
        tracing::warn!(reason = limited.reason, "SMS refused: budget exhausted");
    }
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests: the {} limit allows {} per {} s; retry in {seconds} s",
            limited.reason,
            limited.rate.count,
            limited.rate.per.as_secs()
        ),
    )
    .with("reason", limited.reason.into())
    .with("limit", limited.rate.count.into())
    .with("period_seconds", limited.rate.per.as_secs().into());
    err.retry_after = Some(seconds);
    err
}

fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn counted_refusal(reason: &'static str) {
    metrics::counter!("otpd_rate_limited_total", "reason" => reason).increment(1);
}

/// 423 for a locked account.
pub fn locked() -> ApiError {
    ApiError::new(
        StatusCode::LOCKED,
        "locked",
        "the account is locked; it can be unlocked by the service desk",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_error_gets_a_deliberate_status() {
        let cases = [
            (
                EngineError::Invalid {
                    field: "pin",
                    message: "bad".into(),
                },
                400,
            ),
            (EngineError::Conflict { field: "phone" }, 409),
            (EngineError::AccountNotFound, 404),
            (EngineError::ChallengeNotFound, 404),
            (EngineError::ActivationNotFound, 404),
            (EngineError::Locked { until: None }, 423),
            (EngineError::WrongState("x"), 409),
            (EngineError::ChannelUnavailable("email address"), 409),
            (
                EngineError::TooSoon {
                    retry_after: Duration::from_millis(1500),
                },
                429,
            ),
            (
                EngineError::RateLimited {
                    reason: "account_issue_rate",
                    limit: 5,
                    per: Duration::from_secs(600),
                    retry_after: Duration::from_secs(120),
                },
                429,
            ),
            (EngineError::DestinationNotAllowed("no"), 409),
            (EngineError::Storage("closing".into()), 503),
            (EngineError::DiskFull("1 MiB free".into()), 503),
            (EngineError::NotStored("flush failed".into()), 503),
            (EngineError::Corrupt("bad".into()), 500),
            (EngineError::StoreInUse("held".into()), 500),
            (EngineError::Internal("bug".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status.as_u16(), status);
        }
    }

    #[test]
    fn server_errors_are_opaque_and_retry_after_is_rounded_up() {
        let e = ApiError::from(EngineError::Internal("secret detail".into()));
        assert!(!e.message.contains("secret"));
        let response = ApiError::from(EngineError::TooSoon {
            retry_after: Duration::from_millis(1500),
        })
        .into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "2");
    }
}
