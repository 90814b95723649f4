//! Commands on the store itself, run where its data directory is: opening
//! it offline (reading commands never generate a code key), backups
//! (written by the running server when there is one), restores into a new
//! directory, and the check of a store or a backup file.

use std::path::PathBuf;
use std::sync::Arc;

use engine::{CodeKey, Engine, SystemClock, os_seeded_rng};

use crate::config::{self, Config};
use crate::failure::Failure;
use crate::secrets::{KeySource, load_code_key};

/// The code key, from where the configuration says, generated on first
/// start; says where it came from in the log.
pub fn code_key(config: &Config) -> Result<engine::CodeKey, Failure> {
    let from_env = std::env::var(config::ENV_CODE_KEY).ok();
    let (key, source) = load_code_key(config, from_env.as_deref()).map_err(Failure::Config)?;
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

/// The code key, only if one exists: reading the audit trail must never
/// generate a new key (and with it a new audit key) where there was none.
pub fn existing_code_key(config: &Config) -> Result<engine::CodeKey, Failure> {
    let found = std::env::var(config::ENV_CODE_KEY).is_ok()
        || !config.code_key_file.is_empty()
        || config.data_dir.join("code.key").exists();
    if !found {
        return Err(Failure::Config(format!(
            "no code key: OTPD_CODE_KEY is not set, code_key_file is empty and {} does not \
             exist; run this where the server's data directory is (--data-dir), or give \
             --public-key (`otpd audit public-key` prints it there)",
            config.data_dir.join("code.key").display()
        )));
    }
    code_key(config)
}

/// Opens an existing store offline, for commands that only read it.
pub fn open_existing(config: &Config) -> Result<Engine, Failure> {
    if !store_dir(config).exists() {
        return Err(Failure::Config(format!(
            "no store in {}: give the server's data directory (--data-dir)",
            config.data_dir.display()
        )));
    }
    let key = existing_code_key(config)?;
    open_engine(config, key, "cannot open the store")
}

/// Opens the store directly, for the offline commands that write (a new
/// store gets a new code key).
pub fn open_offline(config: &Config) -> Result<Engine, Failure> {
    open_engine(config, code_key(config)?, "cannot open the store")
}

fn print_backup(summary: &engine::BackupSummary) {
    println!(
        "{}: {} records, write round {}, {} bytes, sha256 {}",
        summary.file.display(),
        summary.records,
        summary.round,
        summary.bytes,
        summary.sha256
    );
}

fn print_counts(engine: &Engine) -> Result<(), Failure> {
    let stats = engine.stats();
    let dead = engine.dead_letters().map_err(|e| e.to_string())?.len();
    println!(
        "{} accounts, {} live challenges, {} queued messages, {} dead letters, {} clients, {} bytes on disk",
        stats.accounts,
        stats.challenges,
        stats.outbox,
        dead,
        engine.clients().len(),
        engine.disk_bytes().map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `otpd migrate`: a data directory's population to the cluster of
/// `store.redis`, or the cluster's into a new data directory (with a copy
/// of the code key when it lives in the data directory). Stop every node
/// first. The audit trail stays where it was written.
pub fn migrate(config: &Config, from: &str, to: &str) -> Result<(), Failure> {
    const CLUSTER: &str = "redis-cluster";
    let cluster = config.store.redis.cluster_config().map_err(|e| {
        Failure::Config(format!(
            "{e} (otpd migrate takes the cluster from store.redis)"
        ))
    })?;
    let on_disk = |dir: &str| {
        let mut at = config.clone();
        at.data_dir = PathBuf::from(dir);
        at.store.backend = config::Backend::Sled;
        at
    };
    let moved = match (from == CLUSTER, to == CLUSTER) {
        (false, true) => open_existing(&on_disk(from))?.copy_to_cluster(cluster),
        (true, false) => {
            let key = existing_code_key(config)?;
            let target = on_disk(to);
            if store_dir(&target).exists() {
                return Err(Failure::Config(format!(
                    "{to} has a store already: migrate into a new data directory"
                )));
            }
            std::fs::create_dir_all(&target.data_dir)
                .map_err(|e| format!("cannot create {to}: {e}"))?;
            let key_in_data_dir =
                std::env::var(config::ENV_CODE_KEY).is_err() && config.code_key_file.is_empty();
            if key_in_data_dir {
                crate::secrets::write_new_key(&target.data_dir.join("code.key"), &key)?;
            }
            open_engine(&target, key, "cannot open the new store")?.copy_from_cluster(cluster)
        }
        _ => {
            return Err(Failure::Config(
                "give a data directory on one side and redis-cluster on the other: \
                 otpd migrate --from DIR --to redis-cluster, or --from redis-cluster --to DIR"
                    .into(),
            ));
        }
    }
    .map_err(|e| Failure::opening("the migration failed", e))?;
    print_migration("moved", &moved);
    Ok(())
}

/// The cluster's population read into a scratch store beside `near` (a
/// scan: each record as one read saw it; stop the nodes for an exact
/// copy): the engine on it, what was read, and the scratch directory.
fn export_cluster(
    config: &Config,
    near: &std::path::Path,
) -> Result<(Engine, engine::Migration, PathBuf), Failure> {
    let cluster = config
        .store
        .redis
        .cluster_config()
        .map_err(Failure::Config)?;
    let key = existing_code_key(config)?;
    let mut scratch = config.clone();
    scratch.store.backend = config::Backend::Sled;
    let parent = near.parent().unwrap_or(std::path::Path::new("."));
    scratch.data_dir = parent.join(format!(".otpd-export-{}", std::process::id()));
    if scratch.data_dir.exists() {
        return Err(Failure::Other(format!(
            "{} exists: remove it (a previous export's scratch store)",
            scratch.data_dir.display()
        )));
    }
    let engine = open_engine(&scratch, key, "cannot open a scratch store")?;
    match engine.copy_from_cluster(cluster) {
        Ok(moved) => Ok((engine, moved, scratch.data_dir)),
        Err(e) => {
            drop(engine);
            let _ = std::fs::remove_dir_all(&scratch.data_dir);
            Err(Failure::opening("reading the cluster failed", e))
        }
    }
}

/// A migration's summary line, after `what` ("moved", ...).
fn print_migration(what: &str, moved: &engine::Migration) {
    let left_out = if moved.erased == 0 {
        String::new()
    } else {
        format!(
            "; {} accounts cancelled longer ago than audit.retention_days left out (erased)",
            moved.erased
        )
    };
    println!(
        "{what} {} accounts, {} live challenges, {} queued messages, {} clients; \
         {} accounts read back and compared{left_out}",
        moved.accounts, moved.challenges, moved.messages, moved.clients, moved.sampled
    );
}

fn print_moved(what: &str, moved: &engine::Migration) {
    println!(
        "{what} {} accounts, {} challenges, {} queued messages, {} clients",
        moved.accounts, moved.challenges, moved.messages, moved.clients
    );
}

/// `otpd check` on a cluster: its health (as `/readyz` and the start ask),
/// then every record of the namespace read and decoded.
fn check_cluster(config: &Config) -> Result<(), Failure> {
    let cluster = config
        .store
        .redis
        .cluster_config()
        .map_err(Failure::Config)?;
    let health = engine::check_cluster(cluster, config.store.redis.max_clock_skew())
        .map_err(|e| Failure::opening("cannot reach the cluster", e))?;
    for warning in &health.warnings {
        println!("warning: {warning}");
    }
    if !health.problems.is_empty() {
        return Err(Failure::StoreDamaged(format!(
            "the cluster is not fit for otpd: {}",
            health.problems.join("; ")
        )));
    }
    let (exported, moved, scratch) = export_cluster(config, &config.data_dir)?;
    drop(exported);
    let _ = std::fs::remove_dir_all(&scratch);
    print_moved("read", &moved);
    println!("cluster ok: {} masters, every slot served", health.masters);
    Ok(())
}

/// The engine on `config`'s store with the system clock and an OS-seeded
/// generator, as an offline command opens it; `what` names it in a failure.
fn open_engine(config: &Config, key: CodeKey, what: &str) -> Result<Engine, Failure> {
    let rng = os_seeded_rng().map_err(|e| e.to_string())?;
    Engine::open(
        config.engine_config(),
        key,
        Arc::new(SystemClock::new()),
        rng,
    )
    .map_err(|e| Failure::opening(what, e))
}

/// Where the store lives in the data directory.
pub fn store_dir(config: &Config) -> PathBuf {
    config.data_dir.join("store")
}

/// `otpd backup`: written by the running server when there is one, else
/// from the stopped store.
pub fn backup(
    config: &Config,
    to: &std::path::Path,
    server: Option<String>,
) -> Result<(), Failure> {
    if config.store.backend == config::Backend::RedisCluster && server.is_none() {
        let (exported, moved, scratch) = export_cluster(config, to)?;
        let summary = exported
            .backup_to(to)
            .map_err(|e| format!("the backup failed: {e}"));
        drop(exported);
        let _ = std::fs::remove_dir_all(&scratch);
        print_backup(&summary?);
        print_moved("backed up", &moved);
        return Ok(());
    }
    let store = store_dir(config);
    let running = engine::store_in_use(&store).map_err(|e| e.to_string())?;
    let summary = if server.is_none() && !running {
        if !store.exists() {
            return Err(Failure::Other(format!(
                "no store at {}: nothing to back up",
                store.display()
            )));
        }
        open_offline(config)?
            .backup_to(to)
            .map_err(|e| format!("the backup failed: {e}"))?
    } else {
        let written = ask_server_for_backup(config, server)?;
        move_backup(&written, to)?;
        engine::verify_backup(to).map_err(|e| format!("the moved backup fails its check: {e}"))?
    };
    print_backup(&summary);
    Ok(())
}

/// Asks the running server to write a backup; returns the file it wrote.
fn ask_server_for_backup(config: &Config, server: Option<String>) -> Result<PathBuf, String> {
    let key = super::server::admin_key(config, "write the backup")?;
    let base = super::server::base_url(config, server.as_deref())?;
    let trust = super::trust::Trust::of(config)?;
    let url = format!("{base}/v1/admin/backup");
    let (status, answer) = super::server::call(hyper::Method::POST, &url, Some(&key), &trust)?;
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "the server refused the backup ({})",
            super::server::refusal(status, &answer)
        ));
    }
    answer["file"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| format!("the server's answer names no file: {answer}"))
}

/// Moves the server's backup file into `to`, then removes its directory.
fn move_backup(written: &std::path::Path, to: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let dest = to.join(engine::BACKUP_FILE);
    if dest.exists() {
        return Err(format!(
            "{} already exists; back up into a new directory (the server's copy stays at {})",
            dest.display(),
            written.display()
        ));
    }
    if std::fs::rename(written, &dest).is_err() {
        // Another file system: copy, sync, then remove the original.
        std::fs::copy(written, &dest)
            .and_then(|_| std::fs::File::open(&dest)?.sync_all())
            .map_err(|e| {
                format!(
                    "cannot copy {} to {}: {e}",
                    written.display(),
                    dest.display()
                )
            })?;
        std::fs::remove_file(written)
            .map_err(|e| format!("cannot remove {}: {e}", written.display()))?;
    }
    if let Some(parent) = written.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// `otpd restore`: a backup file into the data directory's store, which
/// must not exist unless `replace` sets the stopped one aside (renamed).
pub fn restore(config: &Config, from: &std::path::Path, replace: bool) -> Result<(), Failure> {
    if config.store.backend == config::Backend::RedisCluster {
        return restore_to_cluster(config, from, replace);
    }
    engine::verify_backup(from).map_err(|e| Failure::opening("the backup", e))?;
    let store = store_dir(config);
    if store.exists() {
        if engine::store_in_use(&store).map_err(|e| e.to_string())? {
            return Err(Failure::StoreInUse(format!(
                "otpd is running on {}; stop it before restoring",
                config.data_dir.display()
            )));
        }
        if !replace {
            return Err(Failure::Other(format!(
                "{} already holds a store; pass --replace to set it aside (renamed, not \
                 deleted) and restore in its place",
                store.display()
            )));
        }
        let since_epoch = engine::Clock::now(&SystemClock::new()).0 / 1_000;
        let aside = config
            .data_dir
            .join(format!("store.replaced-{since_epoch}"));
        std::fs::rename(&store, &aside).map_err(|e| {
            format!(
                "cannot set {} aside as {}: {e}",
                store.display(),
                aside.display()
            )
        })?;
        eprintln!("the previous store is kept at {}", aside.display());
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    let summary = engine::restore_backup(from, &store).map_err(|e| e.to_string())?;
    print_backup(&summary);
    let engine = open_offline(config)?;
    engine
        .record_event(
            engine::audit::EventKind::RestorePerformed,
            None,
            &[
                ("backup_sha256", summary.sha256.as_str()),
                ("records", &summary.records.to_string()),
            ],
        )
        .and_then(engine::Durable::wait)?;
    print!("restored into {}: ", store.display());
    print_counts(&engine)
}

/// `otpd restore` on a cluster: the backup, checked whole, restored into a
/// scratch store beside the data directory and copied from there into the
/// cluster's namespace, which must be empty. A namespace is never replaced:
/// restore into a new `store.redis.namespace`, then point the nodes at it.
fn restore_to_cluster(
    config: &Config,
    from: &std::path::Path,
    replace: bool,
) -> Result<(), Failure> {
    if replace {
        return Err(Failure::Config(
            "--replace does not apply to a cluster: otpd restores into an empty \
             store.redis.namespace (choose a new one, restore, then point the nodes at it) \
             and leaves the old one as it is"
                .into(),
        ));
    }
    let cluster = config
        .store
        .redis
        .cluster_config()
        .map_err(Failure::Config)?;
    let summary = engine::verify_backup(from).map_err(|e| Failure::opening("the backup", e))?;
    print_backup(&summary);
    let key = existing_code_key(config)?;
    let mut scratch = config.clone();
    scratch.store.backend = config::Backend::Sled;
    let parent = config
        .data_dir
        .parent()
        .unwrap_or(std::path::Path::new("."));
    scratch.data_dir = parent.join(format!(".otpd-restore-{}", std::process::id()));
    if scratch.data_dir.exists() {
        return Err(Failure::Other(format!(
            "{} exists: remove it (a previous restore's scratch store)",
            scratch.data_dir.display()
        )));
    }
    std::fs::create_dir_all(&scratch.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", scratch.data_dir.display()))?;
    let copied = engine::restore_backup(from, &store_dir(&scratch))
        .map_err(|e| Failure::Other(e.to_string()))
        .and_then(|_| open_engine(&scratch, key, "cannot open the restored backup"))
        .and_then(|engine| {
            engine
                .copy_to_cluster(cluster)
                .map_err(|e| Failure::opening("copying the backup to the cluster failed", e))
        });
    let _ = std::fs::remove_dir_all(&scratch.data_dir);
    let moved = copied?;
    print_migration("restored into the cluster:", &moved);
    Ok(())
}

/// `otpd check`: the stopped store, or a backup file, read whole; on a
/// cluster, its health and every record of the namespace read and decoded.
pub fn check(config: &Config, backup: Option<&std::path::Path>) -> Result<(), Failure> {
    if let Some(dir) = backup {
        let summary = engine::verify_backup(dir).map_err(|e| Failure::opening("the backup", e))?;
        print_backup(&summary);
        println!("backup ok");
        return Ok(());
    }
    if config.store.backend == config::Backend::RedisCluster {
        return check_cluster(config);
    }
    let store = store_dir(config);
    if !store.exists() {
        return Err(Failure::Other(format!(
            "no store at {}: nothing to check",
            store.display()
        )));
    }
    if engine::store_in_use(&store).map_err(|e| e.to_string())? {
        return Err(Failure::StoreInUse(format!(
            "otpd is running on {}: `otpd check` reads the store offline, so stop it first \
             (or take a backup and check that with --backup)",
            config.data_dir.display()
        )));
    }
    let engine = open_offline(config)?;
    print!("{}: ", store.display());
    print_counts(&engine)?;
    println!("store ok");
    Ok(())
}
