//! Email over SMTP with lettre: STARTTLS, implicit TLS, or (for local relays) none.
//!
//! SMTP 4xx replies and connection failures are transient; 5xx are permanent.

use std::time::Duration;

use engine::{Outgoing, SendResult};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Channel, Rendered, SendFuture, secret};
use crate::config::{EmailConfig, SmtpTls};

pub(super) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Email {
    pub(super) fn new(config: &EmailConfig, timeout_ms: u64) -> Result<Self, String> {
        if config.host.is_empty() {
            return Err("delivery.email.host must be set when email is enabled".into());
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("delivery.email.from: {e}"))?;
        let mut builder = match config.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("delivery.email: {e}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| format!("delivery.email: {e}"))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        if config.port != 0 {
            builder = builder.port(config.port);
        }
        if !config.username.is_empty() {
            let password = secret("delivery.email.password", &config.password)?;
            builder = builder.credentials(Credentials::new(config.username.clone(), password));
        }
        let transport = builder
            .timeout(Some(Duration::from_millis(timeout_ms)))
            .build();
        Ok(Self { transport, from })
    }
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        "email-smtp"
    }

    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a> {
        Box::pin(async move {
            let to: Mailbox = match message.destination.parse() {
                Ok(to) => to,
                Err(e) => {
                    return SendResult::Permanent {
                        reason: format!("bad address: {e}"),
                    };
                }
            };
            let email = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(rendered.subject.clone())
                .message_id(Some(format!("<{}@otpd>", message.id)))
                .multipart(MultiPart::alternative_plain_html(
                    rendered.text.clone(),
                    rendered.html.clone(),
                ));
            let email = match email {
                Ok(email) => email,
                Err(e) => {
                    return SendResult::Permanent {
                        reason: format!("cannot build the email: {e}"),
                    };
                }
            };
            match self.transport.send(email).await {
                Ok(_) => SendResult::Sent,
                Err(e) if e.is_permanent() => SendResult::Permanent {
                    reason: format!("SMTP: {e}"),
                },
                Err(e) => SendResult::Retry {
                    after: None,
                    reason: format!("SMTP: {e}"),
                },
            }
        })
    }
}
