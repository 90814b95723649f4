//! Where issued codes go. This build has the development sink only.

use engine::Issued;

/// Takes each issued code to its citizen.
pub trait Delivery: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Whether this delivery may serve real citizens.
    fn fit_for_production(&self) -> bool;

    /// Hands over one code. Must not block: slow work belongs on another task.
    fn deliver(&self, issued: &Issued);
}

/// Writes each code to the log. **For local development only**: it puts
/// codes in the log, which production logs must never contain, so the
/// service refuses to start with it when `environment = "production"`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl Delivery for LogSink {
    fn name(&self) -> &'static str {
        "development-log-sink"
    }

    fn fit_for_production(&self) -> bool {
        false
    }

    fn deliver(&self, issued: &Issued) {
        tracing::warn!(
            target: "otpd::dev_sink",
            challenge_id = %issued.challenge_id,
            channel = issued.channel.as_str(),
            to = %issued.masked_destination,
            code = issued.code.expose(),
            "DEVELOPMENT SINK (not for production): code would be sent"
        );
    }
}
