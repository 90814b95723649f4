//! What the route table cannot say about each endpoint: its summary, group,
//! request and answer types, the errors particular to it, and its query
//! parameters. The match is exhaustive, so a new route does not compile
//! until it is described here.

use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use crate::error::ErrorBody;
use crate::routes::table::Route;
use crate::wire::*;

/// A type's schema name and the schemas it needs.
#[derive(Debug, Clone, Copy)]
pub struct Ty {
    pub name: fn() -> String,
    pub collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

/// The [`Ty`] of `T`.
pub fn ty<T: ToSchema>() -> Ty {
    fn name<T: ToSchema>() -> String {
        T::name().into_owned()
    }
    fn collect<T: ToSchema>(into: &mut Vec<(String, RefOr<Schema>)>) {
        into.push((T::name().into_owned(), T::schema()));
        T::schemas(into);
    }
    Ty {
        name: name::<T>,
        collect: collect::<T>,
    }
}

/// What an answer holds.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// JSON of this type.
    Json(Ty),
    /// Prometheus' text format.
    Text,
    /// This document.
    OpenApi,
}

/// A query parameter: name, description, and whether it is a number.
pub type Query = (&'static str, &'static str, bool);

/// One endpoint's description.
#[derive(Debug)]
pub struct Doc {
    pub summary: &'static str,
    /// The group it is listed under.
    pub tag: &'static str,
    pub request: Option<Ty>,
    pub status: u16,
    pub answer: Answer,
    /// Errors particular to it, besides those every such row can answer.
    pub errors: &'static [u16],
    pub query: &'static [Query],
    /// Operations its answer leads to, for clients and stateful fuzzers:
    /// (operation id, path parameter, value from the answer).
    pub links: &'static [Link],
}

/// An OpenAPI link: the operation, its path parameter, and the runtime
/// expression that fills it.
pub type Link = (&'static str, &'static str, &'static str);

const TO_ACCOUNT: &[Link] = &[
    ("readAccount", "id", "$response.body#/account_id"),
    ("accountEvents", "id", "$response.body#/account_id"),
    ("cancelAccount", "id", "$response.body#/account_id"),
];
const TO_CHALLENGE: &[Link] = &[
    ("challengeStatus", "id", "$response.body#/challenge_id"),
    ("resend", "id", "$response.body#/challenge_id"),
];
const TO_CLIENT: &[Link] = &[
    ("readClient", "name", "$response.body#/client/name"),
    ("updateClient", "name", "$response.body#/client/name"),
    ("revokeClient", "name", "$response.body#/client/name"),
];

/// The error body every non-2xx answer has.
pub fn error_body() -> Ty {
    ty::<ErrorBody<'static>>()
}

const CODE_CHECK: &[u16] = &[401, 404, 410, 423];
const ACCOUNT: &[u16] = &[404, 409, 423];

fn doc(
    tag: &'static str,
    summary: &'static str,
    request: Option<Ty>,
    status: u16,
    answer: Ty,
    errors: &'static [u16],
) -> Doc {
    Doc {
        summary,
        tag,
        request,
        status,
        answer: Answer::Json(answer),
        errors,
        query: &[],
        links: &[],
    }
}

/// Describes `route`.
#[rustfmt::skip]
pub fn describe(route: Route) -> Doc {
    use Route as R;
    let account = ty::<AccountOut>;
    let issued = ty::<IssuedOut>;
    let approval = ty::<ApprovalOut>;
    let client = ty::<OneClientOut>;
    let keys = ty::<SigningKeysOut>;
    match route {
        R::Livez => doc("operations", "Liveness: the process answers", None, 200, ty::<HealthOut>(), &[]),
        R::Readyz => doc("operations", "Readiness: the store takes writes and the server is not draining", None, 200, ty::<HealthOut>(), &[503]),
        R::Metrics => Doc {
            answer: Answer::Text,
            ..doc("operations", "Prometheus metrics", None, 200, ty::<HealthOut>(), &[])
        },
        R::OpenApi => Doc {
            answer: Answer::OpenApi,
            ..doc("operations", "This OpenAPI description", None, 200, ty::<HealthOut>(), &[])
        },
        R::KeySet => doc("attestations", "The public keys that verify attestations (JWKS)", None, 200, ty::<JwksOut>(), &[]),
        R::Register => Doc {
            links: TO_ACCOUNT,
            ..doc("accounts", "Register an identity with a phone and/or email and a PIN", Some(ty::<RegisterIn>()), 201, account(), &[403, 409])
        },
        R::PreRegister => Doc {
            links: TO_ACCOUNT,
            ..doc("accounts", "Pre-register an identity, to be activated by a code (SMS, email or letter)", Some(ty::<PreRegisterIn>()), 201, account(), &[409])
        },
        R::ReadAccount => doc("accounts", "An account, contacts masked", None, 200, account(), &[404]),
        R::CancelAccount => doc("accounts", "Cancel an account", None, 200, ty::<CancelledOut>(), &[404, 409]),
        R::ChangePin => doc("accounts", "Change the PIN: the current PIN and a step-up code", Some(ty::<ChangePinIn>()), 200, ty::<PinChangedOut>(), &[401, 404, 409, 410, 423]),
        R::BeginContactChange => Doc {
            links: TO_CHALLENGE,
            ..doc("accounts", "Change a contact: a step-up code proves the account, a code goes to the new contact", Some(ty::<ContactChangeIn>()), 201, issued(), &[401, 403, 404, 409, 410, 423])
        },
        R::ConfirmContactChange => doc("accounts", "Confirm a contact change with the code sent to the new contact", Some(ty::<VerifyIn>()), 200, approval(), &[401, 404, 409, 410, 423]),
        R::RemoveContact => doc("accounts", "Remove a contact, proven by a step-up code", Some(ty::<RemoveContactIn>()), 200, ty::<ContactRemovedOut>(), &[401, 404, 409, 410, 423]),
        R::SetLocale => doc("accounts", "Set the language of the citizen's messages", Some(ty::<LocaleIn>()), 200, account(), &[404, 409]),
        R::PushDevice => doc("accounts", "Set the app's push device", Some(ty::<PushDeviceIn>()), 200, ty::<PushDeviceOut>(), &[404, 409]),
        R::Login => Doc {
            links: TO_CHALLENGE,
            ..doc("sign-in", "Log in with phone or email and PIN; a new code is sent", Some(ty::<LoginIn>()), 201, issued(), &[401, 403, 409, 423])
        },
        R::Verify => doc("sign-in", "Check a login code; an approval carries a signed attestation", Some(ty::<VerifyIn>()), 200, approval(), CODE_CHECK),
        R::StepUp => Doc {
            links: TO_CHALLENGE,
            ..doc("sign-in", "Send a step-up code to a signed-in citizen", Some(ty::<StepUpIn>()), 201, issued(), &[403, 404, 409, 423])
        },
        R::StepUpVerify => doc("sign-in", "Check a step-up code", Some(ty::<VerifyIn>()), 200, approval(), CODE_CHECK),
        R::ChallengeStatus => doc("sign-in", "A challenge's state and delivery", None, 200, ty::<StatusOut>(), &[404]),
        R::Resend => Doc {
            links: TO_CHALLENGE,
            ..doc("sign-in", "Send a new code for a challenge; only the newest is valid", None, 201, issued(), &[404, 409, 410, 423])
        },
        R::DestinationVerify => Doc {
            links: &[("destinationStatus", "id", "$response.body#/challenge_id")],
            ..doc("destinations", "Send a code to a phone or an email, no account needed; only the newest is valid", Some(ty::<DestinationVerifyIn>()), 201, issued(), &[403, 409])
        },
        R::DestinationCheck => doc("destinations", "Check an account-less code; the answer names the destination proven", Some(ty::<VerifyIn>()), 200, ty::<DestinationOut>(), &[404, 410]),
        R::DestinationStatus => doc("destinations", "An account-less challenge: its destination, state and delivery", None, 200, ty::<DestinationOut>(), &[404]),
        // Left out of this document (`openapi::document`): Twilio's describes it.
        R::Twilio(_) => doc("twilio", "The Twilio Verify v2 surface (docs/TWILIO.md)", None, 200, ty::<HealthOut>(), &[]),
        R::SignatureRequest => Doc {
            links: TO_CHALLENGE,
            ..doc("signatures", "Ask the citizen to authorise the signature of a document (PIN, then a code)", Some(ty::<SignatureIn>()), 201, issued(), &[401, 403, 409, 423])
        },
        R::SignatureVerify => doc("signatures", "Check a signature code; the approval names the document", Some(ty::<VerifyIn>()), 200, approval(), CODE_CHECK),
        R::ActivationRequest => Doc {
            links: TO_CHALLENGE,
            ..doc("activation", "Send the activation code of a pre-registered account (SMS, email or letter)", Some(ty::<ActivationRequestIn>()), 201, issued(), &[403, 404, 409, 423])
        },
        R::ActivationComplete => doc("activation", "Activate with the code (and the identity, for a letter) and choose a PIN", Some(ty::<ActivationCompleteIn>()), 200, approval(), CODE_CHECK),
        R::RecoveryUnlock => doc("recovery", "Unlock an account after the citizen proved who they are elsewhere", Some(ty::<RecoveryIn>()), 200, account(), ACCOUNT),
        R::RecoveryPin => doc("recovery", "Set a new PIN after the citizen proved who they are elsewhere", Some(ty::<RecoveryPinIn>()), 200, account(), ACCOUNT),
        R::FindAccounts => Doc {
            query: &[
                ("identity", "KIND:NUMBER, or passport:NUMBER:COUNTRY", false),
                ("phone", "International form, +351…", false),
                ("email", "An email address", false),
            ],
            ..doc("administration", "Find the account of an identity, phone or email (exactly one)", None, 200, ty::<AccountsOut>(), &[])
        },
        R::Lock => doc("administration", "Lock an account", Some(ty::<LockIn>()), 200, account(), ACCOUNT),
        R::Unlock => doc("administration", "Unlock an account", None, 200, account(), ACCOUNT),
        R::ResetPin => doc("administration", "Set a new PIN for a citizen", Some(ty::<ResetPinIn>()), 200, account(), ACCOUNT),
        R::Import => doc("administration", "Import accounts; each succeeds or fails on its own", Some(ty::<ImportIn>()), 200, ty::<ImportOut>(), &[]),
        R::Backup => doc("administration", "Write a consistent copy of the store on the server", None, 200, ty::<BackupOut>(), &[409]),
        R::ListKeys => doc("administration", "The attestation signing keys", None, 200, keys(), &[]),
        R::RotateKey => doc("administration", "Make a new active signing key", None, 200, keys(), &[409]),
        R::RetireKey => doc("administration", "Retire a signing key", None, 200, keys(), &[404, 409]),
        R::AccountEvents => Doc {
            query: &[
                ("before", "Events with a smaller sequence number (the previous page's next_before)", true),
                ("limit", "Events per page, 1 to 1000 (100)", true),
            ],
            ..doc("audit", "An account's audit events, newest first", None, 200, ty::<AccountEventsOut>(), &[404])
        },
        R::EventFeed => Doc {
            query: &[
                ("after", "Events after this sequence number", true),
                ("since", "Events from this time on (RFC 3339); not with after", false),
                ("limit", "Events at most, 1 to 1000 (100)", true),
                ("wait", "Seconds to hold the request until an event arrives, 0 to 30", true),
            ],
            ..doc("audit", "Every audit event in order: the feed a SIEM follows", None, 200, ty::<EventFeedOut>(), &[])
        },
        R::EventTrailer => doc("audit", "The signed hash of one event, closing an export", None, 200, ty::<TrailerEnvelopeOut>(), &[]),
        R::AuditInfo => doc("audit", "The key that verifies checkpoints, and where the chain stands", None, 200, ty::<AuditInfoOut>(), &[]),
        R::AddClient => Doc {
            links: TO_CLIENT,
            ..doc("clients", "Add a client (relying party); its key is shown once", Some(ty::<AddClientIn>()), 201, ty::<NewClientKeyOut>(), &[409])
        },
        R::ListClients => doc("clients", "Every client, revoked ones included", None, 200, ty::<ClientsOut>(), &[]),
        R::ReadClient => doc("clients", "A client", None, 200, client(), &[404]),
        R::UpdateClient => doc("clients", "Change a client's scopes or policy", Some(ty::<UpdateClientIn>()), 200, client(), &[404]),
        R::RevokeClient => doc("clients", "Revoke a client: every key stops at once", None, 200, client(), &[404]),
        R::RotateClientKey => doc("clients", "Another key for a client; shown once", Some(ty::<RotateKeyIn>()), 201, ty::<NewClientKeyOut>(), &[404, 409]),
        R::RevokeClientKey => doc("clients", "Revoke one key of a client", None, 200, client(), &[404, 409]),
        #[cfg(test)]
        R::Panic => doc("operations", "A deliberate panic", None, 200, ty::<HealthOut>(), &[]),
    }
}
