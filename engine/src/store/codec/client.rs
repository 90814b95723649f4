//! Stored clients (relying parties), by version, with their keys and policy.

use bincode::{Decode, Encode};

use crate::client::{
    ChannelSet, Client, ClientId, ClientInfo, ClientPolicy, KeyId, KeyInfo, PurposeSet, Scopes,
    Service, ServiceId,
};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::limits::Rate;

use super::{decode, encode};

/// A stored client, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbClient {
    V1(DbClientV1),
    V2(DbClientV2),
    V3(DbClientV3),
}

/// V3 adds the client's verification services.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbClientV3 {
    pub(super) client: DbClientV2,
    pub(super) services: Vec<DbServiceV1>,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbServiceV1 {
    pub(super) id: [u8; 16],
    pub(super) friendly_name: String,
    pub(super) code_length: u8,
    pub(super) created_at: u64,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbClientV1 {
    pub(super) id: [u8; 8],
    pub(super) name: String,
    pub(super) secret_hash: [u8; 32],
    pub(super) scopes: u8,
    pub(super) created_at: u64,
    pub(super) revoked_at: Option<u64>,
}

/// V2 holds several keys (rotation, expiry) and the client's policy. A V1
/// client had one key whose id was the client's.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbClientV2 {
    pub(super) id: [u8; 8],
    pub(super) name: String,
    pub(super) scopes: u8,
    pub(super) created_at: u64,
    pub(super) revoked_at: Option<u64>,
    pub(super) keys: Vec<DbClientKeyV1>,
    /// Purpose slots as bits; `None` for every purpose.
    pub(super) purposes: Option<u8>,
    /// Channel tags as bits; `None` for every channel.
    pub(super) channels: Option<u16>,
    /// Codes per period (milliseconds).
    pub(super) issue_rate: Option<(u32, u64)>,
    pub(super) test: bool,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbClientKeyV1 {
    pub(super) id: [u8; 8],
    pub(super) secret_hash: [u8; 32],
    pub(super) created_at: u64,
    pub(super) expires_at: Option<u64>,
    pub(super) revoked_at: Option<u64>,
}

pub(crate) fn encode_client(c: &Client) -> Vec<u8> {
    let info = &c.info;
    let keys = info
        .keys
        .iter()
        .filter_map(|k| {
            let (_, hash) = c.secrets.iter().find(|(id, _)| *id == k.id)?;
            Some(DbClientKeyV1 {
                id: k.id.0,
                secret_hash: *hash,
                created_at: k.created_at.0,
                expires_at: k.expires_at.map(|t| t.0),
                revoked_at: k.revoked_at.map(|t| t.0),
            })
        })
        .collect();
    let services: Vec<DbServiceV1> = c
        .services
        .iter()
        .map(|s| DbServiceV1 {
            id: s.id.0,
            friendly_name: s.friendly_name.clone(),
            code_length: s.code_length,
            created_at: s.created_at.0,
        })
        .collect();
    let client = DbClientV2 {
        id: info.id.0,
        name: info.name.clone(),
        scopes: info.scopes.0,
        created_at: info.created_at.0,
        revoked_at: info.revoked_at.map(|t| t.0),
        keys,
        purposes: info.policy.purposes.map(|p| p.0),
        channels: info.policy.channels.map(|c| c.0),
        issue_rate: info.policy.issue_rate.map(|r| {
            (
                r.count,
                u64::try_from(r.per.as_millis()).unwrap_or(u64::MAX),
            )
        }),
        test: info.test,
    };
    // A client with no services is written as before (V2), so a binary
    // that predates services still reads it: a rollback stays possible
    // until a service is made.
    if services.is_empty() {
        encode(&DbClient::V2(client))
    } else {
        encode(&DbClient::V3(DbClientV3 { client, services }))
    }
}

pub(crate) fn decode_client(bytes: &[u8]) -> Result<Client> {
    let (r, services) = match decode(bytes, "client")? {
        DbClient::V3(r) => (r.client, r.services),
        DbClient::V2(r) => (r, Vec::new()),
        DbClient::V1(r) => (
            DbClientV2 {
                id: r.id,
                name: r.name,
                scopes: r.scopes,
                created_at: r.created_at,
                revoked_at: r.revoked_at,
                keys: vec![DbClientKeyV1 {
                    id: r.id,
                    secret_hash: r.secret_hash,
                    created_at: r.created_at,
                    expires_at: None,
                    revoked_at: None,
                }],
                purposes: None,
                channels: None,
                issue_rate: None,
                test: false,
            },
            Vec::new(),
        ),
    };
    let keys = r
        .keys
        .iter()
        .map(|k| KeyInfo {
            id: KeyId(k.id),
            created_at: Timestamp(k.created_at),
            expires_at: k.expires_at.map(Timestamp),
            revoked_at: k.revoked_at.map(Timestamp),
        })
        .collect();
    Ok(Client {
        info: ClientInfo {
            id: ClientId(r.id),
            name: r.name,
            scopes: Scopes(r.scopes),
            policy: ClientPolicy {
                purposes: r.purposes.map(PurposeSet),
                channels: r.channels.map(ChannelSet),
                issue_rate: r.issue_rate.map(|(count, per_ms)| Rate {
                    count,
                    per: std::time::Duration::from_millis(per_ms),
                }),
            },
            test: r.test,
            keys,
            created_at: Timestamp(r.created_at),
            revoked_at: r.revoked_at.map(Timestamp),
        },
        secrets: r
            .keys
            .iter()
            .map(|k| (KeyId(k.id), k.secret_hash))
            .collect(),
        services: services
            .into_iter()
            .map(|s| Service {
                id: ServiceId(s.id),
                friendly_name: s.friendly_name,
                code_length: s.code_length,
                created_at: Timestamp(s.created_at),
            })
            .collect(),
    })
}
