//! The `otpd` binary: parse the command line, then serve or manage clients.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use engine::{SystemClock, os_seeded_rng};
use otpd::cli::store::{
    backup, check, code_key, existing_code_key, migrate, open_existing, open_offline, restore,
    store_dir,
};
use otpd::cli::{self, attestation, keys, keys::KeyAction};
use otpd::config::{Config, Environment, LogFormat, Overrides};
use otpd::failure::Failure;
use otpd::{App, Dependencies, telemetry};

/// mimalloc instead of glibc's malloc: recovery of 1,000,000 accounts and
/// as many live challenges in 7.2–7.6 s instead of 11.9–12.5 s, a live
/// challenge 337 bytes instead of 416, an account 784 bytes instead of 740
/// (docs/CAPACITY.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// otpd: one-time codes for two-factor login, with embedded storage.
///
/// Settings are layered: built-in defaults, then the TOML file given by
/// --config (or OTPD_CONFIG), then OTPD_* environment variables (every setting
/// `section.key` is OTPD_SECTION_KEY, e.g. OTPD_LOCKOUT_PIN_THRESHOLD), then
/// the flags below. Unknown keys and variables are errors. The code key comes
/// from OTPD_CODE_KEY (64 hex digits), the file `code_key_file`, or is
/// generated into <data_dir>/code.key on first start. See docs/OPERATIONS.md.
#[derive(Debug, Parser)]
#[command(name = "otpd", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "OTPD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory (store and code key) [default: ./otpd-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format [default: human].
    #[arg(long, global = true)]
    log_format: Option<LogFormatArg>,
    /// Deployment kind; production refuses development-only parts [default: development].
    #[arg(long, global = true)]
    environment: Option<EnvironmentArg>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage client services, the only callers the API accepts. With the
    /// server running, through its admin API (an admin-scoped key in
    /// OTPD_ADMIN_KEY): no restart; with it stopped, on the store directly.
    Client {
        #[command(subcommand)]
        action: ClientAction,
        /// The running server's base URL [default: http:// and the listen address].
        #[arg(long, global = true)]
        server: Option<String>,
    },
    /// Print every OTPD_* environment variable and the setting it sets.
    EnvVars,
    /// Print the effective configuration (all layers applied) as TOML.
    Config,
    /// List messages that failed for good (run while the server is stopped).
    DeadLetters,
    /// Write a consistent copy of the store into DIR/otpd.backup. With the
    /// server stopped, reads the store directly; with it running, asks it
    /// (an admin-scoped key in OTPD_ADMIN_KEY) and moves its copy into DIR.
    Backup {
        /// A new or empty directory for the backup.
        #[arg(long)]
        to: PathBuf,
        /// The running server's base URL [default: http:// and the listen address].
        #[arg(long)]
        server: Option<String>,
    },
    /// Replace the data directory's store with a backup (server stopped).
    Restore {
        /// The directory `otpd backup` wrote.
        #[arg(long)]
        from: PathBuf,
        /// Set an existing store aside (renamed, never deleted) and restore in its place.
        #[arg(long)]
        replace: bool,
    },
    /// Move every account, client, live challenge and queued message between
    /// a data directory and the Redis Cluster of store.redis (every node
    /// stopped), then check counts and a sample read back:
    /// `--from DIR --to redis-cluster`, or `--from redis-cluster --to NEW_DIR`.
    Migrate {
        /// A data directory, or `redis-cluster`.
        #[arg(long)]
        from: String,
        /// `redis-cluster`, or a new data directory.
        #[arg(long)]
        to: String,
    },
    /// Signing keys: list them, make a new active key (the old one stays
    /// published for signing.key_overlap_seconds), or retire one. With the
    /// server running, asks it (an admin-scoped key in OTPD_ADMIN_KEY).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The running server's base URL [default: http:// and the listen address].
        #[arg(long, global = true)]
        server: Option<String>,
    },
    /// Check an attestation as a signing service would: its signature
    /// against the key set, its key id, its expiry and, with --sha256, that
    /// it approves that document. Exit 0 if it holds, 1 (with the reason) if not.
    VerifyAttestation {
        /// The key set: a file, or the server's /.well-known/jwks.json URL.
        #[arg(long)]
        jwks: String,
        /// The SHA-256 (64 hex digits) of the document the token must approve.
        #[arg(long, value_parser = attestation::parse_sha256)]
        sha256: Option<String>,
        /// The issuer the token must name (the server's signing.issuer).
        #[arg(long)]
        issuer: Option<String>,
        /// The token (compact JWS).
        token: String,
    },
    /// The audit trail: export it, check it, print the key that verifies it.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Check the data directory offline (server stopped): the store opens,
    /// no acknowledged write is missing, every record decodes; print counts.
    Check {
        /// Check this backup directory instead: checksum and every record.
        #[arg(long)]
        backup: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// Register a client and print its API key (shown once only).
    Add {
        /// Unique name, e.g. the service's host name.
        name: String,
        /// Comma-separated scopes: auth, accounts, admin, sign, audit, recovery
        /// (recovery only for the strong-authentication services).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Comma-separated purposes it may have codes issued for: login,
        /// step_up, activation, contact_change, signature [default: all].
        #[arg(long, value_delimiter = ',')]
        purposes: Option<Vec<String>>,
        /// Comma-separated channels its codes may go by: sms, email, push,
        /// letter [default: all].
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<String>>,
        /// Its own issuance rate, codes per second, minute or hour (e.g. 10/minute).
        #[arg(long)]
        rate: Option<String>,
        /// A test client: only accounts whose phone and email are test
        /// destinations ([test_mode]); refused in production.
        #[arg(long)]
        test: bool,
        /// When its key stops working (RFC 3339 or a date) [default: never].
        #[arg(long, value_parser = otpd::cli::parse_time)]
        expires_at: Option<engine::Timestamp>,
    },
    /// List clients, their policy and their keys (never a key itself).
    List,
    /// Revoke a client (every key of it), or with --key only that key; refused at once.
    Revoke {
        /// The client's name.
        name: String,
        /// Only this key (its id, from `otpd client list`).
        #[arg(long)]
        key: Option<String>,
    },
    /// Give a client another key, valid alongside its others until they
    /// are revoked or expire; print it (shown once only).
    Rotate {
        /// The client's name.
        name: String,
        /// When the new key stops working [default: never].
        #[arg(long, value_parser = otpd::cli::parse_time)]
        expires_at: Option<engine::Timestamp>,
        /// When the client's other keys stop working (brought forward, never
        /// postponed): the old key retires by itself once the relying party has switched.
        #[arg(long, value_parser = otpd::cli::parse_time)]
        previous_expires_at: Option<engine::Timestamp>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Every key, and whether it is active, previous (still published),
    /// expired (past its overlap) or retired.
    List,
    /// Make a new key the active one.
    Rotate,
    /// Stop publishing a replaced key: tokens it signed no longer verify.
    Retire {
        /// The key's id (its RFC 7638 thumbprint). Base64url: it may start
        /// with '-', which must not be read as a flag.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Write events as JSON Lines, closed by a signed trailer. From the
    /// stopped store, or with the server running through its admin API
    /// (OTPD_ADMIN_KEY). The export starts at the checkpoint before --since,
    /// so it verifies on its own.
    Export {
        /// From this time (RFC 3339, UTC, or a date) [default: the first event].
        #[arg(long, value_parser = otpd::cli::parse_time)]
        since: Option<engine::Timestamp>,
        /// Up to this time [default: the last durable event].
        #[arg(long, value_parser = otpd::cli::parse_time)]
        until: Option<engine::Timestamp>,
        /// Only `jsonl` (JSON Lines).
        #[arg(long, default_value = "jsonl")]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        to: Option<PathBuf>,
        /// The running server's base URL [default: http:// and the listen address].
        #[arg(long)]
        server: Option<String>,
    },
    /// Recompute the chain and check every checkpoint: of the stopped
    /// store, or of an export. Exit 1 naming the first bad event.
    Verify {
        /// Check this export instead of the store.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The checkpoint key (64 hex digits, `otpd audit public-key`)
        /// [default: derived from the code key].
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the public key that verifies checkpoints and trailers, for auditors.
    PublicKey,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EnvironmentArg {
    Development,
    Production,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("otpd: {failure}");
            std::process::ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
        log_format: cli.log_format.map(|f| match f {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }),
        environment: cli.environment.map(|e| match e {
            EnvironmentArg::Development => Environment::Development,
            EnvironmentArg::Production => Environment::Production,
        }),
    };
    let config = Config::load(cli.config.as_deref(), std::env::vars(), &overrides)
        .map_err(Failure::Config)?;
    telemetry::init_logging(config.log_format, &config.log_level);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Client { action, server } => manage_clients(&config, action, server.as_deref()),
        Command::DeadLetters => {
            let engine = open_offline(&config)?;
            for d in engine.dead_letters().map_err(|e| e.to_string())? {
                println!(
                    "{}  message {}  challenge {}  {:6}  {} attempt(s)  {}",
                    otpd::wire_time(d.failed_at),
                    d.id,
                    d.challenge_id,
                    d.channel.as_str(),
                    d.attempts,
                    d.reason
                );
            }
            Ok(())
        }
        Command::Backup { to, server } => backup(&config, &to, server),
        Command::Restore { from, replace } => restore(&config, &from, replace),
        Command::Check { backup } => check(&config, backup.as_deref()),
        Command::Migrate { from, to } => migrate(&config, &from, &to),
        Command::Audit { action } => audit(&config, action),
        Command::Keys { action, server } => {
            let action = match action {
                KeysAction::List => KeyAction::List,
                KeysAction::Rotate => KeyAction::Rotate,
                KeysAction::Retire { kid } => KeyAction::Retire(kid),
            };
            let now = engine::Clock::now(&SystemClock::new());
            let done = keys::run(&config, &action, server.as_deref(), now)?;
            print_lines(&done.lines);
            if let Some((kind, kid)) = done.offline_change
                && store_dir(&config).exists()
            {
                open_offline(&config)?
                    .record_event(kind, None, &[("kid", &kid)])
                    .and_then(engine::Durable::wait)?;
            }
            Ok(())
        }
        Command::VerifyAttestation {
            jwks,
            sha256,
            issuer,
            token,
        } => match attestation::check(&jwks, &token, sha256.as_deref(), issuer.as_deref()) {
            Ok(claims) => {
                print_lines(&[attestation::describe(&claims)]);
                if let Some(warning) = attestation::unchecked_document(&claims, sha256.as_deref()) {
                    eprintln!("{warning}");
                }
                Ok(())
            }
            Err(reason) => Err(Failure::Other(format!("invalid attestation: {reason}"))),
        },
        Command::Config => {
            // Inline secrets print as <redacted>; env:/file: references as they are.
            let text = toml::to_string(&config.redacted()).map_err(|e| e.to_string())?;
            print!("{text}");
            Ok(())
        }
        Command::EnvVars => {
            for (variable, key) in Config::environment_variables() {
                println!("{variable:45} {key}");
            }
            Ok(())
        }
    }
}

/// Prints `lines` to standard output; a closed pipe (`| head`) ends the
/// output quietly instead of panicking.
fn print_lines(lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

/// Threads the server's runtime lends to blocking work, at most: on a
/// cluster every engine call waits for the network inside `block_in_place`,
/// which hands the waiting worker's other tasks to a thread from this pool,
/// and each thread keeps its stack and allocator pages (~1.5 MB) while it
/// lives. Tokio's default (512) lets a burst hold ~800 MB; past this bound
/// a waiting worker's tasks wait for a thread instead (docs/CAPACITY.md,
/// "Memory of a cluster node").
const MAX_BLOCKING_THREADS: usize = 32;

fn serve(config: Config) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let listen = config.listen_addr()?;
        // Bind before touching the data directory: a port already taken must
        // leave nothing behind (no data directory, no newly generated key).
        // Connections that arrive before the store is open wait in the backlog.
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let ops = match config.ops_listen_addr()? {
            None => None,
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|e| format!("cannot listen on {address} (ops_listen): {e}"))?,
            ),
        };
        let ops_bound = match &ops {
            None => None,
            Some(ops) => Some(
                ops.local_addr()
                    .map_err(|e| format!("cannot read the ops listening address: {e}"))?,
            ),
        };
        if config.delivery.log_sink {
            tracing::warn!(
                "delivery.log_sink is on: codes for unconfigured channels are written to the log; development only"
            );
        }
        let deps = Dependencies {
            clock: Arc::new(SystemClock::new()),
            rng: os_seeded_rng().map_err(|e| e.to_string())?,
            code_key: code_key(&config)?,
            delivery: None,
        };
        let app = App::build(config, deps)?;
        match ops_bound {
            None => tracing::info!(address = %bound, "otpd listening"),
            // Health, metrics and /v1/admin/* on the ops address only.
            Some(ops) => tracing::info!(address = %bound, ops_address = %ops, "otpd listening"),
        }
        Ok(app.serve_split(listener, ops, shutdown_signal()).await?)
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn audit(config: &Config, action: AuditAction) -> Result<(), Failure> {
    use cli::audit::{Window, export_offline, export_online, verify_export, verify_stored};
    let running = engine::store_in_use(&store_dir(config)).map_err(|e| e.to_string())?;
    match action {
        AuditAction::Export {
            since,
            until,
            format: ExportFormat::Jsonl,
            to,
            server,
        } => {
            let window = Window { since, until };
            // The store first: a refusal must not leave an empty file behind.
            let offline = if running || server.is_some() {
                None
            } else {
                Some(open_existing(config)?)
            };
            let mut out: Box<dyn std::io::Write> = match &to {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let written = match &offline {
                Some(engine) => export_offline(engine, window, &mut out)?,
                None => export_online(config, server.as_deref(), window, &mut out)?,
            };
            out.flush()
                .map_err(|e| format!("cannot write the export: {e}"))?;
            eprintln!("{written} events exported");
            Ok(())
        }
        AuditAction::Verify { export, public_key } => {
            let line = match export {
                Some(path) => {
                    let key = match public_key {
                        Some(text) => {
                            engine::audit::AuditPublicKey::parse(&text).ok_or_else(|| {
                                Failure::Config("--public-key must be 64 hexadecimal digits".into())
                            })?
                        }
                        None => {
                            engine::audit::AuditKey::derive(&existing_code_key(config)?)?.public()
                        }
                    };
                    verify_export(&path, &key, config.audit.checkpoint_every)?
                }
                None => {
                    if running {
                        return Err(Failure::StoreInUse(format!(
                            "otpd is running on {}: `otpd audit verify` reads the store offline; \
                             export the trail (`otpd audit export --to FILE`) and verify that \
                             with --export",
                            config.data_dir.display()
                        )));
                    }
                    verify_stored(open_existing(config)?.verify_audit()?)?
                }
            };
            print_lines(&[line]);
            Ok(())
        }
        AuditAction::PublicKey => {
            let key = engine::audit::AuditKey::derive(&existing_code_key(config)?)?;
            print_lines(&[key.public().to_string()]);
            Ok(())
        }
    }
}

/// `otpd client`: through the running server when there is one (or
/// `--server` is given), else on the store.
fn manage_clients(
    config: &Config,
    action: ClientAction,
    server: Option<&str>,
) -> Result<(), Failure> {
    use cli::clients::{ClientCommand, NewClientArgs, offline, online};
    let command = match action {
        ClientAction::Add {
            name,
            scopes,
            purposes,
            channels,
            rate,
            test,
            expires_at,
        } => ClientCommand::Add(NewClientArgs {
            name,
            scopes,
            purposes,
            channels,
            rate,
            test,
            expires_at,
        }),
        ClientAction::List => ClientCommand::List,
        ClientAction::Revoke { name, key } => ClientCommand::Revoke { name, key },
        ClientAction::Rotate {
            name,
            expires_at,
            previous_expires_at,
        } => ClientCommand::Rotate {
            name,
            expires_at,
            previous_expires_at,
        },
    };
    let running = engine::store_in_use(&store_dir(config)).map_err(|e| e.to_string())?;
    let done = if running || server.is_some() {
        online(config, server, &command)?
    } else {
        offline(&open_offline(config)?, &config.server.tls, &command)?
    };
    for note in &done.notes {
        eprintln!("{note}");
    }
    print_lines(&done.lines);
    Ok(())
}
