//! Answers of the operators' endpoints (clients, signing keys, the audit
//! trail, import, backup, health) and of the small acknowledgements, as
//! typed JSON; each type is also its schema in the OpenAPI description.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::out::{AccountOut, ClientOut};

/// `GET /livez`, `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `ok` (live) or `ready`.
    pub status: &'static str,
}

/// `DELETE /v1/accounts/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledOut {
    pub account_id: String,
    /// Always `cancelled`.
    pub state: &'static str,
}

/// `POST /v1/accounts/{id}/pin`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinChangedOut {
    pub account_id: String,
    /// Always `true`.
    pub pin_changed: bool,
}

/// `PUT /v1/accounts/{id}/push-device`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushDeviceOut {
    pub account_id: String,
    /// Always `true`.
    pub has_push_device: bool,
}

/// `POST /v1/accounts/{id}/contact/remove`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactRemovedOut {
    pub account_id: String,
    /// `phone`, `email`, `push_device` or `dm`.
    pub removed: &'static str,
}

/// `GET /v1/admin/accounts`: the account found, or none.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountsOut {
    pub accounts: Vec<AccountOut>,
}

/// An error as it appears in a list of results (an import's).
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemErrorOut {
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// One account of an import: its new id, or why it was refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResultOut {
    /// Its position in the request's `accounts`.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemErrorOut>,
}

/// `POST /v1/admin/import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    pub imported: usize,
    pub failed: usize,
    pub results: Vec<ImportResultOut>,
}

/// `POST /v1/admin/backup`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupOut {
    /// The backup file, on the server.
    pub file: String,
    pub records: u64,
    /// The group-commit round it is consistent at.
    pub round: u64,
    pub bytes: u64,
    /// SHA-256 of the file, hexadecimal.
    pub sha256: String,
}

/// One client, in `{"client": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OneClientOut {
    pub client: ClientOut,
}

/// `GET /v1/admin/clients`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientsOut {
    pub clients: Vec<ClientOut>,
}

/// A new client or a new key for one: the key is shown here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewClientKeyOut {
    pub client: ClientOut,
    pub key_id: String,
    /// The bearer key; otpd keeps only its hash.
    pub key: String,
    /// The same key as Twilio credentials, for the Twilio Verify surface
    /// (`/v2`, docs/TWILIO.md): shown once, like the key.
    pub twilio: Option<TwilioCredentialsOut>,
}

/// A key as Twilio credentials: HTTP Basic user and password.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwilioCredentialsOut {
    /// `AC` + the key id + 16 zeros.
    #[schema(example = "AC0123456789abcdef0000000000000000")]
    pub account_sid: String,
    /// The key's secret.
    pub auth_token: String,
}

impl TwilioCredentialsOut {
    pub fn of_key(key: &str) -> Option<Self> {
        crate::twilio::credentials::of_key(key).map(|c| Self {
            account_sid: c.account_sid,
            auth_token: c.auth_token,
        })
    }
}

/// A signing key as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyOut {
    /// Its RFC 7638 thumbprint.
    pub kid: String,
    /// `active`, `overlap` (still published) or `retired`.
    pub state: &'static str,
    /// `key_dir` (made by otpd) or `signing.key` (the operator's file).
    pub source: &'static str,
    pub created_at: String,
    pub superseded_at: Option<String>,
    pub retired_at: Option<String>,
}

/// `GET /v1/admin/keys` and the rotate and retire answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeysOut {
    pub keys: Vec<SigningKeyOut>,
}

/// One audit event, as the API, exports and the feed show it. Every key is
/// covered by the event's hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub seq: u64,
    /// RFC 3339, UTC: `at_ms` for people.
    pub at: String,
    /// Milliseconds since the Unix epoch: the time the hash covers.
    pub at_ms: u64,
    pub kind: &'static str,
    pub outcome: &'static str,
    pub account_id: Option<String>,
    /// The relying party that asked, or `otpd` / `cli` for the operators.
    pub client: Option<String>,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    /// The few fields that matter for the kind (masked, never a secret), keys sorted.
    pub details: BTreeMap<String, String>,
    /// The previous event's hash, hexadecimal.
    pub prev: String,
    /// This event's hash, hexadecimal.
    pub hash: String,
}

/// `GET /v1/admin/accounts/{id}/events`: newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountEventsOut {
    pub events: Vec<EventOut>,
    /// The `before` of the next page; `null` on the last.
    pub next_before: Option<u64>,
    /// On a cluster: the node whose audit chain answered (each node seals
    /// the events of the requests it serves; docs/API.md, "The audit trail
    /// on a cluster"). Absent on the embedded store, whose one chain holds
    /// every event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `GET /v1/admin/events`: in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventFeedOut {
    pub events: Vec<EventOut>,
    /// The `after` of the next request.
    pub next_after: u64,
    /// The newest event that is durable.
    pub durable_seq: u64,
    /// On a cluster: the node whose audit chain answered (each node seals
    /// the events of the requests it serves; docs/API.md, "The audit trail
    /// on a cluster"). Absent on the embedded store, whose one chain holds
    /// every event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The signed hash of one event, closing an export that ends with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrailerOut {
    pub seq: u64,
    pub hash: String,
    /// Ed25519 signature by the audit key, hexadecimal.
    pub signature: String,
}

/// `GET /v1/admin/events/{id}/trailer`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrailerEnvelopeOut {
    pub trailer: TrailerOut,
}

/// `GET /v1/admin/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditInfoOut {
    /// The Ed25519 key that verifies checkpoints and trailers.
    pub public_key: String,
    pub durable_seq: u64,
    /// Events between signed checkpoints at most.
    pub checkpoint_every: u64,
    /// On a cluster: the node whose audit chain answered (each node seals
    /// the events of the requests it serves; docs/API.md, "The audit trail
    /// on a cluster"). Absent on the embedded store, whose one chain holds
    /// every event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A public key as a JSON Web Key (RFC 8037).
#[derive(Debug, Serialize, ToSchema)]
pub struct JwkOut {
    /// `OKP`.
    pub kty: &'static str,
    /// `Ed25519`.
    pub crv: &'static str,
    pub x: String,
    pub kid: String,
    /// `EdDSA`.
    pub alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwksOut {
    pub keys: Vec<JwkOut>,
}
