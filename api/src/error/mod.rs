//! Every error the API answers, and the one place each becomes a status, a code and a body.
//!
//! Bodies are `{"error": {"code", "message", "field"}}`. 5xx bodies are
//! opaque; their cause is logged with the request id.
//!
//! `kinds.rs` says why a request failed, `answer.rs` what an answer holds,
//! `mapping.rs` how each reason is answered.

mod answer;
mod kinds;
mod mapping;

pub use answer::{Answer, ErrorBody, ErrorExtra, ErrorOut};
pub use kinds::{ApiError, Rejection};
