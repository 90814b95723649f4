//! What every request handler shares: the engine, the configuration and the server's parts.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use engine::Engine;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::delivery::{Dispatcher, Wakeup};
use crate::limits::Gate;
use crate::pin_workers::PinWorkers;
use crate::signing::Attester;

/// What every request handler shares.
pub struct AppState {
    /// The domain.
    pub engine: Arc<Engine>,
    /// The configuration in force.
    pub config: Config,
    /// The delivery channels.
    pub dispatcher: Arc<Dispatcher>,
    /// Wakes the sender when a code is queued.
    pub wakeup: Wakeup,
    /// The threads that hash and verify PINs.
    pub pin_workers: PinWorkers,
    /// Set when shutdown begins; `/readyz` then answers 503.
    pub draining: AtomicBool,
    /// Set while a backup is being written (one at a time).
    pub backing_up: AtomicBool,
    /// The metrics recorder's handle.
    pub metrics: PrometheusHandle,
    /// Per-IP and per-client rate limits.
    pub gate: Gate,
    /// Signs attestations of approvals; holds the signing keys.
    pub attester: Attester,
    /// Requests with an `Idempotency-Key` running now.
    pub in_flight: crate::routes::in_flight::InFlight,
    /// The listeners' TLS, when `server.tls` turns it on.
    pub tls: Option<Arc<crate::tls::Tls>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A code was issued (its message is in the outbox): wakes the sender
    /// for it and counts it. Every route that sends a code calls this.
    pub fn code_issued(&self, issued: &engine::Issued) {
        self.wakeup.ring();
        metrics::counter!(
            "otpd_codes_issued_total",
            "purpose" => issued.purpose.as_str(),
            "channel" => issued.channel.as_str()
        )
        .increment(1);
    }
}
