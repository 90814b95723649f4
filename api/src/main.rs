//! The `otpd` binary: parse the command line, then serve or manage clients.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use engine::{Durable, Engine, Scope, Scopes, SystemClock, os_seeded_rng};
use otpd::config::{self, Config, Environment, LogFormat, Overrides};
use otpd::secrets::{KeySource, load_code_key};
use otpd::{App, Dependencies, telemetry};

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
    /// Manage client services, the only callers the API accepts. Run these
    /// while the server is stopped: the store allows one process at a time.
    Client {
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Print every OTPD_* environment variable and the setting it sets.
    EnvVars,
    /// Print the effective configuration (all layers applied) as TOML.
    Config,
    /// List messages that failed for good (run while the server is stopped).
    DeadLetters,
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// Register a client and print its API key (shown once only).
    Add {
        /// Unique name, e.g. the service's host name.
        name: String,
        /// Comma-separated scopes: auth, accounts, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// List clients.
    List,
    /// Revoke a client's key at once.
    Revoke {
        /// The client's name.
        name: String,
    },
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
        Err(message) => {
            eprintln!("otpd: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
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
    let config = Config::load(cli.config.as_deref(), std::env::vars(), &overrides)?;
    telemetry::init_logging(config.log_format, &config.log_level);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Client { action } => manage_clients(&config, action),
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
        Command::Config => {
            let text = toml::to_string(&config).map_err(|e| e.to_string())?;
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

fn code_key(config: &Config) -> Result<engine::CodeKey, String> {
    let from_env = std::env::var(config::ENV_CODE_KEY).ok();
    let (key, source) = load_code_key(config, from_env.as_deref())?;
    match source {
        KeySource::Generated(path) => tracing::warn!(
            path = %path.display(),
            "generated a new code key (mode 0600); back it up with the data directory"
        ),
        KeySource::File(path) => tracing::info!(path = %path.display(), "code key loaded"),
        KeySource::Environment => tracing::info!("code key taken from OTPD_CODE_KEY"),
    }
    Ok(key)
}

fn serve(config: Config) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let listen = config.listen_addr()?;
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
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        tracing::info!(address = %listen, "otpd listening");
        app.serve(listener, shutdown_signal()).await
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

/// Opens the store directly, for the offline commands.
fn open_offline(config: &Config) -> Result<Engine, String> {
    Engine::open(
        config.engine_config(),
        code_key(config)?,
        Arc::new(SystemClock::new()),
        os_seeded_rng().map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("cannot open the store (is the server running?): {e}"))
}

fn manage_clients(config: &Config, action: ClientAction) -> Result<(), String> {
    let engine = open_offline(config)?;
    match action {
        ClientAction::Add { name, scopes } => {
            let parsed: Result<Vec<Scope>, _> = scopes.iter().map(|s| Scope::parse(s)).collect();
            let scopes = Scopes::of(&parsed.map_err(|e| e.to_string())?);
            let (info, key) = engine
                .add_client(&name, scopes)
                .and_then(Durable::wait)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "client {:?} added with scopes {:?}; its key (shown only now):",
                info.name, info.scopes
            );
            println!("{}", key.expose());
        }
        ClientAction::List => {
            for c in engine.clients() {
                let scopes: Vec<&str> = c.scopes.iter().map(Scope::as_str).collect();
                let status = if c.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{:30} {:8} {}", c.name, status, scopes.join(","));
            }
        }
        ClientAction::Revoke { name } => {
            engine
                .revoke_client(&name)
                .and_then(Durable::wait)
                .map_err(|e| e.to_string())?;
            eprintln!("client {name:?} revoked");
        }
    }
    Ok(())
}
