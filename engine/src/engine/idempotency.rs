//! Idempotency keys as the engine keeps them: a claim written in the batch of the request's first change, the answer stored after, expiry, the per-client cap, recovery.

use std::sync::atomic::Ordering;

use crate::audit::Events;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::idempotency::{Book, Claim, IdempotencyRecord, Remembered, Taken};
use crate::store::{Change, Changes, Durable, Ticket};

use super::{Engine, lock};

/// The most expired keys one sweep deletes; the rest wait for the next.
const SWEEP_BATCH: usize = 10_000;

impl Engine {
    /// `client`'s claim on `key` for the request made of `request` (its
    /// parts, e.g. method, path and body), fingerprinted with a keyed hash:
    /// the parts may hold a PIN or a code, and the fingerprint is stored.
    pub fn claim(&self, client: &str, key: &str, request: &[&[u8]]) -> Result<Claim> {
        Claim::new(client, key, self.keys.request_fingerprint(request))
    }

    /// What is remembered of `client`'s `key`, unless it has expired.
    pub fn recall(&self, client: &str, key: &str) -> Option<Remembered> {
        let now = self.now();
        let policy = self.config.idempotency;
        lock(&self.idempotency)
            .get(client, key)
            .filter(|r| policy.kept(r.created_at, now))
            .cloned()
    }

    /// Takes `claim`'s key for a request about to run, or says what is
    /// remembered of it. Embedded, the key is written with the request's
    /// first change (so this only reads); on a cluster it is taken at once,
    /// acknowledged, so a retry sent to another node finds it (a key taken
    /// by a request still running elsewhere: [`Taken::Elsewhere`]).
    pub fn take(&self, claim: &Claim) -> Result<Taken> {
        let Some(remote) = &self.remote else {
            return Ok(match self.recall(claim.client(), claim.key()) {
                Some(remembered) => Taken::Remembered(remembered),
                None => Taken::Run,
            });
        };
        let policy = self.config.idempotency;
        remote.take_key(claim, &self.client_tag(claim), self.now(), policy)
    }

    /// Gives back the key of a request that ran ([`Taken::Run`]) and whose
    /// answer is not kept (a server error, a timeout, a rate limit): a retry
    /// then runs again, unless the request changed something, in which case
    /// its key stays (answer lost). Embedded there is nothing to do: the
    /// key exists only if the request changed something.
    pub fn give_back(&self, claim: &Claim) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let retention = self.config.idempotency.retention;
        remote.give_back(claim, &self.client_tag(claim), self.now(), retention)
    }

    /// What tells `claim`'s client from an earlier one of the same name.
    fn client_tag(&self, claim: &Claim) -> Vec<u8> {
        self.active_client(claim.client())
            .map(|id| id.0.to_vec())
            .unwrap_or_default()
    }

    /// Stores `answer` (opaque bytes) as the answer to the request `claim`
    /// names, for its retries; it replaces the claim's record, and keeps
    /// its time, so the key expires a retention after it was first claimed.
    pub fn remember(&self, claim: &Claim, answer: Vec<u8>) -> Result<Durable<()>> {
        let now = self.now();
        let policy = self.config.idempotency;
        if let Some(remote) = &self.remote {
            let tag = self.client_tag(claim);
            remote.keep_answer(claim, &tag, answer, now, policy.retention)?;
            return Ok(self.ready(()));
        }
        let mut book = lock(&self.idempotency);
        let created_at = book
            .get(claim.client(), claim.key())
            .filter(|r| claim.fits(&r.fingerprint) && policy.kept(r.created_at, now))
            .map_or(now, |r| r.created_at);
        let record = IdempotencyRecord {
            client: claim.client().to_owned(),
            key: claim.key().to_owned(),
            remembered: Remembered {
                fingerprint: claim.fingerprint(),
                created_at,
                answer: Some(answer.into()),
            },
        };
        let evicted = book.evictions(claim.client(), claim.key(), policy.max_keys_per_client);
        let mut changes = vec![Change::Idempotency(&record)];
        changes.extend(
            evicted
                .iter()
                .map(|k| Change::RemoveIdempotency(claim.client(), k)),
        );
        // No events: not the store's port of the audit log, and no claim to add.
        let ticket = self.store.write(Changes(changes))?;
        self.forget_evicted(&mut book, claim.client(), &evicted);
        book.put(claim.client(), claim.key(), record.remembered);
        Ok(self.durable((), ticket))
    }

    /// Writes `changes` and `events` with `claim`'s record in the same
    /// batch, unless an earlier write of the same request already holds
    /// it. The idempotency book's lock is held until the batch is queued,
    /// so the claim is in memory exactly when it is in the store's queue.
    pub(super) fn write_claimed(
        &self,
        claim: &Claim,
        changes: Changes<'_>,
        events: Events,
    ) -> Result<Ticket> {
        let now = self.now();
        let policy = self.config.idempotency;
        let mut book = lock(&self.idempotency);
        let held = book.get(claim.client(), claim.key()).is_some_and(|r| {
            claim.fits(&r.fingerprint) && r.answer.is_none() && policy.kept(r.created_at, now)
        });
        if held {
            drop(book);
            return self.write_sealed(changes, events);
        }
        let record = IdempotencyRecord {
            client: claim.client().to_owned(),
            key: claim.key().to_owned(),
            remembered: Remembered {
                fingerprint: claim.fingerprint(),
                created_at: now,
                answer: None,
            },
        };
        let evicted = book.evictions(claim.client(), claim.key(), policy.max_keys_per_client);
        let mut all: Vec<Change<'_>> = changes.0;
        all.push(Change::Idempotency(&record));
        all.extend(
            evicted
                .iter()
                .map(|k| Change::RemoveIdempotency(claim.client(), k)),
        );
        let ticket = self.write_sealed(Changes(all), events)?;
        self.forget_evicted(&mut book, claim.client(), &evicted);
        book.put(claim.client(), claim.key(), record.remembered);
        Ok(ticket)
    }

    fn forget_evicted(&self, book: &mut Book, client: &str, evicted: &[String]) {
        for key in evicted {
            book.remove(client, key);
        }
        self.idempotency_evicted
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
    }

    /// Every key `client` holds (for its revocation to delete).
    pub(super) fn client_keys(&self, client: &str) -> Vec<String> {
        lock(&self.idempotency).keys_of(client)
    }

    /// Forgets `client`'s `keys` once their deletion is queued.
    pub(super) fn forget_client_keys(&self, client: &str, keys: &[String]) {
        let mut book = lock(&self.idempotency);
        for key in keys {
            book.remove(client, key);
        }
    }

    /// Deletes keys past their retention (at most [`SWEEP_BATCH`] a call);
    /// returns how many went. Needs no flush: a lost deletion is redone,
    /// and an expired key is never answered from meanwhile.
    pub(super) fn sweep_idempotency(&self, now: Timestamp) -> Result<usize> {
        let retention =
            u64::try_from(self.config.idempotency.retention.as_millis()).unwrap_or(u64::MAX);
        // Expired at `now`: claimed at or before `now - retention`.
        let cutoff = Timestamp(now.0.saturating_sub(retention).saturating_add(1));
        let mut book = lock(&self.idempotency);
        let mut expired = book.older_than(cutoff);
        expired.truncate(SWEEP_BATCH);
        if expired.is_empty() {
            return Ok(0);
        }
        let removals = expired
            .iter()
            .map(|(client, key)| Change::RemoveIdempotency(client, key))
            .collect();
        self.store.write(Changes(removals))?;
        for (client, key) in &expired {
            book.remove(client, key);
        }
        Ok(expired.len())
    }

    /// Reads the keys back on open: expired ones and those past a client's
    /// cap (oldest first) are deleted.
    pub(super) fn recover_idempotency(&self) -> Result<()> {
        let policy = self.config.idempotency;
        let now = self.clock.now();
        let mut book = Book::default();
        let mut garbage: Vec<(String, String)> = Vec::new();
        self.store.scan_idempotency(&mut |record| {
            if policy.kept(record.remembered.created_at, now) {
                book.put(&record.client, &record.key, record.remembered);
            } else {
                garbage.push((record.client, record.key));
            }
            Ok(())
        })?;
        book.sort();
        for (client, key) in book.over(policy.max_keys_per_client) {
            book.remove(&client, &key);
            garbage.push((client, key));
        }
        if !garbage.is_empty() {
            let removals = garbage
                .iter()
                .map(|(client, key)| Change::RemoveIdempotency(client, key))
                .collect();
            // Only garbage: if the removal is lost it is redone next start.
            let _ = self.store.write(Changes(removals));
        }
        *lock(&self.idempotency) = book;
        Ok(())
    }

    /// Idempotency keys held, and keys evicted by the per-client cap since start.
    pub(super) fn idempotency_counts(&self) -> (usize, u64) {
        (
            lock(&self.idempotency).len(),
            self.idempotency_evicted.load(Ordering::Relaxed),
        )
    }
}
