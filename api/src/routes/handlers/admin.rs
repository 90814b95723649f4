//! Administration: finding an account, lock, unlock, PIN reset, bulk import, backup.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine::audit::acting;
use engine::{
    AccountId, Durable, Email, Identity, IdentityKind, ImportAccount, ImportState, LoginId, Phone,
};

use super::{Reply, blocking, blocking_durable, ok};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire;

/// Accounts in one import request, at most.
const IMPORT_MAX: usize = 10_000;

/// `GET /v1/admin/accounts?identity=|phone=|email=`: a helpdesk finds an
/// account by exactly one identifier, normalised as registration does and
/// matched exactly (never a prefix).
pub fn find_accounts(state: &AppState, input: &Input) -> Reply {
    let mut sent = input.query_names();
    let Some(name) = sent.next() else {
        return Err(ApiError::invalid(
            "identity",
            "send exactly one of identity, phone or email",
        ));
    };
    if let Some(extra) = sent.next() {
        return Err(ApiError::invalid(
            extra,
            "send exactly one of identity, phone or email",
        ));
    }
    let value = input.query(name).unwrap_or_default();
    let found = match name {
        "identity" => state.engine.find_by_identity(&query_identity(value)?)?,
        "phone" => state
            .engine
            .find_by_login(&LoginId::Phone(Phone::parse(value)?))?,
        "email" => state
            .engine
            .find_by_login(&LoginId::Email(Email::parse(value)?))?,
        other => {
            return Err(ApiError::invalid(
                other,
                "unknown parameter: send exactly one of identity, phone or email",
            ));
        }
    };
    let accounts = found
        .and_then(|id| state.engine.account(id).ok())
        .iter()
        .map(wire::AccountOut::new)
        .collect();
    ok(wire::AccountsOut { accounts })
}

/// `KIND:NUMBER`, or `passport:NUMBER:COUNTRY`; errors name `identity`.
fn query_identity(value: &str) -> Result<Identity, ApiError> {
    let mut parts = value.splitn(3, ':');
    let (Some(kind), Some(number)) = (parts.next(), parts.next()) else {
        return Err(ApiError::invalid(
            "identity",
            "must read KIND:NUMBER (civil_id, passport or social_security), with \
             :COUNTRY after a passport number",
        ));
    };
    let country = parts.next();
    IdentityKind::parse(kind)
        .and_then(|kind| Identity::parse(kind, number, country))
        .map_err(|e| match e {
            engine::EngineError::Invalid { message, .. } => ApiError::invalid("identity", message),
            other => other.into(),
        })
}

/// `POST /v1/admin/accounts/{id}/lock`.
pub async fn lock(state: &AppState, input: Input) -> Reply {
    let id = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::LockIn = input.json().await?;
    let view = acting(&actor, || state.engine.lock(id, &input.reason))?
        .wait_async()
        .await?;
    ok(wire::AccountOut::new(&view))
}

/// `POST /v1/admin/accounts/{id}/unlock`.
pub async fn unlock(state: &AppState, input: &Input) -> Reply {
    let id = input.account_id()?;
    let view = acting(input.actor(), || state.engine.unlock(id))?
        .wait_async()
        .await?;
    ok(wire::AccountOut::new(&view))
}

/// `POST /v1/admin/accounts/{id}/pin-reset`: also unlocks and activates.
pub async fn reset_pin(state: &Arc<AppState>, input: Input) -> Reply {
    let id = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::ResetPinIn = input.json().await?;
    let pin = input.pin;
    let view = blocking_durable(state, &actor, move |engine| engine.reset_pin(id, &pin)).await?;
    ok(wire::AccountOut::new(&view))
}

/// `POST /v1/admin/import`: each account succeeds or fails on its own.
pub async fn import(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::ImportIn = input.json().await?;
    if input.accounts.is_empty() || input.accounts.len() > IMPORT_MAX {
        return Err(ApiError::invalid(
            "accounts",
            format!("send 1 to {IMPORT_MAX} accounts per request"),
        ));
    }
    let today = state.engine.now();
    let parsed: Vec<Result<ImportAccount, ApiError>> = input
        .accounts
        .into_iter()
        .map(|a| parse_import(a.0, today))
        .collect();
    let pending = blocking(state, &actor, move |engine| {
        Ok(parsed
            .into_iter()
            .map(|p| p.and_then(|a| engine.import(a).map_err(ApiError::from)))
            .collect::<Vec<Result<Durable<AccountId>, ApiError>>>())
    })
    .await?;
    // Waiting after all writes lets one flush cover the whole batch.
    let mut results = Vec::with_capacity(pending.len());
    for p in pending {
        results.push(match p {
            Ok(durable) => durable.wait_async().await.map_err(ApiError::from),
            Err(e) => Err(e),
        });
    }
    let imported = results.iter().filter(|r| r.is_ok()).count();
    let results: Vec<wire::ImportResultOut> = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(id) => wire::ImportResultOut {
                index,
                account_id: Some(id.to_string()),
                error: None,
            },
            Err(e) => {
                let a = e.answer();
                wire::ImportResultOut {
                    index,
                    account_id: None,
                    error: Some(wire::ItemErrorOut {
                        code: a.code,
                        message: a.message,
                        field: a.field,
                    }),
                }
            }
        })
        .collect();
    ok(wire::ImportOut {
        imported,
        failed: results.len() - imported,
        results,
    })
}

fn parse_import(
    a: wire::ImportAccountIn,
    today: engine::Timestamp,
) -> Result<ImportAccount, ApiError> {
    let state = match (a.state.as_deref().unwrap_or("active"), a.lock_reason) {
        ("active", None) => ImportState::Active,
        ("pending_activation", None) => ImportState::PendingActivation,
        ("locked", Some(reason)) => ImportState::Locked(reason),
        ("locked", None) => {
            return Err(ApiError::invalid(
                "lock_reason",
                "is required for a locked account",
            ));
        }
        ("active" | "pending_activation", Some(_)) => {
            return Err(ApiError::invalid(
                "lock_reason",
                "is only for locked accounts",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "state",
                "must be active, pending_activation or locked",
            ));
        }
    };
    Ok(ImportAccount {
        identity: a.identity.parse()?,
        phone: wire::phone(a.phone.as_deref())?,
        email: wire::email(a.email.as_deref())?,
        birth_date: wire::birth_date(a.birth_date.as_deref(), today)?,
        postal_address: wire::address(a.postal_address.as_deref())?,
        pin_hash: a.pin_hash,
        state,
    })
}

/// `POST /v1/admin/backup`: writes a consistent copy of the store under
/// `<data_dir>/backups/`, for `otpd backup` to move where the operator wants it.
pub async fn backup(state: &Arc<AppState>, input: &Input) -> Reply {
    if state.backing_up.swap(true, Ordering::SeqCst) {
        return Err(ApiError::BackupRunning);
    }
    let now = state.engine.now();
    let name = format!(
        "{}-{:03}",
        crate::wire_time(now).replace(':', "-"),
        now.0 % 1_000
    );
    let backups = state.config.data_dir.join("backups");
    let mut dir = backups.join(&name);
    for n in 2.. {
        if !dir.exists() {
            break;
        }
        dir = backups.join(format!("{name}-{n}"));
    }
    let engine = Arc::clone(&state.engine);
    let actor = input.actor().clone();
    let written =
        tokio::task::spawn_blocking(move || acting(&actor, || engine.backup_to(&dir))).await;
    state.backing_up.store(false, Ordering::SeqCst);
    let summary = written
        .map_err(|e| ApiError::Internal(format!("backup task failed: {e}")))?
        .map_err(ApiError::BackupFailed)?;
    tracing::info!(file = %summary.file.display(), records = summary.records, "backup written");
    ok(wire::BackupOut {
        file: summary.file.display().to_string(),
        records: summary.records,
        round: summary.round,
        bytes: summary.bytes,
        sha256: summary.sha256,
    })
}
