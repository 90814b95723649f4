//! Contact changes: a step-up code proves the citizen, a code to the new contact confirms it.

use std::sync::Arc;

use engine::audit::acting;
use engine::{Contact, ContactChangeStart};

use super::{Reply, sent, verification};
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire::{self, PhoneOrEmail};

/// `POST /v1/accounts/{id}/contact`.
pub async fn begin(state: &Arc<AppState>, input: Input) -> Reply {
    let account = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::ContactChangeIn = input.json().await?;
    let contact = match wire::phone_or_email(input.phone.as_deref(), input.email.as_deref())? {
        PhoneOrEmail::Phone(phone) => Contact::Phone(phone),
        PhoneOrEmail::Email(email) => Contact::Email(email),
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
