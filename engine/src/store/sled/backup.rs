//! Backups: a consistent copy of the store in one checksummed file, and
//! restoring one into a new store.
//!
//! The file, `otpd.backup` in the backup directory (integers big-endian):
//!
//! ```text
//! "OTPD-BACKUP\n"  format version (u32, 1)
//! per record:      key length (u32), key, value length (u32), value
//! end:             0xFFFF_FFFF, record count (u64), write round (u64)
//! SHA-256 of every byte above (32 bytes)
//! ```
//!
//! Records are the store's raw keys and values (each value carries its own
//! codec version), so a backup restores byte for byte. The code key is not
//! in it: it never changes, and is kept (and backed up) on its own.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SledStore;
use crate::error::{EngineError, Result};

/// The file a backup directory holds.
pub const BACKUP_FILE: &str = "otpd.backup";
const MAGIC: &[u8; 12] = b"OTPD-BACKUP\n";
const VERSION: u32 = 1;
const END: u32 = u32::MAX;
/// No stored key or value comes near this; a larger length is damage.
const MAX_FIELD: u32 = 64 << 20;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The backup file.
    pub file: PathBuf,
    /// Records in it.
    pub records: u64,
    /// The store's write round it ends at.
    pub round: u64,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its contents (hex), as stored at its end.
    pub sha256: String,
}

/// The store's disk is below its reserve: no backup, and why.
fn no_room(e: EngineError) -> EngineError {
    match e {
        EngineError::DiskFull(why) => EngineError::DiskFull(format!("no backup taken: {why}")),
        other => EngineError::Storage(format!("no backup taken: {other}")),
    }
}

fn io_error(what: &str, path: &Path) -> impl Fn(std::io::Error) -> EngineError {
    let message = format!("cannot {what} {}", path.display());
    move |e| EngineError::Storage(format!("{message}: {e}"))
}

struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

/// Writes a backup of `store` into `dir` (created if missing; an existing
/// backup there is never overwritten). The file is written under a
/// temporary name, synced, then renamed, so a crash leaves no half backup
/// under the real name.
pub(crate) fn write(store: &SledStore, dir: &Path) -> Result<BackupSummary> {
    std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    let path = dir.join(BACKUP_FILE);
    if path.exists() {
        return Err(EngineError::Storage(format!(
            "{} already exists; back up into a new directory",
            path.display()
        )));
    }
    // A backup written beside the store must not eat the free-space reserve
    // the store's writes depend on: refuse up front, and stop if it shrinks.
    store.has_room().map_err(no_room)?;
    let partial = dir.join(format!("{BACKUP_FILE}.partial"));
    let file = File::create(&partial).map_err(io_error("create", &partial))?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let written = (|| -> Result<(u64, u64)> {
        let put = |out: &mut Hashing<_>, bytes: &[u8]| {
            out.put(bytes).map_err(io_error("write", &partial))
        };
        put(&mut out, MAGIC)?;
        put(&mut out, &VERSION.to_be_bytes())?;
        let mut records = 0u64;
        let copy_failed =
            |e: std::io::Error| EngineError::Storage(format!("cannot write the copy: {e}"));
        let round = store.export_raw(&mut |key, value| {
            if records.is_multiple_of(4_096) {
                store.has_room().map_err(|e| {
                    EngineError::Storage(format!("stopped to keep the store writable: {e}"))
                })?;
            }
            for field in [key, value] {
                let len = u32::try_from(field.len())
                    .ok()
                    .filter(|&l| l < MAX_FIELD)
                    .ok_or_else(|| EngineError::Storage("a record is too large".into()))?;
                out.put(&len.to_be_bytes()).map_err(copy_failed)?;
                out.put(field).map_err(copy_failed)?;
            }
            records += 1;
            Ok(())
        })?;
        put(&mut out, &END.to_be_bytes())?;
        put(&mut out, &records.to_be_bytes())?;
        put(&mut out, &round.to_be_bytes())?;
        Ok((records, round))
    })();
    let finish = written.and_then(|(records, round)| {
        let digest = out.hash.clone().finalize();
        out.inner
            .write_all(&digest)
            .and_then(|()| out.inner.flush())
            .and_then(|()| out.inner.get_ref().sync_all())
            .map_err(io_error("write", &partial))?;
        Ok((records, round, crate::hex::encode(digest)))
    });
    let (records, round, sha256) = match finish {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            // Stopped for the reserve: say so as such, not as a failed write.
            store.has_room().map_err(no_room)?;
            return Err(e);
        }
    };
    std::fs::rename(&partial, &path).map_err(io_error("rename", &partial))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", dir))?;
    Ok(BackupSummary {
        file: path,
        records,
        round,
        bytes: out.bytes + 32,
        sha256,
    })
}

/// Checks the backup in `dir` whole: its checksum, then every record's
/// framing, count and end.
pub fn verify(dir: &Path) -> Result<BackupSummary> {
    let path = dir.join(BACKUP_FILE);
    let sha256 = check_digest(&path)?;
    let mut summary = None;
    read_records(
        &path,
        |_, _| Ok(()),
        |records, round, bytes| {
            summary = Some((records, round, bytes));
        },
    )?;
    let (records, round, bytes) =
        summary.ok_or_else(|| EngineError::Internal("backup read without an end".into()))?;
    Ok(BackupSummary {
        file: path,
        records,
        round,
        bytes,
        sha256,
    })
}

/// Restores the backup in `dir` as a new store at `store_path`, which must
/// not exist yet. The checksum is checked first; the records' framing is
/// checked as they are imported. The store is built beside the target and
/// renamed into place only once complete.
pub fn restore(dir: &Path, store_path: &Path) -> Result<BackupSummary> {
    if store_path.exists() {
        return Err(EngineError::Storage(format!(
            "{} already exists; restore only into a new store",
            store_path.display()
        )));
    }
    let file = dir.join(BACKUP_FILE);
    let sha256 = check_digest(&file)?;
    let (records, round, bytes) = read_trailer(&file)?;
    let summary = BackupSummary {
        file,
        records,
        round,
        bytes,
        sha256,
    };
    let mut building = store_path.as_os_str().to_owned();
    building.push(".restoring");
    let building = PathBuf::from(building);
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(io_error("remove", &building))?;
    }
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<(Vec<u8>, Vec<u8>)>>(1024);
    let file = summary.file.clone();
    let reader = std::thread::spawn(move || {
        let result = read_records(
            &file,
            |key, value| {
                sender
                    .send(Ok((key, value)))
                    .map_err(|_| EngineError::Internal("the restore stopped reading".into()))
            },
            |_, _, _| {},
        );
        if let Err(e) = result {
            let _ = sender.send(Err(e));
        }
    });
    let imported = SledStore::import(&building, receiver.into_iter(), summary.round);
    let _ = reader.join();
    if let Err(e) = imported {
        let _ = std::fs::remove_dir_all(&building);
        return Err(e);
    }
    std::fs::rename(&building, store_path).map_err(io_error("rename", &building))?;
    Ok(summary)
}

/// The record count and round stored just before the checksum, and the
/// file's size (the file's checksum is checked already).
fn read_trailer(path: &Path) -> Result<(u64, u64, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let len = file.metadata().map_err(io_error("read", path))?.len();
    let too_short =
        || EngineError::Corrupt(format!("{} is too short for a backup", path.display()));
    let at = len.checked_sub(48).ok_or_else(too_short)?;
    file.seek(SeekFrom::Start(at))
        .map_err(io_error("read", path))?;
    let count = read_u64(&mut file).map_err(io_error("read", path))?;
    let round = read_u64(&mut file).map_err(io_error("read", path))?;
    Ok((count, round, len))
}

fn check_digest(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(io_error("open", path))?;
    let len = file.metadata().map_err(io_error("read", path))?.len();
    let Some(body) = len.checked_sub(32) else {
        return Err(EngineError::Corrupt(format!(
            "{} is {len} bytes, too short for a backup",
            path.display()
        )));
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hash = Sha256::new();
    let mut left = body;
    let mut buffer = vec![0u8; 1 << 16];
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        reader
            .read_exact(&mut buffer[..want])
            .map_err(io_error("read", path))?;
        hash.update(&buffer[..want]);
        left -= want as u64;
    }
    let mut stored = [0u8; 32];
    reader
        .read_exact(&mut stored)
        .map_err(io_error("read", path))?;
    let digest = hash.finalize();
    if digest.as_slice() != stored {
        return Err(EngineError::Corrupt(format!(
            "{} fails its checksum: the file is damaged or incomplete",
            path.display()
        )));
    }
    Ok(crate::hex::encode(digest))
}

/// Reads every record in order, then the end; `end` gets the count, the
/// round and the file's size.
fn read_records(
    path: &Path,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>,
    end: impl FnOnce(u64, u64, u64),
) -> Result<()> {
    let file = File::open(path).map_err(io_error("open", path))?;
    let len = file.metadata().map_err(io_error("read", path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let damaged = |what: &str| {
        EngineError::Corrupt(format!("{} is not a valid backup: {what}", path.display()))
    };
    let mut magic = [0u8; 12];
    reader
        .read_exact(&mut magic)
        .map_err(|_| damaged("it is too short"))?;
    if &magic != MAGIC {
        return Err(damaged("it does not start like one"));
    }
    let version = read_u32(&mut reader).map_err(|_| damaged("it is too short"))?;
    if version != VERSION {
        return Err(damaged(&format!(
            "format version {version} is not {VERSION}"
        )));
    }
    let mut records = 0u64;
    loop {
        let key_len = read_u32(&mut reader).map_err(|_| damaged("it ends inside a record"))?;
        if key_len == END {
            break;
        }
        let key = read_field(&mut reader, key_len).map_err(|_| damaged("a record's key"))?;
        let value_len = read_u32(&mut reader).map_err(|_| damaged("it ends inside a record"))?;
        let value = read_field(&mut reader, value_len).map_err(|_| damaged("a record's value"))?;
        each(key, value)?;
        records += 1;
    }
    let count = read_u64(&mut reader).map_err(|_| damaged("its end is cut short"))?;
    let round = read_u64(&mut reader).map_err(|_| damaged("its end is cut short"))?;
    if count != records {
        return Err(damaged(&format!(
            "it holds {records} records but says {count}"
        )));
    }
    let mut digest = [0u8; 32];
    reader
        .read_exact(&mut digest)
        .map_err(|_| damaged("its checksum is missing"))?;
    if reader.read(&mut [0u8; 1]).map_err(io_error("read", path))? != 0 {
        return Err(damaged("it goes on past its end"));
    }
    end(records, round, len);
    Ok(())
}

fn read_u32(reader: &mut impl Read) -> std::io::Result<u32> {
    let mut bytes = [0u8; 4];
    reader.read_exact(&mut bytes)?;
    Ok(u32::from_be_bytes(bytes))
}

fn read_u64(reader: &mut impl Read) -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    reader.read_exact(&mut bytes)?;
    Ok(u64::from_be_bytes(bytes))
}

fn read_field(reader: &mut impl Read, len: u32) -> std::io::Result<Vec<u8>> {
    if len >= MAX_FIELD {
        return Err(std::io::Error::other("too long"));
    }
    let mut field = vec![0u8; len as usize];
    reader.read_exact(&mut field)?;
    Ok(field)
}
