//! Requests with an idempotency key running now: a second request with
//! the same key waits for the first instead of running beside it. Knows
//! nothing of handlers or the server's state, which holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use engine::{Claim, Engine, Remembered};
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
    /// Looks the key up in flight and then in the engine, under one lock,
    /// so a request ending in between cannot be missed.
    pub(super) fn enter(&self, engine: &Engine, claim: &Claim) -> Entry {
        let mut flights = lock(&self.flights);
        let id = (claim.client().to_owned(), claim.key().to_owned());
        if let Some(flight) = flights.get(&id) {
            return if claim.fits(&flight.fingerprint) {
                Entry::Wait(flight.done.clone())
            } else {
                Entry::Reused
            };
        }
        match engine.recall(claim.client(), claim.key()) {
            Some(r) if !claim.fits(&r.fingerprint) => Entry::Reused,
            Some(r) => Entry::Replay(r),
            None => {
                let (done, waiting) = watch::channel(());
                flights.insert(
                    id.clone(),
                    Flight {
                        fingerprint: claim.fingerprint(),
                        done: waiting,
                    },
                );
                Entry::Run(Holder {
                    flights: Arc::clone(&self.flights),
                    id,
                    _done: done,
                })
            }
        }
    }
}
