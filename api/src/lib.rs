//! otpd: the one-time-code service. This crate alone knows HTTP; the domain is in `engine`.

pub mod audit;
mod cidr;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod error;
pub mod failure;
pub mod limits;
pub mod pin_workers;
mod routes;
pub mod secret_ref;
pub mod secrets;
pub mod signing;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod twilio;
mod wire;

pub use startup::{App, Dependencies};
pub use state::AppState;

/// A timestamp as the API writes it (RFC 3339, UTC).
pub fn wire_time(t: engine::Timestamp) -> String {
    wire::rfc3339(t)
}

/// A client's claim on an `Idempotency-Key` for a request (method and
/// path, body), as the server makes it: for tests that stage a claim as a
/// crash leaves it.
pub use routes::idempotency::claim as idempotency_claim;
