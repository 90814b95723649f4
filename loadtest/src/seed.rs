//! Test accounts: created through the bulk-import endpoint with one
//! precomputed PIN hash (100,000 accounts in seconds, not an hour of
//! Argon2), or read back from the file a previous seeding wrote.

use std::path::Path;

use engine::{Argon2Params, Pin, hash_pin_phc};
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::run::{Account, Http};

/// Accounts per import request at most (otpd's limit).
pub const MAX_BATCH: u64 = 10_000;

/// The phone of test account `n`: `+3519` and eight digits.
pub fn phone(n: u64) -> String {
    format!("+3519{n:08}")
}

/// Imports `count` active accounts numbered from `first` with `pin`, hashed
/// once at `params` (use the server's, so logins cost what they will),
/// `batch` per request (otpd takes at most 10,000).
pub async fn seed(
    http: &Http,
    first: u64,
    count: u64,
    pin: &str,
    params: Argon2Params,
    batch: u64,
) -> Result<Vec<Account>, String> {
    if first + count > 100_000_000 {
        return Err("accounts are numbered below 100,000,000".into());
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("random salt: {e}"))?;
    let hash = hash_pin_phc(&Pin::new(pin), params, salt).map_err(|e| e.to_string())?;
    let mut accounts = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let numbers: Vec<u64> = (first..first + count).collect();
    for chunk in numbers.chunks(usize::try_from(batch).unwrap_or(1).max(1)) {
        let items: Vec<_> = chunk
            .iter()
            .map(|n| {
                json!({
                    "identity": { "kind": "civil_id", "number": format!("{n:08}") },
                    "phone": phone(*n),
                    "pin_hash": hash,
                })
            })
            .collect();
        let body = json!({ "accounts": items });
        let (status, answer) = http
            .call(Method::POST, "/v1/admin/import", Some(&body))
            .await?;
        if status != StatusCode::OK {
            return Err(format!("import refused with {status}: {answer}"));
        }
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        for (n, result) in chunk.iter().zip(results) {
            match result["account_id"].as_str() {
                Some(id) => accounts.push(Account {
                    id: id.to_owned(),
                    phone: phone(*n),
                }),
                None => {
                    return Err(format!(
                        "account {n} was not imported: {} (seed into an empty store, or reuse the accounts file)",
                        result["error"]
                    ));
                }
            }
        }
    }
    Ok(accounts)
}

/// Writes `id phone` lines.
pub fn save(path: &Path, accounts: &[Account]) -> Result<(), String> {
    let text: String = accounts
        .iter()
        .map(|a| format!("{} {}\n", a.id, a.phone))
        .collect();
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads what [`save`] wrote.
pub fn load(path: &Path) -> Result<Vec<Account>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| match line.split_once(' ') {
            Some((id, phone)) => Ok(Account {
                id: id.to_owned(),
                phone: phone.trim().to_owned(),
            }),
            None => Err(format!(
                "{} line {}: expected `id phone`",
                path.display(),
                i + 1
            )),
        })
        .collect()
}
