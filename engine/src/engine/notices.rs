//! Notices: a short message, with no code, to the citizen's contacts when
//! something about the account changes, so a change they did not make is
//! noticed. Queued in the outbox in the change's own batch, delivered and
//! retried like codes; a notice never holds up the change.

use std::time::Duration;

use crate::audit::EventKind;
use crate::challenge::mask_destination;
use crate::clock::Timestamp;
use crate::id::ChallengeId;
use crate::keys::Seal;
use crate::outbox::{Message, Notice};
use crate::terms::{Channel, MessageId, Purpose};

use super::{Engine, Tx};

/// A notice not delivered within this long is dropped: it would only confuse.
const NOTICE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl Engine {
    /// Queues `notice` to the account's phone, email and direct-message
    /// handle (and to `also`, the contact a change replaced or removed), if
    /// the configuration sends it, in the citizen's language.
    pub(super) fn notify(
        &self,
        tx: &mut Tx,
        notice: Notice,
        also: Option<(Channel, String)>,
        now: Timestamp,
    ) {
        if !self.config.notices.sends(notice) {
            return;
        }
        let mut to: Vec<(Channel, String)> = Vec::new();
        if let Some(phone) = &tx.account.phone {
            to.push((Channel::Sms, phone.as_str().to_owned()));
        }
        if let Some(email) = &tx.account.email {
            to.push((Channel::Email, email.as_str().to_owned()));
        }
        if let Some(dm) = &tx.account.dm {
            to.push((Channel::Dm, dm.destination()));
        }
        to.extend(also);
        to.dedup();
        let locale = tx
            .account
            .locale
            .unwrap_or(self.config.outbox.default_locale);
        for (channel, destination) in to {
            if !self.config.outbox.enabled.contains(&channel) {
                continue;
            }
            let id = MessageId(self.random());
            let event = tx
                .event(EventKind::NoticeQueued)
                .with("notice", notice.as_str())
                .with("channel", channel.as_str())
                .with("to", mask_destination(channel, &destination));
            tx.record(event);
            tx.put_message(Message {
                id,
                challenge: ChallengeId::NONE,
                account: tx.account.id,
                // Unused for a notice; any purpose will do.
                purpose: Purpose::Login,
                channel,
                destination: destination.into_boxed_str(),
                sealed_code: Vec::new(),
                seal: Seal::Aead,
                locale,
                expires_at: now.plus(NOTICE_LIFETIME),
                created_at: now,
                attempts: 0,
                next_attempt_at: now,
                in_flight: false,
                notice: Some(notice),
            });
        }
    }
}
