//! Idempotency keys of a node on the cluster (`cluster::idempotency`):
//! a request takes its key on the cluster before it runs (so a retry sent
//! to another node finds it), its answer replaces the take, and a request
//! that ends without an answer to keep gives the key back — unless it
//! changed something, which the node notes for the request while it runs.
//!
//! A record: a version byte, a state (running / answered / lost), the
//! taker's token, the request's fingerprint, when the key was first taken,
//! until when a running request's take holds (its lease), and the answer.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::audit::current_claim;
use crate::clock::Timestamp;
use crate::cluster::idempotency::Take;
use crate::cluster::keys::IdempotencyKey;
use crate::error::{EngineError, Result};
use crate::idempotency::{Claim, IdempotencyPolicy, Remembered, Taken};

use super::{RECORD_V1, Remote};

const RUNNING: u8 = 1;
const ANSWERED: u8 = 2;
const LOST: u8 = 3;

/// A record's length before its answer: version, state, token,
/// fingerprint, first taken, lease.
const HEAD: usize = 1 + 1 + 8 + 32 + 8 + 8;

/// How long a running request's take holds before a retry elsewhere may
/// treat its node as gone (and the answer as lost): longer than any
/// request runs (the server's request timeout is 30 s at most).
pub(in crate::engine) const LEASE: Duration = Duration::from_secs(120);

/// A node's requests running with a key they took, and whether they
/// changed anything yet.
#[derive(Debug, Default)]
pub(in crate::engine) struct Running {
    requests: Mutex<HashMap<(String, String), Request>>,
}

#[derive(Debug, Clone)]
struct Request {
    token: [u8; 8],
    created_at: Timestamp,
    changed: bool,
    /// The record its take wrote.
    taken: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
struct Record {
    state: u8,
    token: [u8; 8],
    fingerprint: [u8; 32],
    created_at: Timestamp,
    until: Timestamp,
    answer: Vec<u8>,
}

fn encode(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + r.answer.len());
    out.push(RECORD_V1);
    out.push(r.state);
    out.extend_from_slice(&r.token);
    out.extend_from_slice(&r.fingerprint);
    out.extend_from_slice(&r.created_at.0.to_le_bytes());
    out.extend_from_slice(&r.until.0.to_le_bytes());
    out.extend_from_slice(&r.answer);
    out
}

fn decode(bytes: &[u8]) -> Result<Record> {
    let corrupt = |why: &str| EngineError::Corrupt(format!("an idempotency key's record: {why}"));
    let (head, answer) = bytes
        .split_at_checked(HEAD)
        .ok_or_else(|| corrupt("truncated"))?;
    if head[0] != RECORD_V1 {
        return Err(corrupt(&format!("unknown version {}", head[0])));
    }
    let state = head[1];
    if !(RUNNING..=LOST).contains(&state) {
        return Err(corrupt(&format!("unknown state {state}")));
    }
    let mut token = [0u8; 8];
    token.copy_from_slice(&head[2..10]);
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(&head[10..42]);
    let number = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        Timestamp(u64::from_le_bytes(b))
    };
    Ok(Record {
        state,
        token,
        fingerprint,
        created_at: number(42),
        until: number(50),
        answer: answer.to_vec(),
    })
}

impl Running {
    /// Notes `claim`'s request as running with its take (`taken`).
    fn hold(&self, claim: &Claim, token: [u8; 8], now: Timestamp, taken: Vec<u8>) -> Taken {
        let request = Request {
            token,
            created_at: now,
            changed: false,
            taken,
        };
        lock(&self.requests).insert(id(claim), request);
        Taken::Run
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn id(claim: &Claim) -> (String, String) {
    (claim.client().to_owned(), claim.key().to_owned())
}

impl Remote {
    /// Where `claim`'s key lives on the cluster; `client_id` (the client's
    /// own id, not its name) keeps a later client of the same name from an
    /// earlier one's keys.
    fn idempotency_key(&self, claim: &Claim, client_id: &[u8]) -> IdempotencyKey {
        let digest = |parts: &[&[u8]]| {
            let mut digest = Sha256::new();
            for part in parts {
                digest.update((part.len() as u64).to_le_bytes());
                digest.update(part);
            }
            digest.finalize()
        };
        let client = digest(&[client_id, claim.client().as_bytes()]);
        let key = digest(&[&client, claim.key().as_bytes()]);
        self.cluster.keys().idempotency(
            &crate::hex::encode(&client[..8]),
            &crate::hex::encode(&key[..16]),
        )
    }

    /// Takes `claim`'s key for a request starting `now`, kept as `policy`
    /// says (its retention, and its cap on the client's keys).
    pub(in crate::engine) fn take_key(
        &self,
        claim: &Claim,
        client_id: &[u8],
        now: Timestamp,
        policy: IdempotencyPolicy,
    ) -> Result<Taken> {
        let key = self.idempotency_key(claim, client_id);
        let mut token = [0u8; 8];
        getrandom::fill(&mut token)
            .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
        let mine = Record {
            state: RUNNING,
            token,
            fingerprint: claim.fingerprint(),
            created_at: now,
            until: now.plus(LEASE),
            answer: Vec::new(),
        };
        let bytes = encode(&mine);
        let retention_ms = u64::try_from(policy.retention.as_millis()).unwrap_or(u64::MAX);
        let take = |over: Option<Vec<u8>>| Take {
            record: bytes.clone(),
            ttl: policy.retention,
            at: now.0,
            expired_before: now.0.saturating_sub(retention_ms).saturating_add(1),
            cap: policy.max_keys_per_client,
            over,
        };
        let (key_now, first) = (key.clone(), take(None));
        let taken = self.run(|cluster| async move { cluster.take(&key_now, first).await });
        let mut held = match taken {
            Ok(held) => held,
            Err(e) => {
                // The take may have been written all the same (its WAIT
                // failed): it is undone, so that nothing blocks the key for
                // a request that never ran. If this fails too, the key is
                // in flight until its lease ends, then lost: never run twice.
                let (key, mine) = (key.clone(), bytes.clone());
                let _ = self.run(|cluster| async move { cluster.drop_if(&key, mine).await });
                return Err(e);
            }
        };
        // A record past its retention by the engine's clock (the cluster's
        // TTL runs on its own) is taken over, if it is still what is there.
        for _ in 0..3 {
            let Some(found) = &held else { break };
            if now < decode(found)?.created_at.plus(policy.retention) {
                break;
            }
            let (key, again) = (key.clone(), take(Some(found.clone())));
            held = self.run(|cluster| async move { cluster.take(&key, again).await })?;
        }
        let Some(held) = held else {
            return Ok(self.running.hold(claim, token, now, bytes));
        };
        let held = decode(&held)?;
        if held.token == token {
            // Our own take, written by a retried pipeline.
            return Ok(self.running.hold(claim, token, now, bytes));
        }
        let answer = match held.state {
            RUNNING if now < held.until && claim.fits(&held.fingerprint) => {
                return Ok(Taken::Elsewhere);
            }
            ANSWERED => Some(held.answer.into()),
            // Lost, or running past its lease (its node is gone): whether
            // it changed anything is unknown, so it is never run again.
            _ => None,
        };
        Ok(Taken::Remembered(Remembered {
            fingerprint: held.fingerprint,
            created_at: held.created_at,
            answer,
        }))
    }

    /// Notes that the request running on this thread (if it runs with a
    /// key) may have changed something: called after every write that was
    /// not refused whole.
    pub(in crate::engine) fn note_change<T>(&self, outcome: &Result<T>) {
        if matches!(outcome, Err(e) if !matches!(e, EngineError::NotStored(_))) {
            return;
        }
        if let Some(claim) = current_claim()
            && let Some(request) = lock(&self.running.requests).get_mut(&id(&claim))
        {
            request.changed = true;
        }
    }

    /// Stores `answer` for `claim`'s key, kept `retention` after the key
    /// was taken.
    pub(in crate::engine) fn keep_answer(
        &self,
        claim: &Claim,
        client_id: &[u8],
        answer: Vec<u8>,
        now: Timestamp,
        retention: Duration,
    ) -> Result<()> {
        let Some(request) = lock(&self.running.requests).remove(&id(claim)) else {
            return Err(EngineError::Internal(
                "an answer for an idempotency key this node did not take".into(),
            ));
        };
        let record = Record {
            state: ANSWERED,
            token: request.token,
            fingerprint: claim.fingerprint(),
            created_at: request.created_at,
            until: request.created_at,
            answer,
        };
        self.store_record(claim, client_id, &record, now, retention)
    }

    /// Gives `claim`'s key back after a request with no answer to keep: free
    /// again if it changed nothing, else remembered as lost (a retry is told
    /// so, never run).
    pub(in crate::engine) fn give_back(
        &self,
        claim: &Claim,
        client_id: &[u8],
        now: Timestamp,
        retention: Duration,
    ) -> Result<()> {
        let Some(request) = lock(&self.running.requests).remove(&id(claim)) else {
            return Ok(());
        };
        if !request.changed {
            // Only this request's own take goes, never a later record.
            let key = self.idempotency_key(claim, client_id);
            let taken = request.taken;
            return self.run(|cluster| async move { cluster.drop_if(&key, taken).await });
        }
        let record = Record {
            state: LOST,
            token: request.token,
            fingerprint: claim.fingerprint(),
            created_at: request.created_at,
            until: request.created_at,
            answer: Vec::new(),
        };
        self.store_record(claim, client_id, &record, now, retention)
    }

    fn store_record(
        &self,
        claim: &Claim,
        client_id: &[u8],
        record: &Record,
        now: Timestamp,
        retention: Duration,
    ) -> Result<()> {
        let left = Duration::from_millis(
            record
                .created_at
                .plus(retention)
                .0
                .saturating_sub(now.0)
                .max(1),
        );
        let key = self.idempotency_key(claim, client_id);
        let bytes = encode(record);
        self.run(|cluster| async move { cluster.put(&key, bytes, left).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_damage_is_an_error_not_a_panic() {
        let record = Record {
            state: ANSWERED,
            token: [1; 8],
            fingerprint: [2; 32],
            created_at: Timestamp(3),
            until: Timestamp(4),
            answer: b"201 created".to_vec(),
        };
        let bytes = encode(&record);
        assert_eq!(decode(&bytes).unwrap(), record);
        for cut in 0..HEAD {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for (at, value) in [(0, 9), (1, 0), (1, 4)] {
            let mut bad = bytes.clone();
            bad[at] = value;
            assert!(decode(&bad).is_err(), "byte {at} = {value}");
        }
    }
}
