//! Delivery: the sender task that drains the engine's outbox into the channels.
//!
//! The engine owns the outbox (durable, retried, dead-lettered); this module
//! only sends. Each channel classifies its outcome as sent, transient
//! (retry) or permanent, and the engine decides what happens next.

mod http;
mod letter;
mod smtp;
pub mod templates;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Channel as Via, Engine, Outgoing, SendResult, Timestamp};
use tokio::sync::{Notify, Semaphore};

use crate::config::{Config, Environment, LetterMode};
use crate::secrets::resolve_secret;
pub use templates::Rendered;

/// What a channel's `send` returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = SendResult> + Send + 'a>>;

/// One way of reaching citizens.
pub trait Channel: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Whether it may serve real citizens.
    fn fit_for_production(&self) -> bool {
        true
    }

    /// The longest one send may take, given the per-request timeout
    /// (a channel that tries several endpoints needs several).
    fn worst_case(&self, per_request: Duration) -> Duration {
        per_request
    }

    /// Sends one message; `rendered` has its words.
    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a>;
}

/// Writes each code to the log. **For local development only**: it puts codes
/// in the log, so otpd refuses to start with it in production.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl Channel for LogSink {
    fn name(&self) -> &'static str {
        "development-log-sink"
    }

    fn fit_for_production(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a> {
        match message.notice {
            Some(notice) => tracing::warn!(
                target: "otpd::dev_sink",
                message_id = %message.id,
                notice = notice.as_str(),
                channel = message.channel.as_str(),
                text = %rendered.short,
                "DEVELOPMENT SINK (not for production): notice would be sent"
            ),
            None => tracing::warn!(
                target: "otpd::dev_sink",
                message_id = %message.id,
                challenge_id = %message.challenge_id,
                channel = message.channel.as_str(),
                code = message.code.expose(),
                text = %rendered.short,
                "DEVELOPMENT SINK (not for production): code would be sent"
            ),
        }
        Box::pin(async { SendResult::Sent })
    }
}

/// The configured channel for each way of sending, and the catch-all.
pub struct Dispatcher {
    sms: Option<Arc<dyn Channel>>,
    email: Option<Arc<dyn Channel>>,
    push: Option<Arc<dyn Channel>>,
    letter: Option<Arc<dyn Channel>>,
    dm: Option<Arc<dyn Channel>>,
    /// Takes messages for channels without their own (the log sink, or a test's capture).
    fallback: Option<Arc<dyn Channel>>,
    service_name: String,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |c: &Option<Arc<dyn Channel>>| c.as_ref().map(|c| c.name());
        f.debug_struct("Dispatcher")
            .field("sms", &name(&self.sms))
            .field("email", &name(&self.email))
            .field("push", &name(&self.push))
            .field("letter", &name(&self.letter))
            .field("dm", &name(&self.dm))
            .field("fallback", &name(&self.fallback))
            .finish()
    }
}

impl Dispatcher {
    /// Builds the channels from configuration. `fallback` replaces the log
    /// sink as the catch-all (tests pass a capture).
    pub fn from_config(
        config: &Config,
        fallback: Option<Arc<dyn Channel>>,
    ) -> Result<Self, String> {
        let d = &config.delivery;
        let http = http::HttpClient::new(Duration::from_millis(d.send_timeout_ms))?;
        let sms: Option<Arc<dyn Channel>> = if d.sms.is_empty() {
            None
        } else {
            Some(Arc::new(http::SmsGateways::new(http.clone(), &d.sms)?))
        };
        let email: Option<Arc<dyn Channel>> = if d.email.enabled {
            Some(Arc::new(smtp::Email::new(&d.email, d.send_timeout_ms)?))
        } else {
            None
        };
        let push: Option<Arc<dyn Channel>> = if d.push.url.is_empty() {
            None
        } else {
            Some(Arc::new(http::JsonWebhook::push(http.clone(), &d.push)?))
        };
        let letter: Option<Arc<dyn Channel>> = match d.letter.mode {
            LetterMode::Off => None,
            LetterMode::Spool => Some(Arc::new(letter::Spool::new(&d.letter.spool_dir)?)),
            LetterMode::Webhook => Some(Arc::new(http::JsonWebhook::letter(
                http.clone(),
                &d.letter,
            )?)),
        };
        let dm: Option<Arc<dyn Channel>> = if d.dm.url.is_empty() {
            None
        } else {
            Some(Arc::new(http::DmRelay::new(http, &d.dm)?))
        };
        let fallback = match fallback {
            Some(f) => Some(f),
            None if d.log_sink => Some(Arc::new(LogSink) as Arc<dyn Channel>),
            None => None,
        };
        let dispatcher = Dispatcher {
            sms,
            email,
            push,
            letter,
            dm,
            fallback,
            service_name: d.service_name.clone(),
        };
        if config.environment == Environment::Production
            && let Some(f) = dispatcher
                .fallback
                .as_ref()
                .filter(|f| !f.fit_for_production())
        {
            return Err(format!(
                "delivery: {:?} prints codes to the log and is for development only; \
                     set delivery.log_sink = false and configure the channels, \
                     or set environment = \"development\"",
                f.name()
            ));
        }
        Ok(dispatcher)
    }

    /// Channels that have somewhere to go.
    pub fn enabled(&self) -> Vec<Via> {
        Via::ALL
            .into_iter()
            .filter(|via| self.channel_for(*via).is_some())
            .collect()
    }

    fn channel_for(&self, via: Via) -> Option<&Arc<dyn Channel>> {
        let own = match via {
            Via::Sms => &self.sms,
            Via::Email => &self.email,
            Via::Push => &self.push,
            Via::Letter => &self.letter,
            Via::Dm => &self.dm,
        };
        own.as_ref().or(self.fallback.as_ref())
    }

    /// The longest a send by `via` may take: the sender's safety net above
    /// the channels' own timeouts.
    pub fn deadline(&self, via: Via, per_request: Duration) -> Duration {
        let channel = self.channel_for(via);
        channel.map_or(per_request, |c| c.worst_case(per_request)) + Duration::from_secs(1)
    }

    /// Sends one message through its channel.
    pub async fn send(&self, message: &Outgoing, now: Timestamp) -> SendResult {
        let Some(channel) = self.channel_for(message.channel) else {
            return SendResult::Permanent {
                reason: format!("no {} channel is configured", message.channel.as_str()),
            };
        };
        let rendered = templates::render(message, &self.service_name, now);
        channel.send(message, &rendered).await
    }
}

/// Wakes the sender when a code has been queued.
#[derive(Debug, Default, Clone)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// A message was queued.
    pub fn ring(&self) {
        self.0.notify_one();
    }
}

/// Drains the outbox until the task is aborted.
pub async fn run_sender(
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    wakeup: Wakeup,
    config: Config,
) {
    let d = &config.delivery;
    let slots = Arc::new(Semaphore::new(d.concurrency.max(1) as usize));
    let poll = Duration::from_millis(d.poll_interval_ms.max(1));
    let send_timeout = Duration::from_millis(d.send_timeout_ms);
    loop {
        // The depth gauge is refreshed by the upkeep task, not per batch.
        let due = engine.outbox_due(d.concurrency.max(1) as usize);
        if due.is_empty() {
            tokio::select! {
                () = wakeup.0.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        for message in due {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (engine, dispatcher) = (Arc::clone(&engine), Arc::clone(&dispatcher));
            tokio::spawn(async move {
                let started = Instant::now();
                let via = message.channel.as_str();
                let deadline = dispatcher.deadline(message.channel, send_timeout);
                let result =
                    tokio::time::timeout(deadline, dispatcher.send(&message, engine.now()))
                        .await
                        .unwrap_or_else(|_| SendResult::Retry {
                            after: None,
                            reason: format!("no outcome within {} ms", deadline.as_millis()),
                        });
                metrics::histogram!("otpd_delivery_seconds", "channel" => via)
                    .record(started.elapsed().as_secs_f64());
                let outcome = match &result {
                    SendResult::Sent => "sent",
                    SendResult::Retry { .. } => "retry",
                    SendResult::Permanent { .. } => "failed",
                };
                metrics::counter!("otpd_delivery_attempts_total", "channel" => via, "outcome" => outcome)
                    .increment(1);
                if let SendResult::Retry { reason, .. } | SendResult::Permanent { reason } = &result
                {
                    tracing::warn!(
                        message_id = %message.id,
                        channel = via,
                        attempt = message.attempt,
                        outcome,
                        reason = %reason,
                        "delivery attempt failed"
                    );
                }
                // Recorded in memory now and written with the next group
                // commit, but not waited for: a report lost with the process
                // costs at most a resend of a code still valid (or one more
                // attempt), and the flow's next durable write (the verify)
                // carries it to the disk anyway. docs/ARCHITECTURE.md,
                // "Durability contract".
                if let Err(e) = engine.outbox_report(message.id, result) {
                    tracing::error!(message_id = %message.id, error = %e, "cannot record a delivery result");
                }
                drop(slot);
            });
        }
    }
}

/// Resolves a secret reference for a delivery setting, naming the setting on error.
fn secret(setting: &str, reference: &str) -> Result<String, String> {
    resolve_secret(reference).map_err(|e| format!("{setting}: {e}"))
}
