//! Why a request was not served, as the handlers say it.

use std::time::Duration;

use engine::{EngineError, Limited, Scope};
use hyper::StatusCode;

use crate::signing::SigningError;

/// Why a request was not served.
#[derive(Debug)]
pub enum ApiError {
    /// A field failed validation.
    InvalidField {
        /// The field at fault, by its path.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The body is not the JSON object the endpoint takes.
    MalformedJson {
        /// The field at fault by its path, or `body`.
        field: String,
        /// What the JSON reader said, without type names.
        message: String,
    },
    /// No client key, or not a valid one.
    Unauthenticated,
    /// A client whose mapping (`server.tls.clients`, mode `also`) needs its
    /// client certificate as well as its key sent the key alone.
    CertificateRequired {
        /// The client the key is for.
        client: String,
    },
    /// The client certificate and the key name different clients.
    CertificateMismatch {
        /// The client the certificate is mapped to.
        certificate: String,
        /// The client the key is for.
        key: String,
    },
    /// A client certificate that cannot identify one client (why).
    CertificateUnusable(String),
    /// The client lacks the endpoint's scope.
    Forbidden {
        /// The client's name.
        client: String,
        /// The scope it lacks.
        scope: Scope,
    },
    /// No endpoint has this path.
    NotFound,
    /// The path exists with other methods.
    MethodNotAllowed {
        /// The path's template.
        path: &'static str,
        /// The methods it takes.
        allowed: Vec<&'static str>,
    },
    /// The body is over the endpoint's limit (bytes).
    PayloadTooLarge(usize),
    /// A body that is not `application/json`.
    UnsupportedMediaType,
    /// The body did not arrive within this long of the headers.
    BodyTimeout(Duration),
    /// The engine refused or failed.
    Engine(EngineError),
    /// A request-level rate limit refused the request.
    RateLimited(Limited),
    /// A code was checked and not accepted.
    CodeRejected(Rejection),
    /// The account is locked.
    Locked,
    /// Login: unknown phone or email, or a wrong PIN (one answer for both).
    InvalidCredentials,
    /// A PIN change whose current PIN is wrong.
    WrongCurrentPin,
    /// A backup is already being written.
    BackupRunning,
    /// The backup could not be written.
    BackupFailed(EngineError),
    /// `/readyz`: the store cannot take writes.
    NotReady(EngineError),
    /// `/readyz` once shutdown has begun.
    Draining,
    /// PIN work refused because the workers are stopping for shutdown.
    ShuttingDown,
    /// The request took longer than `server.request_timeout_ms`.
    Timeout,
    /// A signing-key operation failed or was refused.
    Signing(SigningError),
    /// An `Idempotency-Key` sent before with another request.
    IdempotencyKeyReused,
    /// An `Idempotency-Key` whose first request runs now on another node.
    IdempotencyKeyInFlight,
    /// An `Idempotency-Key` whose request changed state but whose answer
    /// was never stored (the server stopped in between, or failed).
    IdempotentAnswerLost,
    /// An `Idempotency-Key` whose answer was not kept: too large, or it
    /// held a secret shown once.
    IdempotentAnswerNotKept {
        /// The first answer's status.
        status: StatusCode,
        /// Its size in bytes when it was too large; `None` for a secret.
        size: Option<u64>,
    },
    /// A bug; the cause is logged, never shown.
    Internal(String),
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Wrong; this many attempts remain.
    WrongCode {
        /// Attempts left on the challenge.
        attempts_remaining: u32,
    },
    /// Past its lifetime.
    Expired,
    /// A newer code was sent.
    Superseded,
    /// Out of attempts.
    Exhausted,
    /// Used already.
    AlreadyUsed,
    /// Cancelled by its client (an account-less code).
    Cancelled,
}

impl From<SigningError> for ApiError {
    fn from(e: SigningError) -> Self {
        ApiError::Signing(e)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::Engine(e)
    }
}

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        ApiError::RateLimited(limited)
    }
}
