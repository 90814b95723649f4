//! Answers as JSON: masked contacts, never a PIN hash, a code or a key.

use engine::{
    AccountView, ChallengeStatus, Channel, DmHandle, Document, Email, Identity, Issued, Phone,
    Timestamp,
};
use serde_json::{Value, json};

/// A direct-message handle as returned: the platform, and the handle masked.
pub fn dm_masked(dm: &DmHandle) -> Value {
    json!({ "platform": dm.platform(), "handle": dm.masked_handle() })
}

/// An identity as returned.
pub fn identity(id: &Identity) -> Value {
    json!({ "kind": id.kind().as_str(), "number": id.number(), "country": id.country() })
}

/// A just-issued challenge as returned: never the code or the full destination.
pub fn issued(issued: &Issued) -> Value {
    let mut body = json!({
        "challenge_id": issued.challenge_id.to_string(),
        "purpose": issued.purpose.as_str(),
        "channel": issued.channel.as_str(),
        "masked_destination": issued.masked_destination,
        "expires_at": rfc3339(issued.expires_at),
    });
    if let Some(d) = &issued.document {
        body["document"] = document(d);
    }
    body
}

/// A document as returned: what the citizen is shown, fingerprint included.
pub fn document(d: &Document) -> Value {
    json!({
        "name": d.name(),
        "sha256": d.sha256_hex(),
        "size": d.size(),
        "fingerprint": d.fingerprint(),
    })
}

/// A challenge's status as returned.
pub fn status(s: &ChallengeStatus) -> Value {
    let mut body = json!({
        "challenge_id": s.id.to_string(),
        "account_id": s.account.to_string(),
        "purpose": s.purpose.as_str(),
        "channel": s.channel.as_str(),
        "masked_destination": s.masked_destination,
        "created_at": rfc3339(s.created_at),
        "expires_at": rfc3339(s.expires_at),
        "attempts_remaining": s.attempts_remaining,
        "state": s.state.as_str(),
        "delivery": s.delivery.as_str(),
    });
    if let Some(d) = &s.document {
        body["document"] = document(d);
    }
    body
}

/// An account as returned: masked contacts, never the PIN hash.
pub fn account(view: &AccountView) -> Value {
    let lock = match &view.state {
        engine::AccountState::Locked(lock) => json!({
            "reason": match &lock.reason {
                engine::LockReason::PinFailures => "pin_failures".to_owned(),
                engine::LockReason::CodeFailures => "code_failures".to_owned(),
                engine::LockReason::Administrative(why) => format!("administrative: {why}"),
            },
            "since": rfc3339(lock.since),
            "until": lock.until.map(rfc3339),
        }),
        _ => Value::Null,
    };
    json!({
        "account_id": view.id.to_string(),
        "identity": identity(&view.identity),
        "state": view.state.as_str(),
        "lock": lock,
        "phone": view.phone.as_ref().map(Phone::masked),
        "email": view.email.as_ref().map(Email::masked),
        "has_postal_address": view.has_postal_address,
        "has_push_device": view.has_push_device,
        "dm": view.dm.as_ref().map(dm_masked),
        "locale": view.locale.map(engine::Locale::as_str),
        "pin_failures": view.pin_failures,
        "code_failures": view.code_failures,
        "created_at": rfc3339(view.created_at),
        "updated_at": rfc3339(view.updated_at),
    })
}

/// A client as returned: never a key or its hash.
pub fn client(info: &engine::ClientInfo, now: Timestamp) -> Value {
    let keys: Vec<Value> = info
        .keys
        .iter()
        .map(|k| {
            let state = if k.revoked_at.is_some() {
                "revoked"
            } else if k.live_at(now) {
                "live"
            } else {
                "expired"
            };
            json!({
                "key_id": k.id.to_string(),
                "state": state,
                "created_at": rfc3339(k.created_at),
                "expires_at": k.expires_at.map(rfc3339),
                "revoked_at": k.revoked_at.map(rfc3339),
            })
        })
        .collect();
    let policy = &info.policy;
    json!({
        "name": info.name,
        "client_id": info.id.to_string(),
        "scopes": info.scopes.iter().map(engine::Scope::as_str).collect::<Vec<_>>(),
        "purposes": policy.purposes.map(|p| p.iter().map(engine::Purpose::as_str).collect::<Vec<_>>()),
        "channels": policy.channels.map(|c| c.iter().map(Channel::as_str).collect::<Vec<_>>()),
        "issue_rate": policy.issue_rate.map(|r| json!({
            "codes": r.count,
            "per": match r.per.as_secs() {
                1 => "second",
                60 => "minute",
                _ => "hour",
            },
        })),
        "test": info.test,
        "state": if info.revoked_at.is_some() { "revoked" } else { "active" },
        "created_at": rfc3339(info.created_at),
        "revoked_at": info.revoked_at.map(rfc3339),
        "keys": keys,
    })
}

/// `2026-11-23T10:15:30.250Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let days = i64::try_from(t.0 / 86_400_000).unwrap_or(i64::MAX);
    let ms_of_day = t.0 % 86_400_000;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_795_392_000_000)),
            "2026-11-23T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp(951_782_400_000 + 3_723_004)),
            "2000-02-29T01:02:03.004Z"
        );
    }
}
