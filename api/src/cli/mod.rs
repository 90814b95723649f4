//! What the `otpd` commands other than `serve` do, kept in the library so
//! tests can run them: managing signing keys (`keys.rs`), checking an
//! attestation offline (`attestation.rs`), and asking a running server to
//! act for a command (`server.rs`).

pub mod attestation;
pub mod keys;
pub mod server;
