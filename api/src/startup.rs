//! Building the application and serving it on a listener the caller bound.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::{ChaCha20Rng, Clock, CodeKey, Engine, Sweeper};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::delivery::{Channel, Dispatcher, Wakeup, run_sender};
use crate::failure::Failure;
use crate::limits::Gate;
use crate::pin_workers::PinWorkers;
use crate::routes;
use crate::routes::{Connection, Listener};
use crate::signing::{Attester, KeyRing, SigningError, read_private_key};
use crate::state::AppState;
use crate::telemetry;
use crate::tls::{ClientCertificate, Tls};

/// What the application is built from, beyond configuration.
pub struct Dependencies {
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Random source (OS-seeded in production).
    pub rng: ChaCha20Rng,
    /// The code key.
    pub code_key: CodeKey,
    /// Replaces the development log sink as the channel for messages whose
    /// channel has no configuration (tests capture codes with it).
    pub delivery: Option<Arc<dyn Channel>>,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies")
            .field("clock", &self.clock)
            .field("delivery", &self.delivery.as_ref().map(|d| d.name()))
            .finish_non_exhaustive()
    }
}

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    state: Arc<AppState>,
    _sweeper: Sweeper,
}

impl App {
    /// Opens the engine (recovering its data) and prepares the server.
    pub fn build(config: Config, deps: Dependencies) -> Result<App, Failure> {
        let dispatcher =
            Arc::new(Dispatcher::from_config(&config, deps.delivery).map_err(Failure::Config)?);
        let mut engine_config = config.engine_config();
        // Codes are refused up front for channels that cannot deliver.
        engine_config.outbox.enabled = dispatcher.enabled();
        engine_config.outbox.lease = send_lease(&config, &dispatcher);
        engine_config.store.cluster = config.cluster_config().map_err(Failure::Config)?;
        let engine = Engine::open(
            engine_config,
            deps.code_key,
            Arc::clone(&deps.clock),
            deps.rng,
        )
        .map_err(|e| Failure::opening("cannot open the store", e))?;
        refuse_unsafe_cluster(&config, &engine)?;
        refuse_test_clients(&config, &engine)?;
        let engine = Arc::new(engine);
        let sweeper = engine
            .start_sweeper(Duration::from_millis(
                config.server.sweep_interval_ms.max(10),
            ))
            .map_err(|e| e.to_string())?;
        let workers = match config.server.argon2_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n as usize,
        };
        let shared = engine.shared_buckets();
        let gate = Gate::new(
            &config.limits,
            &deps.clock,
            shared.as_ref(),
            engine.limit_subject_key(),
        )
        .map_err(Failure::Config)?;
        let attester = open_attester(&config, deps.clock.now())?;
        let tls = Tls::open(&config.server.tls).map_err(Failure::Config)?;
        let state = Arc::new(AppState {
            gate,
            engine,
            dispatcher,
            wakeup: Wakeup::default(),
            pin_workers: PinWorkers::start(workers, config.server.argon2_nice)?,
            draining: AtomicBool::new(false),
            backing_up: AtomicBool::new(false),
            metrics: telemetry::metrics()?,
            attester,
            in_flight: routes::in_flight::InFlight::default(),
            tls,
            config,
        });
        Ok(App {
            state,
            _sweeper: sweeper,
        })
    }

    /// The shared state (tests use its engine to seed clients).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves every route on `listener` until `shutdown` completes, then
    /// stops accepting, lets requests in flight finish (up to the grace
    /// period) and flushes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), String> {
        self.serve_split(listener, None, shutdown).await
    }

    /// As [`App::serve`]; with `ops`, the operators' routes (health,
    /// metrics, `/v1/admin/*`) are served there only, and `public` keeps
    /// the rest. Both share the connection limit and the graceful stop.
    pub async fn serve_split(
        self,
        public: TcpListener,
        ops: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), String> {
        let public_side = if ops.is_some() {
            Listener::Public
        } else {
            Listener::All
        };
        let state = self.state;
        if !engine::audit::RECORDED {
            tracing::error!(
                "this otpd was built with --cfg otpd_no_audit: it records no audit trail and \
                 /readyz answers 503; it exists only to measure the trail's cost"
            );
        }
        let server = &state.config.server;
        let connections = Arc::new(Semaphore::new(server.max_connections as usize));
        let graceful = GracefulShutdown::new();
        let upkeep = tokio::spawn(upkeep(Arc::clone(&state)));
        let sender = tokio::spawn(run_sender(
            Arc::clone(&state.engine),
            Arc::clone(&state.dispatcher),
            state.wakeup.clone(),
            state.config.clone(),
        ));
        // Messages left by a previous run go out at once.
        state.wakeup.ring();
        let tls_watch = state.tls.as_ref().map(|tls| {
            // Listening for SIGHUP before the first connection is
            // accepted: a SIGHUP from then on reloads, never kills.
            let hangup = crate::tls::Hangup::listen();
            tokio::spawn(Arc::clone(tls).watch(TLS_FILES_LOOKED_AT_EVERY, hangup))
        });
        let header_read_timeout = Duration::from_millis(server.header_read_timeout_ms);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = Duration::from_millis(5);
        loop {
            // Take a connection slot before accepting, so a flood waits in the backlog.
            let permit = tokio::select! {
                permit = Arc::clone(&connections).acquire_owned() => {
                    permit.map_err(|_| "connection limiter closed".to_owned())?
                }
                () = &mut shutdown => break,
            };
            let accept_ops = async {
                match &ops {
                    Some(ops) => ops.accept().await,
                    None => std::future::pending().await,
                }
            };
            let (stream, peer, side) = tokio::select! {
                accepted = public.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff = Duration::from_millis(5);
                        (stream, peer.ip(), public_side)
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
                accepted = accept_ops => match accepted {
                    Ok((stream, peer)) => {
                        backoff = Duration::from_millis(5);
                        (stream, peer.ip(), Listener::Ops)
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            // The handshake runs in the connection's task, so a slow one
            // never holds up accepting; the header timeout bounds it.
            let acceptor = state.tls.as_ref().map(|tls| tls.acceptor());
            let state = Arc::clone(&state);
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                match acceptor {
                    None => {
                        let connection = Connection {
                            peer,
                            listener: side,
                            certificate: None,
                        };
                        serve_connection(state, connection, stream, watcher).await;
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(header_read_timeout, acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(stream)) => {
                                let certificate = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .map(|leaf| ClientCertificate::from_der(leaf));
                                let connection = Connection {
                                    peer,
                                    listener: side,
                                    certificate,
                                };
                                serve_connection(state, connection, stream, watcher).await;
                            }
                            Ok(Err(e)) => {
                                metrics::counter!("otpd_tls_handshake_failures_total").increment(1);
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                metrics::counter!("otpd_tls_handshake_failures_total").increment(1);
                                tracing::debug!(peer = %peer, "TLS handshake timed out");
                            }
                        }
                    }
                }
                drop(permit);
            });
        }
        state.draining.store(true, Ordering::SeqCst);
        drop(public);
        drop(ops);
        tracing::info!("shutting down: no new connections; draining requests in flight");
        let grace = Duration::from_millis(server.shutdown_grace_ms);
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => tracing::warn!("drain deadline passed; closing remaining connections"),
        }
        upkeep.abort();
        if let Some(watch) = tls_watch {
            watch.abort();
        }
        // Unsent messages stay in the outbox and go out after the next start.
        sender.abort();
        let _ = sender.await;
        let engine = Arc::clone(&state.engine);
        tokio::task::spawn_blocking(move || engine.flush())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("final flush failed: {e}"))?;
        tracing::info!("store flushed; stopped");
        Ok(())
    }
}

/// How often the TLS files are looked at for a change (SIGHUP reloads at once).
const TLS_FILES_LOOKED_AT_EVERY: Duration = Duration::from_secs(5);

/// Serves the requests of one connection (plain or TLS) until it closes,
/// or until the graceful stop closes it.
async fn serve_connection<S>(
    state: Arc<AppState>,
    connection: Connection,
    stream: S,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = Duration::from_millis(state.config.server.header_read_timeout_ms);
    let connection = Arc::new(connection);
    let service = service_fn(move |request| {
        routes::handle(Arc::clone(&state), Arc::clone(&connection), request)
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    let _ = watcher.watch(served).await;
}

/// A production server refuses to start while a test client exists: its
/// requests would reach accounts under fixed codes.
/// On a cluster: refuses to start when its settings would make an
/// acknowledged write less durable than documented (docs/OPERATIONS.md):
/// `appendfsync always`, `appendonly yes`, `noeviction`, full coverage; or
/// when its clock is too far from this node's.
fn refuse_unsafe_cluster(config: &Config, engine: &Engine) -> Result<(), Failure> {
    let Some(health) = engine.cluster_health(config.store.redis.max_clock_skew()) else {
        return Ok(());
    };
    let health = health.map_err(|e| Failure::opening("cannot check the cluster", e))?;
    for warning in &health.warnings {
        tracing::warn!(warning = %warning, "cluster settings not checked");
    }
    if health.problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Config(format!(
            "the Redis Cluster is not fit for otpd: {}",
            health.problems.join("; ")
        )))
    }
}

fn refuse_test_clients(config: &Config, engine: &Engine) -> Result<(), Failure> {
    let test = engine.test_clients();
    if config.environment == crate::config::Environment::Production && !test.is_empty() {
        return Err(Failure::Config(format!(
            "test clients exist ({}); they are refused when environment = \"production\": \
             revoke them first (`otpd client revoke NAME` with the server stopped)",
            test.join(", ")
        )));
    }
    Ok(())
}

/// Opens the signing key ring (making a first key on first start) and the
/// attester over it.
pub fn open_attester(config: &Config, now: engine::Timestamp) -> Result<Attester, Failure> {
    let external = if config.signing.key.is_empty() {
        None
    } else {
        let text = crate::secrets::resolve_secret(&config.signing.key)
            .map_err(|e| Failure::Config(format!("signing.key: {e}")))?;
        Some(read_private_key(&text).map_err(|e| Failure::Config(e.to_string()))?)
    };
    let dir = config.signing.key_dir(&config.data_dir);
    let ring = KeyRing::open(&dir, config.signing.overlap(), now, external.as_deref()).map_err(
        |e| match e {
            SigningError::Io(_) => Failure::Other(format!("signing keys: {e}")),
            _ => Failure::Config(format!("signing keys in {}: {e}", dir.display())),
        },
    )?;
    Ok(Attester::new(
        ring,
        config.signing.issuer.trim().to_owned(),
        config.signing.token_ttl(),
    ))
}

/// Limiter sizes, and SMS conversion per country with the pumping alarm.
fn publish_limits(state: &AppState, stats: &engine::Stats) {
    state.gate.prune();
    for (limit, keys, overflowed) in state.gate.usage() {
        metrics::gauge!("otpd_limiter_keys", "limit" => limit).set(keys as f64);
        metrics::counter!("otpd_limiter_overflow_total", "limit" => limit).absolute(overflowed);
    }
    metrics::gauge!("otpd_limiter_keys", "limit" => "account_and_destination")
        .set(stats.limiter_keys as f64);
    let conversion = match state.engine.sms_conversion() {
        Ok(conversion) => conversion,
        Err(e) => {
            tracing::warn!(error = %e, "SMS conversion unread: the pumping alarm is not updated");
            Vec::new()
        }
    };
    for c in conversion {
        let code = c.calling_code.to_string();
        metrics::counter!("otpd_sms_codes_sent_total", "calling_code" => code.clone())
            .absolute(c.sent);
        metrics::counter!("otpd_sms_codes_verified_total", "calling_code" => code.clone())
            .absolute(c.verified);
        let ratio = if c.recent_sent == 0 {
            1.0
        } else {
            c.recent_verified as f64 / c.recent_sent as f64
        };
        metrics::gauge!("otpd_sms_verify_ratio", "calling_code" => code.clone()).set(ratio);
        let alarm = metrics::gauge!("otpd_sms_pumping_alarm", "calling_code" => code.clone());
        alarm.set(if c.alarm { 1.0 } else { 0.0 });
        if c.alarm {
            tracing::warn!(
                calling_code = %code,
                sent = c.recent_sent,
                verified = c.recent_verified,
                "SMS pumping suspected: few codes sent to this country are verified"
            );
        }
    }
}

/// On a cluster, how long a node holds a message it is sending before
/// another node may take it: twice the longest a send may take (each
/// gateway of a channel tried in turn, plus the sender's margin), so a
/// message that waited for a free send slot still ends its send within
/// it, and never under a minute.
fn send_lease(config: &Config, dispatcher: &Dispatcher) -> Duration {
    let per_request = Duration::from_millis(config.delivery.send_timeout_ms);
    let longest = dispatcher
        .enabled()
        .into_iter()
        .map(|via| dispatcher.deadline(via, per_request))
        .max()
        .unwrap_or(per_request);
    (longest * 2 + Duration::from_secs(5)).max(Duration::from_secs(60))
}

/// Refreshes the gauges every 5 s.
async fn upkeep(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        publish_metrics(&state);
    }
}

/// One refresh of the gauges and store counters, and the exporter's upkeep:
/// the upkeep task's tick, callable by tests that read `/metrics` at once.
pub fn publish_metrics(state: &AppState) {
    let stats = state.engine.stats();
    // On a cluster a node holds no accounts or challenges of its own, and
    // counting the cluster's would scan it: the gauges are left out rather
    // than wrong (docs/OPERATIONS.md, "Metrics").
    if !state.engine.on_cluster() {
        metrics::gauge!("otpd_accounts").set(stats.accounts as f64);
        metrics::gauge!("otpd_active_challenges").set(stats.challenges as f64);
    }
    metrics::gauge!("otpd_outbox_depth").set(stats.outbox as f64);
    metrics::gauge!("otpd_store_last_flush_seconds").set(stats.flush.last_flush.as_secs_f64());
    metrics::counter!("otpd_store_flushes_total").absolute(stats.flush.flushes);
    metrics::counter!("otpd_store_flush_microseconds_total")
        .absolute(u64::try_from(stats.flush.flush_time.as_micros()).unwrap_or(u64::MAX));
    metrics::counter!("otpd_store_writes_total").absolute(stats.flush.writes);
    metrics::counter!("otpd_lockouts_total").absolute(stats.lockouts);
    if let Some(c) = stats.cluster {
        metrics::counter!("otpd_cluster_errors_total").absolute(c.errors);
        metrics::counter!("otpd_cluster_cas_retries_total").absolute(c.cas_retries);
        metrics::counter!("otpd_cluster_wait_timeouts_total").absolute(c.wait_timeouts);
        metrics::counter!("otpd_rate_limit_unanswered_total").absolute(c.limits_unanswered);
        metrics::counter!("otpd_sms_tallies_lost_total").absolute(c.tallies_lost);
        metrics::counter!("otpd_outbox_claims_total").absolute(c.outbox_claimed);
        metrics::counter!("otpd_outbox_leases_expired_total").absolute(c.outbox_leases_expired);
        metrics::counter!("otpd_outbox_handoffs_total").absolute(c.outbox_handed_off);
    }
    metrics::counter!("otpd_argon2_runs_total").absolute(stats.argon2_runs);
    metrics::gauge!("otpd_argon2_memory_bytes").set(stats.argon2_memory_bytes as f64);
    metrics::gauge!("otpd_idempotency_keys").set(stats.idempotency_keys as f64);
    metrics::gauge!("otpd_audit_tracked_entries").set(stats.audit_tracked as f64);
    metrics::counter!("otpd_idempotency_evicted_total").absolute(stats.idempotency_evicted);
    // Counted where they happen; touched here so that the series exist
    // (at 0) from the start, and on servers without TLS too.
    for outcome in ["ok", "failed"] {
        metrics::counter!("otpd_tls_reloads_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("otpd_tls_handshake_failures_total").increment(0);
    publish_health(state);
    publish_limits(state, &stats);
    state.metrics.run_upkeep();
}

/// Readiness as `/readyz` answers it, and the data directory's free space
/// against its reserve, so alerts need no prober.
fn publish_health(state: &AppState) {
    let ready = !state.draining.load(Ordering::SeqCst) && state.engine.writable().is_ok();
    metrics::gauge!("otpd_ready").set(if ready { 1.0 } else { 0.0 });
    if let Ok(stat) = rustix::fs::statvfs(&state.config.data_dir) {
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        metrics::gauge!("otpd_store_free_bytes").set(free as f64);
    }
    let reserve = state.config.store.min_free_mb.saturating_mul(1 << 20);
    metrics::gauge!("otpd_store_reserve_bytes").set(reserve as f64);
}
