//! The one place each error becomes its answer: a status, a code, a
//! message naming the problem (opaque for 5xx), and the field at fault.

use std::time::Duration;

use bytes::Bytes;
use engine::{EngineError, Limited, Rate};
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::answer::Answer;
use super::kinds::{ApiError, Rejection};
use crate::signing::SigningError;

impl ApiError {
    /// 400 for an invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// How this error is answered. Pure: see [`ApiError::into_answer`].
    pub fn answer(&self) -> Answer {
        use StatusCode as S;
        match self {
            ApiError::InvalidField { field, message } => {
                Answer::new(S::BAD_REQUEST, "invalid_field", message).field(field)
            }
            ApiError::MalformedJson { field, message } => {
                Answer::new(S::BAD_REQUEST, "malformed_json", message).field(field)
            }
            ApiError::Unauthenticated => Answer::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                "a valid client API key is required: Authorization: Bearer <key>",
            ),
            ApiError::CertificateRequired { client } => Answer::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                format!(
                    "client {client:?} must present its client certificate (mutual TLS) \
                     as well as its key"
                ),
            ),
            ApiError::CertificateMismatch { certificate, key } => Answer::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                format!(
                    "the client certificate is for client {certificate:?}, the key is for \
                     client {key:?}"
                ),
            ),
            ApiError::CertificateUnusable(why) => {
                Answer::new(S::UNAUTHORIZED, "unauthenticated", why)
            }
            ApiError::Forbidden { client, scope } => Answer::new(
                S::FORBIDDEN,
                "forbidden",
                format!("client {client:?} lacks the {:?} scope", scope.as_str()),
            ),
            ApiError::NotFound => Answer::new(S::NOT_FOUND, "not_found", "no such endpoint"),
            ApiError::MethodNotAllowed { path, allowed } => {
                let allowed = allowed.join(", ");
                let mut answer = Answer::new(
                    S::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{path} accepts {allowed}"),
                );
                answer.allow = Some(allowed);
                answer
            }
            ApiError::PayloadTooLarge(limit) => Answer::new(
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body may be at most {limit} bytes"),
            ),
            ApiError::UnsupportedMediaType => Answer::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ),
            // A client that announced more than it sent: its fault, not the server's.
            ApiError::BodyTimeout(waited) => Answer::new(
                S::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms (is Content-Length right?); \
                     nothing was done",
                    waited.as_millis()
                ),
            ),
            ApiError::Engine(e) => engine(e),
            ApiError::RateLimited(limited) => rate_limited(limited),
            ApiError::CodeRejected(rejection) => rejected(*rejection),
            ApiError::Locked => locked(),
            ApiError::InvalidCredentials => Answer::new(
                S::UNAUTHORIZED,
                "invalid_credentials",
                "the phone number, email or PIN is not right",
            ),
            ApiError::WrongCurrentPin => Answer::new(
                S::UNAUTHORIZED,
                "invalid_credentials",
                "the current PIN is not right",
            ),
            ApiError::BackupRunning => Answer::new(
                S::CONFLICT,
                "backup_running",
                "a backup is already being written; wait for it to finish",
            ),
            // The cause (paths, disk errors) goes to the log with the request id, not to the caller.
            ApiError::BackupFailed(e @ EngineError::DiskFull(_)) => Answer::new(
                S::SERVICE_UNAVAILABLE,
                "backup_failed",
                "the backup was refused (disk full: the store's file system is below its \
                 free-space reserve); free space and retry",
            )
            .retry_after(60)
            .cause(format!("backup failed: {e}")),
            ApiError::BackupFailed(e) => Answer::new(
                S::INTERNAL_SERVER_ERROR,
                "backup_failed",
                "the backup failed; the cause is in the server's log",
            )
            .cause(format!("backup failed: {e}")),
            // Readiness says why: an operator reads it, and it holds no request data.
            ApiError::NotReady(e) => {
                let mut answer = engine(e);
                answer.message = format!("not ready: {}", answer.cause.take().unwrap_or_default());
                answer
            }
            ApiError::Draining => draining().retry_after(1),
            ApiError::ShuttingDown => draining(),
            ApiError::Timeout => Answer::new(
                S::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took too long; it may or may not have taken effect",
            ),
            ApiError::Signing(SigningError::NotFound(kid)) => Answer::new(
                S::NOT_FOUND,
                "key_not_found",
                format!("no signing key has the id {kid} (see GET /v1/admin/keys)"),
            )
            .field("kid"),
            ApiError::Signing(SigningError::Refused(why)) => {
                Answer::new(S::CONFLICT, "key_refused", why.clone())
            }
            ApiError::Signing(e) => internal(format!("signing keys: {e}")),
            ApiError::IdempotencyKeyReused => Answer::new(
                S::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was sent before with a different request (method, path \
                 or body); send a new key for a new request",
            )
            .field("Idempotency-Key"),
            ApiError::IdempotencyKeyInFlight => Answer::new(
                S::CONFLICT,
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still running on another otpd node; \
                 retry after a moment to get its answer",
            )
            .field("Idempotency-Key")
            .retry_after(1),
            ApiError::IdempotentAnswerLost => Answer::new(
                S::CONFLICT,
                "idempotent_answer_lost",
                "the request with this Idempotency-Key was carried out, but its answer was \
                 not kept (the server stopped or failed before storing it); it is not carried \
                 out again: look up its outcome, or send a new key",
            )
            .field("Idempotency-Key"),
            ApiError::IdempotentAnswerNotKept { status, size } => Answer::new(
                S::CONFLICT,
                "idempotent_answer_not_kept",
                format!(
                    "the request with this Idempotency-Key was answered {}, but {}, so the \
                     answer was not kept; it is not carried out again: look up its outcome, \
                     or send a new key",
                    status.as_u16(),
                    match size {
                        Some(size) =>
                            format!("with {size} bytes, more than idempotency.max_answer_bytes"),
                        None => "the answer held a secret shown only once".to_owned(),
                    }
                ),
            )
            .field("Idempotency-Key")
            .with(|e| e.first_status = Some(status.as_u16())),
            ApiError::Internal(cause) => internal(cause.clone()),
        }
    }

    /// The answer to send, once: refusals are counted in
    /// `otpd_rate_limited_total{reason}` and SMS refusals logged.
    pub fn into_answer(self) -> Answer {
        match &self {
            ApiError::Engine(EngineError::TooSoon { .. }) => counted_refusal("resend_cooldown"),
            ApiError::Engine(EngineError::DestinationNotAllowed(_)) => {
                counted_refusal("sms_country_not_allowed");
                tracing::warn!(
                    reason = "sms_country_not_allowed",
                    "SMS refused: destination country not allowed"
                );
            }
            ApiError::Engine(EngineError::RateLimited { reason, .. })
            | ApiError::RateLimited(Limited { reason, .. }) => {
                counted_refusal(reason);
                if reason.starts_with("sms_") {
                    // Budgets are the SMS-pumping defence: an operator wants to see these.
                    tracing::warn!(reason = *reason, "SMS refused: budget exhausted");
                }
            }
            _ => {}
        }
        self.answer()
    }

    /// The response (see [`ApiError::into_answer`]).
    pub fn into_response(self) -> Response<Full<Bytes>> {
        self.into_answer().into_response()
    }
}

/// The engine names a few inputs differently from the API's JSON.
fn api_field(engine_field: &str) -> &str {
    match engine_field {
        "lifetime" => "lifetime_seconds",
        other => other,
    }
}

fn engine(e: &EngineError) -> Answer {
    use StatusCode as S;
    match e {
        EngineError::Invalid { field, message } => {
            Answer::new(S::BAD_REQUEST, "invalid_field", message).field(api_field(field))
        }
        EngineError::Conflict { field: "name" } => Answer::new(
            S::CONFLICT,
            "conflict",
            "an active client already has this name (revoke it first, or choose another)",
        )
        .field("name"),
        EngineError::Conflict { field } => Answer::new(
            S::CONFLICT,
            "conflict",
            format!("this {field} is already registered to another account"),
        )
        .field(*field),
        EngineError::AccountNotFound => {
            Answer::new(S::NOT_FOUND, "account_not_found", "no account has this id")
        }
        EngineError::ChallengeNotFound => Answer::new(
            S::NOT_FOUND,
            "challenge_not_found",
            "no challenge of this kind has this id",
        ),
        EngineError::NotPermitted { field, message } => {
            Answer::new(S::FORBIDDEN, "not_permitted", message).field(*field)
        }
        EngineError::ClientNotFound => Answer::new(
            S::NOT_FOUND,
            "client_not_found",
            "no active client has this name (see GET /v1/admin/clients)",
        )
        .field("name"),
        EngineError::ServiceNotFound => Answer::new(
            S::NOT_FOUND,
            "service_not_found",
            "the calling client has no verification service with this sid",
        ),
        EngineError::ClientKeyNotFound => Answer::new(
            S::NOT_FOUND,
            "client_key_not_found",
            "the client has no key with this id (see GET /v1/admin/clients/{name})",
        )
        .field("key_id"),
        EngineError::ActivationNotFound => Answer::new(
            S::NOT_FOUND,
            "activation_not_found",
            "no pending activation matches this identity (and birth date), or it cannot be \
             activated now; check them, or ask for a new code",
        ),
        EngineError::Locked { .. } => locked(),
        EngineError::WrongState(why) => Answer::new(S::CONFLICT, "wrong_state", *why),
        EngineError::LastContact { field, reason } => {
            Answer::new(S::CONFLICT, "last_contact", *reason).field(*field)
        }
        EngineError::ChannelUnavailable(what) => Answer::new(
            S::CONFLICT,
            "channel_unavailable",
            format!("the account has no {what} to send a code to"),
        )
        .field("channel"),
        EngineError::TooSoon { retry_after } => {
            let seconds = whole_seconds(*retry_after);
            Answer::new(
                S::TOO_MANY_REQUESTS,
                "too_soon",
                format!("a new code can be requested in {seconds} s"),
            )
            .with(|e| e.reason = Some("resend_cooldown"))
            .retry_after(seconds)
        }
        EngineError::RateLimited {
            reason,
            limit,
            per,
            retry_after,
        } => rate_limited(&Limited {
            reason,
            rate: Rate {
                count: *limit,
                per: *per,
            },
            retry_after: *retry_after,
        }),
        EngineError::DestinationNotAllowed(why) => {
            Answer::new(S::CONFLICT, "destination_not_allowed", *why)
                .with(|e| e.reason = Some("sms_country_not_allowed"))
                .field("channel")
        }
        EngineError::Storage(cause) => storage_unavailable(
            "the store cannot take writes right now; nothing was changed",
            cause.clone(),
        ),
        EngineError::DiskFull(_) => storage_unavailable(
            "the store's disk is full, so it takes no writes until space is freed; \
             nothing was changed",
            e.to_string(),
        ),
        EngineError::NotStored(cause) => storage_unavailable(
            "the store failed to write this change, so it is not acknowledged",
            cause.clone(),
        ),
        EngineError::Corrupt(cause)
        | EngineError::StoreInUse(cause)
        | EngineError::Internal(cause) => internal(cause.clone()),
    }
}

/// 503 `storage_unavailable`: `message` for the caller, `cause` for the log.
fn storage_unavailable(message: &str, cause: String) -> Answer {
    Answer::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        message,
    )
    .retry_after(5)
    .cause(cause)
}

/// 429 for a rate limit, with `Retry-After`, the limit's name (`reason`) and its rate.
fn rate_limited(limited: &Limited) -> Answer {
    let seconds = whole_seconds(limited.retry_after);
    Answer::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests: the {} limit allows {} per {} s; retry in {seconds} s",
            limited.reason,
            limited.rate.count,
            limited.rate.per.as_secs()
        ),
    )
    .with(|e| {
        e.reason = Some(limited.reason);
        e.limit = Some(limited.rate.count);
        e.period_seconds = Some(limited.rate.per.as_secs());
    })
    .retry_after(seconds)
}

fn rejected(rejection: Rejection) -> Answer {
    let gone = |code, message| Answer::new(StatusCode::GONE, code, message);
    match rejection {
        Rejection::WrongCode { attempts_remaining } => {
            Answer::new(StatusCode::UNAUTHORIZED, "wrong_code", "the code is wrong")
                .with(|e| e.attempts_remaining = Some(attempts_remaining))
        }
        Rejection::Expired => gone("expired", "the code has expired; ask for a new one"),
        Rejection::Superseded => gone(
            "superseded",
            "a newer code was sent; only the last one is valid",
        ),
        Rejection::Exhausted => gone(
            "exhausted",
            "too many wrong attempts on this code; ask for a new one",
        ),
        Rejection::AlreadyUsed => gone("already_used", "the code was already used"),
        Rejection::Cancelled => gone(
            "cancelled",
            "the verification was cancelled; start a new one",
        ),
    }
}

/// 423 for a locked account.
fn locked() -> Answer {
    Answer::new(
        StatusCode::LOCKED,
        "locked",
        "the account is locked; it can be unlocked by the service desk",
    )
}

fn draining() -> Answer {
    Answer::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "the server is shutting down",
    )
}

/// A 500 whose cause is logged, never shown.
fn internal(cause: String) -> Answer {
    Answer::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; it has been logged",
    )
    .cause(cause)
}

fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn counted_refusal(reason: &'static str) {
    metrics::counter!("otpd_rate_limited_total", "reason" => reason).increment(1);
}

#[cfg(test)]
mod tests {
    use hyper::header::{ALLOW, RETRY_AFTER};

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
            (
                EngineError::NotPermitted {
                    field: "channel",
                    message: "not this one".into(),
                },
                403,
            ),
            (EngineError::ClientNotFound, 404),
            (EngineError::ClientKeyNotFound, 404),
            (EngineError::Locked { until: None }, 423),
            (EngineError::WrongState("x"), 409),
            (
                EngineError::LastContact {
                    field: "email",
                    reason: "why",
                },
                409,
            ),
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
            assert_eq!(ApiError::from(error).answer().status.as_u16(), status);
        }
    }

    #[test]
    fn server_errors_are_opaque_and_retry_after_is_rounded_up() {
        let e = ApiError::from(EngineError::Internal("secret detail".into())).answer();
        assert!(!e.message.contains("secret"));
        assert_eq!(e.cause.as_deref(), Some("secret detail"));
        let response = ApiError::from(EngineError::TooSoon {
            retry_after: Duration::from_millis(1500),
        })
        .into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "2");
    }

    #[test]
    fn idempotency_refusals_name_the_header_and_say_nothing_ran_again() {
        let cases = [
            (ApiError::IdempotencyKeyReused, 422, "different request"),
            (ApiError::IdempotentAnswerLost, 409, "not carried out again"),
            (
                ApiError::IdempotencyKeyInFlight,
                409,
                "still running on another",
            ),
            (
                ApiError::IdempotentAnswerNotKept {
                    status: StatusCode::OK,
                    size: Some(9_000),
                },
                409,
                "9000 bytes",
            ),
            (
                ApiError::IdempotentAnswerNotKept {
                    status: StatusCode::CREATED,
                    size: None,
                },
                409,
                "secret",
            ),
        ];
        for (error, status, says) in cases {
            let answer = error.answer();
            assert_eq!(answer.status.as_u16(), status, "{error:?}");
            assert_eq!(answer.field.as_deref(), Some("Idempotency-Key"));
            assert!(answer.message.contains(says), "{}", answer.message);
        }
    }

    #[test]
    fn the_engines_lifetime_is_answered_as_the_apis_lifetime_seconds() {
        let e = ApiError::from(EngineError::Invalid {
            field: "lifetime",
            message: "must be at least 10 s".into(),
        });
        assert_eq!(e.answer().field.as_deref(), Some("lifetime_seconds"));
    }

    #[test]
    fn a_405_lists_the_allowed_methods_in_its_message_and_allow_header() {
        let response = ApiError::MethodNotAllowed {
            path: "/livez",
            allowed: vec!["GET", "HEAD"],
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
    }
}
