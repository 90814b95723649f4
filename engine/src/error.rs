//! The engine's one error type. An `Err` from the engine always means nothing changed.

use std::time::Duration;

/// Why an engine operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An input failed validation; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The input field at fault, as the API names it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The value is already bound to another live account.
    #[error("{field} is already registered to another account")]
    Conflict {
        /// `identity`, `phone` or `email`.
        field: &'static str,
    },
    /// No account has this id.
    #[error("account not found")]
    AccountNotFound,
    /// No challenge has this id (or it belongs to another purpose).
    #[error("challenge not found")]
    ChallengeNotFound,
    /// The calling client may not do this: its policy (purposes, channels)
    /// or test mode forbids it. `field` names what is not allowed.
    #[error("{field}: {message}")]
    NotPermitted {
        /// The input or setting at fault, as the API names it.
        field: &'static str,
        /// What is not allowed, and why.
        message: String,
    },
    /// No active client has this name.
    #[error("no active client has this name")]
    ClientNotFound,
    /// The calling client has no verification service with this id.
    #[error("the calling client has no verification service with this id")]
    ServiceNotFound,
    /// The client has no key with this id.
    #[error("the client has no key with this id")]
    ClientKeyNotFound,
    /// No pending registration matches this identity and birth date.
    #[error("no pending registration matches this identity and birth date")]
    ActivationNotFound,
    /// The account is locked; only a privileged unlock or PIN reset lifts it.
    #[error("account is locked")]
    Locked {
        /// When a temporary lock ends; `None` for a lock that needs an unlock.
        until: Option<crate::Timestamp>,
    },
    /// The operation does not apply to the account in its current state.
    #[error("{0}")]
    WrongState(&'static str),
    /// Removing this contact would leave the account unable to log in or
    /// to receive codes; `reason` says which.
    #[error("{reason}")]
    LastContact {
        /// `phone`, `email`, `push_device` or `dm`: the contact that stays.
        field: &'static str,
        /// Why, in words for the caller.
        reason: &'static str,
    },
    /// The account has no contact for the requested channel.
    #[error("the account has no {0} to send a code to")]
    ChannelUnavailable(&'static str),
    /// A new code for this challenge was asked for too soon.
    #[error("a new code can be requested in {} s", retry_after.as_secs().max(1))]
    TooSoon {
        /// How long the caller must wait.
        retry_after: Duration,
    },
    /// A rate limit refused the operation.
    #[error("rate limit {reason} ({limit} per {} s) reached; retry in {} s", per.as_secs(), retry_after.as_secs().max(1))]
    RateLimited {
        /// Which limit (machine-readable).
        reason: &'static str,
        /// The limit's count...
        limit: u32,
        /// ...per this period.
        per: Duration,
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// Policy forbids sending to this destination.
    #[error("{0}")]
    DestinationNotAllowed(&'static str),
    /// The store failed; the operation did not take effect.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The store's disk is below its free-space reserve; the operation was
    /// refused before it changed anything.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// The change was made in memory but its write to disk failed: it is
    /// not acknowledged, and not promised undone.
    #[error("not stored: {0}")]
    NotStored(String),
    /// The data directory is held by another live process (one process per store).
    #[error("{0}")]
    StoreInUse(String),
    /// The store holds data the engine cannot read; it refuses to run on it.
    #[error("the data directory is corrupt: {0}")]
    Corrupt(String),
    /// An internal invariant failed (a bug); the operation did not take effect.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// For a refusal by a sending limit or policy: which one.
    pub(crate) fn limit_reason(&self) -> Option<&'static str> {
        match self {
            EngineError::RateLimited { reason, .. } => Some(reason),
            EngineError::DestinationNotAllowed(_) => Some("sms_country_not_allowed"),
            EngineError::TooSoon { .. } => Some("resend_cooldown"),
            _ => None,
        }
    }

    pub(crate) fn not_permitted(field: &'static str, message: impl Into<String>) -> Self {
        Self::NotPermitted {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<sled::Error> for EngineError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => Self::Corrupt(e.to_string()),
            other => Self::Storage(other.to_string()),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
