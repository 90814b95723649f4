//! Behaviour of the engine through its public API: one test binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account_recovery;
mod accounts;
mod audit;
mod backup;
mod clients;
mod codes;
mod compat;
mod concurrency;
mod contacts;
mod helpers;
mod idempotency;
mod lifecycle;
mod lockout;
mod model;
mod notices;
mod outbox;
mod parsers;
mod recovery;
mod signatures;
mod test_clients;
