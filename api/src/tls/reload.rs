//! The TLS configuration in force, rebuilt from its files on SIGHUP or when they change.
//!
//! Each new connection takes the configuration in force when it is
//! accepted; a connection already open keeps the session it has. A file
//! that does not load leaves the configuration in force as it was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio_rustls::TlsAcceptor;

use super::files;
use crate::config::TlsConfig;

/// The listeners' TLS: the files' settings and the configuration loaded from them.
#[derive(Debug)]
pub struct Tls {
    settings: TlsConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The files as they were at the last load, tried or done.
    loaded: Mutex<Vec<Option<(SystemTime, u64)>>>,
    reloaded: AtomicU64,
    failed: AtomicU64,
}

impl Tls {
    /// Loads the files `settings` names; `None` when TLS is off. An error
    /// names the setting and file at fault.
    pub fn open(settings: &TlsConfig) -> Result<Option<Arc<Tls>>, String> {
        if !settings.enabled() {
            return Ok(None);
        }
        let loaded = files::fingerprint(settings);
        let config = files::server_config(settings)?;
        Ok(Some(Arc::new(Tls {
            settings: settings.clone(),
            current: RwLock::new(config),
            loaded: Mutex::new(loaded),
            reloaded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })))
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self.current.read().unwrap_or_else(PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&config))
    }

    /// Reads the files again and puts the result in force for new
    /// connections; on an error (logged and counted) the configuration in
    /// force stays.
    pub fn reload(&self) -> Result<(), String> {
        // Taken before reading, so a change made while reading is seen next time.
        let seen = files::fingerprint(&self.settings);
        let outcome = files::server_config(&self.settings);
        *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        match outcome {
            Ok(config) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
                self.reloaded.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("otpd_tls_reloads_total", "outcome" => "ok").increment(1);
                tracing::info!(
                    cert = %self.settings.cert.trim(),
                    "TLS certificate reloaded: new connections use it"
                );
                Ok(())
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("otpd_tls_reloads_total", "outcome" => "failed").increment(1);
                tracing::error!(error = %e, "TLS reload failed: the certificate in force stays");
                Err(e)
            }
        }
    }

    /// Reloads if a file's modification time or size changed since the
    /// last load; `None` when none did.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let now = files::fingerprint(&self.settings);
        let changed = *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) != now;
        changed.then(|| self.reload())
    }

    /// Reloads done and failed since the start.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloaded.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Reloads on SIGHUP, and when the files change (looked at every `every`).
    pub async fn watch(self: Arc<Self>, every: Duration, hangup: Hangup) {
        #[cfg(unix)]
        let mut hangup = hangup.0;
        #[cfg(not(unix))]
        let _ = hangup;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let hangup_received = async {
                #[cfg(unix)]
                if let Some(signal) = hangup.as_mut() {
                    return signal.recv().await;
                }
                std::future::pending().await
            };
            let woken = tokio::select! {
                received = hangup_received => Some(received),
                _ = tick.tick() => None,
            };
            match woken {
                Some(Some(())) => {
                    tracing::info!("SIGHUP: reloading the TLS files");
                    let _ = self.reload();
                }
                // The signal stream ended: only the files are watched now.
                Some(None) => {
                    #[cfg(unix)]
                    {
                        hangup = None;
                    }
                }
                None => {
                    let _ = self.reload_if_changed();
                }
            }
        }
    }
}

/// SIGHUP, listened for (on Unix) from the moment it is made.
#[derive(Debug)]
pub struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    /// Starts listening for SIGHUP; from now on one is delivered to the
    /// watcher instead of ending the process. Needs a Tokio runtime.
    pub fn listen() -> Hangup {
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Hangup(Some(signal)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files are still watched");
                    Hangup(None)
                }
            }
        }
        #[cfg(not(unix))]
        Hangup()
    }
}
