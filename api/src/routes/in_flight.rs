//! Requests with an idempotency key running now: a second request with
//! the same key waits for the first instead of running beside it. Knows
//! nothing of handlers or the server's state, which holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use engine::{Claim, Engine, EngineError, Remembered, Taken};
use tokio::sync::watch;

/// Keyed requests running now, by (client, key).
#[derive(Debug, Default)]
pub struct InFlight {
    flights: Arc<Mutex<Flights>>,
}

type Flights = HashMap<(String, String), Flight>;

#[derive(Debug)]
struct Flight {
    fingerprint: [u8; 32],
    /// Closed when the request ends.
    done: watch::Receiver<()>,
}

/// Where a keyed request goes.
pub(super) enum Entry {
    /// Nobody has the key: this request runs, holding the flight.
    Run(Holder),
    /// The same request is running: wait for it, then look again.
    Wait(watch::Receiver<()>),
    /// The key is remembered for this request.
    Replay(Remembered),
    /// The key belongs to another request.
    Reused,
    /// The same key's request runs on another node (on a cluster).
    Elsewhere,
    /// The key could not be looked up (the cluster is unreachable).
    Failed(EngineError),
}

/// The running request's hold on its key: let go when it ends, however it ends.
pub(super) struct Holder {
    flights: Arc<Mutex<Flights>>,
    id: (String, String),
    _done: watch::Sender<()>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Removed before the sender closes, so a woken waiter finds the key
        // in the engine (or nowhere), never in flight.
        lock(&self.flights).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InFlight {
    /// Looks the key up in flight; if it is not, holds it and takes it in
    /// the engine. Held before the engine is asked (outside the lock: on a
    /// cluster that is a round trip), so a request with the same key that
    /// arrives meanwhile waits; a request that ended before has stored its
    /// answer before letting go, so the engine has it.
    pub(super) fn enter(&self, engine: &Engine, claim: &Claim) -> Entry {
        let id = (claim.client().to_owned(), claim.key().to_owned());
        let holder = {
            let mut flights = lock(&self.flights);
            if let Some(flight) = flights.get(&id) {
                return if claim.fits(&flight.fingerprint) {
                    Entry::Wait(flight.done.clone())
                } else {
                    Entry::Reused
                };
            }
            let (done, waiting) = watch::channel(());
            flights.insert(
                id.clone(),
                Flight {
                    fingerprint: claim.fingerprint(),
                    done: waiting,
                },
            );
            Holder {
                flights: Arc::clone(&self.flights),
                id,
                _done: done,
            }
        };
        // Anything but `Run` lets go of the key (`holder` dropped): requests
        // that waited meanwhile look again.
        match engine.take(claim) {
            Ok(Taken::Run) => Entry::Run(holder),
            Err(e) => Entry::Failed(e),
            Ok(Taken::Elsewhere) => Entry::Elsewhere,
            Ok(Taken::Remembered(r)) if !claim.fits(&r.fingerprint) => Entry::Reused,
            Ok(Taken::Remembered(r)) => Entry::Replay(r),
        }
    }
}
