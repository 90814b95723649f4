//! otp-loadtest: drives otpd's real flows (issue, delivery to a sink,
//! verify) with an open or closed arrival model, and reports latency
//! percentiles per step and per flow from HdrHistograms, measured from each
//! arrival's intended start so queueing is not hidden (coordinated omission).

pub mod argon2;
pub mod codes;
pub mod options;
pub mod report;
pub mod run;
pub mod seed;
pub mod sink;
pub mod stats;
pub mod sweep;
pub mod threshold;

pub use argon2::Argon2Ceiling;
pub use options::{Flow, Mix, Model, Options, Pick};
pub use report::Report;
pub use run::{Account, Http, run};
pub use sink::Sink;
pub use threshold::Threshold;
