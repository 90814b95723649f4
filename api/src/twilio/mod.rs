//! Drop-in compatibility with the Twilio Verify v2 API (`/v2/…`): a
//! service coded against Twilio's SDKs moves to otpd by changing the base
//! URL and the credentials (docs/TWILIO.md).
//!
//! The surface is a translation, not a second engine: a Twilio Service is
//! a verification service in its client's configuration, a Verification is
//! an account-less challenge (`engine::destinations`), HTTP Basic
//! credentials are a client key in another form. Requests are
//! form-encoded with Twilio's PascalCase names; answers and errors are
//! Twilio's JSON shapes. Where otpd is stricter (a new code on every send,
//! its own attempt budget and lifetime), otpd's rule holds.

pub mod credentials;
pub mod errors;
pub mod handlers;
pub use operation::Operation;
mod operation;
mod params;
mod shapes;

/// Whether a request path is on the Twilio surface (its errors are Twilio's).
pub fn is_twilio(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}
