//! The guards that keep otpd off a store it must not run on: another
//! process holding it, and a store that lost writes it had acknowledged
//! (the number of the last acknowledged write round, kept beside sled's
//! files, ahead of the round sled holds).

use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};

/// Beside sled's files: the number of the last round acknowledged to callers.
pub(super) const ACKNOWLEDGED_FILE: &str = "acknowledged-round";

/// Whether a live process has the store at `path` open: it holds sled's
/// lock on the `db` file (a lock dies with its process, so a crashed
/// server's store reads as free).
pub fn in_use(path: &std::path::Path) -> Result<bool> {
    let db = path.join("db");
    let file = match std::fs::File::open(&db) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(EngineError::Storage(format!(
                "cannot open {}: {e}",
                db.display()
            )));
        }
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        // Closing the file lets the probe's lock go.
        Ok(()) => Ok(false),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(true),
        Err(e) => Err(EngineError::Storage(format!(
            "cannot test the lock on {}: {e}",
            db.display()
        ))),
    }
}

pub(super) fn read_round(bytes: Option<&[u8]>) -> Result<u64> {
    match bytes {
        None => Ok(0),
        Some(bytes) => bytes
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| EngineError::Corrupt("the write-round record is not 8 bytes".into())),
    }
}

/// Refuses a store whose last applied round is older than the last one
/// acknowledged to callers: its files were truncated, damaged in a way sled
/// recovers from by dropping the tail, deleted, or replaced by an older
/// copy. Starting on it would forget acknowledged locks, used codes and PIN
/// changes. Returns the guard file, open for the writer thread.
pub(super) fn check_acknowledged(dir: &std::path::Path, round: u64) -> Result<std::fs::File> {
    use std::io::Read;
    let path = dir.join(ACKNOWLEDGED_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| EngineError::Storage(format!("cannot open {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| EngineError::Storage(format!("cannot read {}: {e}", path.display())))?;
    let acknowledged = match bytes.len() {
        0 => 0,
        8 => read_round(Some(&bytes))?,
        n => {
            return Err(EngineError::Corrupt(format!(
                "{} holds {n} bytes, not 8",
                path.display()
            )));
        }
    };
    if acknowledged > round {
        return Err(EngineError::Corrupt(format!(
            "the store in {} ends at write round {round}, but round {acknowledged} was \
             acknowledged to clients: its files were truncated, damaged or replaced by an \
             older copy, and starting would forget acknowledged changes (locks, used codes, \
             PIN changes). Restore the data directory from a backup; to start \
             from what is left anyway, delete {} first",
            dir.display(),
            path.display()
        )));
    }
    Ok(file)
}

/// sled 0.34 releases its directory lock from a background thread shortly
/// after the last handle drops (spacejam/sled#1289), so an immediate reopen
/// in the same process can find it still held. Retry briefly; a lock held by
/// a live process outlasts the budget and is reported.
pub(super) fn open_with_lock_retry(config: &::sled::Config) -> ::sled::Result<::sled::Db> {
    const BUDGET: Duration = Duration::from_secs(2);
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match config.open() {
            Err(::sled::Error::Io(io)) if is_lock_contention(&io) && started.elapsed() < BUDGET => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

pub(super) fn is_lock_contention(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}
