//! Contact changes and removals: a step-up code proves the citizen; a code
//! to the new contact confirms a change.

use std::sync::Arc;

use engine::audit::acting;
use engine::{Contact, ContactChangeStart, ContactKind, ContactRemoval, Email, Phone};

use super::{Reply, ok, sent, verification};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire;

/// `POST /v1/accounts/{id}/contact`.
pub async fn begin(state: &Arc<AppState>, input: Input) -> Reply {
    let account = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::ContactChangeIn = input.json().await?;
    let contact = match (&input.phone, &input.email, &input.dm) {
        (Some(phone), None, None) => Contact::Phone(Phone::parse(phone)?),
        (None, Some(email), None) => Contact::Email(Email::parse(email)?),
        (None, None, Some(dm)) => Contact::Dm(state.engine.parse_dm(&dm.platform, &dm.handle)?),
        _ => {
            return Err(ApiError::invalid(
                "phone",
                "send exactly one of phone, email or dm",
            ));
        }
    };
    let proof = wire::challenge_id(&input.proof_challenge_id)?;
    let locale = wire::locale(input.locale.as_deref())?;
    let started = acting(&actor, || {
        state
            .engine
            .begin_contact_change(account, proof, &input.proof_code, contact, locale)
    })?
    .wait_async()
    .await?;
    match started {
        ContactChangeStart::CodeSent(issued) => sent(state, &issued),
        ContactChangeStart::ProofRejected(v) => verification(v),
    }
}

/// `POST /v1/contact-changes/confirm`.
pub async fn confirm(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::VerifyIn = input.json().await?;
    let challenge = wire::challenge_id(&input.challenge_id)?;
    let outcome = acting(&actor, || {
        state.engine.confirm_contact_change(challenge, &input.code)
    })?
    .wait_async()
    .await?;
    verification(outcome)
}

/// `POST /v1/accounts/{id}/contact/remove`.
pub async fn remove(state: &Arc<AppState>, input: Input) -> Reply {
    let account = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::RemoveContactIn = input.json().await?;
    let contact = ContactKind::parse(&input.contact)?;
    let proof = wire::challenge_id(&input.proof_challenge_id)?;
    let removal = acting(&actor, || {
        state
            .engine
            .remove_contact(account, proof, &input.proof_code, contact)
    })?
    .wait_async()
    .await?;
    match removal {
        ContactRemoval::Removed => {
            // A notice may be queued for the removed contact and the others.
            state.wakeup.ring();
            ok(wire::ContactRemovedOut {
                account_id: account.to_string(),
                removed: contact.as_str(),
            })
        }
        ContactRemoval::ProofRejected(v) => verification(v),
    }
}
