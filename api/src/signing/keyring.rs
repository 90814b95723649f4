//! The signing keys: Ed25519 key pairs kept as files in a directory of the
//! data directory, one of them active, the ones it replaced still published
//! for an overlap so tokens they signed keep verifying, retired ones no
//! longer published.
//!
//! Layout of the directory (`<data_dir>/signing/` by default):
//!
//! ```text
//! keys.json        {"version": 1, "keys": [{"kid", "x", "created_at", "superseded_at", "retired_at", "external"}]}
//! <kid>.pk8        the private key, PKCS#8 (mode 0600)
//! ```
//!
//! The manifest holds every key's public half (`x`), so only the active
//! key's private file is ever read: an operator may delete the private
//! files of replaced keys. A key given by `signing.key` (`env:`/`file:`) is
//! `external`: its private half never touches the directory, and a new one
//! given there replaces it at the next start.
//!
//! Every change writes a new file under a temporary name, syncs it and
//! renames it into place, so a crash leaves the old state or the new one.
//! Times are the engine's (milliseconds since the epoch).

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use engine::Timestamp;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::SigningError;
use super::jwk::PublicKey;

const MANIFEST: &str = "keys.json";

/// One key as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The public key, base64url (a JWK's `x`).
    pub x: String,
    /// When it was made.
    pub created_at: u64,
    /// When a newer key replaced it as the active one.
    pub superseded_at: Option<u64>,
    /// When it was retired: no longer published, its tokens no longer verify.
    pub retired_at: Option<u64>,
    /// Whether the private key comes from `signing.key`, not the directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens.
    Active,
    /// Replaced, still published until the overlap after its replacement ends.
    Previous,
    /// Replaced and past its overlap: no longer published.
    Expired,
    /// Retired by an operator.
    Retired,
}

impl KeyState {
    /// The name the API and the command line use.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Previous => "previous",
            KeyState::Expired => "expired",
            KeyState::Retired => "retired",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    keys: Vec<KeyInfo>,
}

/// The active signing key, ready to sign.
pub(crate) struct Signer {
    pub(crate) kid: String,
    /// Parsed once: parsing derives the public key, a scalar
    /// multiplication as dear as the signature itself (docs/CAPACITY.md).
    pub(crate) pair: Ed25519KeyPair,
    /// The key as `signing.key` gave it, kept to reload after a retirement.
    external: Option<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The keys, held in memory and kept on disk.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    overlap: Duration,
    state: RwLock<Held>,
}

#[derive(Debug)]
struct Held {
    manifest: Manifest,
    /// Public keys by kid, for every key in the manifest.
    public: Vec<(String, PublicKey)>,
    active: Signer,
}

impl KeyRing {
    /// Opens the key ring in `dir`, making the directory and a first key
    /// when there is none. `overlap` is how long a replaced key stays
    /// published. `external` is the active key's PKCS#8 document when
    /// `signing.key` gives one: if it is not already the active key, it
    /// becomes so and the one it replaces stays published for the overlap.
    pub fn open(
        dir: &Path,
        overlap: Duration,
        now: Timestamp,
        external: Option<&[u8]>,
    ) -> Result<KeyRing, SigningError> {
        std::fs::create_dir_all(dir).map_err(SigningError::io("create", dir))?;
        restrict(dir, 0o700)?;
        let path = dir.join(MANIFEST);
        let mut manifest = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes).map_err(|e| {
                SigningError::Damaged(format!("{} is not a key manifest: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
                version: 1,
                keys: Vec::new(),
            },
            Err(e) => return Err(SigningError::io("read", &path)(e)),
        };
        if manifest.version != 1 {
            return Err(SigningError::Damaged(format!(
                "{} has version {}, not 1",
                path.display(),
                manifest.version
            )));
        }
        let current = manifest.keys.iter().find(|k| is_current(k)).cloned();
        let replacement = match (external, &current) {
            (Some(pkcs8), _) => {
                let key = public_key(pkcs8).ok_or_else(|| {
                    SigningError::Damaged("signing.key is not a PKCS#8 Ed25519 private key".into())
                })?;
                let kid = key.thumbprint();
                match current.as_ref().map(|c| c.kid.as_str()) {
                    Some(active) if active == kid => None,
                    _ => {
                        if manifest.keys.iter().any(|k| k.kid == kid) {
                            return Err(SigningError::Refused(format!(
                                "signing.key is key {kid}, which was replaced or retired before: \
                                 a key is never made active again"
                            )));
                        }
                        Some(KeyInfo {
                            kid,
                            x: key.x(),
                            created_at: now.0,
                            superseded_at: None,
                            retired_at: None,
                            external: true,
                        })
                    }
                }
            }
            (None, Some(active)) if !active.external => None,
            // No key yet, or signing.key was removed: make one here.
            (None, _) => Some(generate(dir, now)?),
        };
        if let Some(info) = replacement {
            for key in manifest.keys.iter_mut().filter(|k| is_current(k)) {
                key.superseded_at = Some(now.0);
            }
            manifest.keys.push(info);
            write_manifest(dir, &manifest)?;
        }
        let held = load(dir, manifest, external)?;
        Ok(KeyRing {
            dir: dir.to_path_buf(),
            overlap,
            state: RwLock::new(held),
        })
    }

    /// Whether `dir` holds a key ring (a manifest).
    pub fn exists(dir: &Path) -> bool {
        dir.join(MANIFEST).exists()
    }

    /// The active key's id.
    pub fn active_kid(&self) -> String {
        self.read(|h| h.active.kid.clone())
    }

    /// Runs `sign` with the active key.
    pub(crate) fn with_signer<T>(&self, sign: impl FnOnce(&Signer) -> T) -> T {
        self.read(|h| sign(&h.active))
    }

    /// The public keys to publish at `now`: the active one and those it
    /// replaced within the overlap, never retired ones.
    pub fn published(&self, now: Timestamp) -> Vec<PublicKey> {
        self.read(|h| {
            h.manifest
                .keys
                .iter()
                .filter(|k| {
                    matches!(
                        state_of(k, now, self.overlap),
                        KeyState::Active | KeyState::Previous
                    )
                })
                .filter_map(|k| public_of(h, &k.kid))
                .collect()
        })
    }

    /// Every key with where it stands at `now`, oldest first.
    pub fn list(&self, now: Timestamp) -> Vec<(KeyInfo, KeyState)> {
        self.read(|h| {
            h.manifest
                .keys
                .iter()
                .map(|k| (k.clone(), state_of(k, now, self.overlap)))
                .collect()
        })
    }

    /// Makes a new key the active one; the one it replaces stays published
    /// for the overlap. Returns the new key's id.
    pub fn rotate(&self, now: Timestamp) -> Result<String, SigningError> {
        let mut held = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if held.active.external.is_some() {
            return Err(SigningError::Refused(format!(
                "the active key {} comes from signing.key: to rotate, put a new key there and restart",
                held.active.kid
            )));
        }
        let info = generate(&self.dir, now)?;
        let mut manifest = Manifest {
            version: 1,
            keys: held.manifest.keys.clone(),
        };
        for key in manifest.keys.iter_mut().filter(|k| is_current(k)) {
            key.superseded_at = Some(now.0);
        }
        let kid = info.kid.clone();
        manifest.keys.push(info);
        write_manifest(&self.dir, &manifest)?;
        *held = load(&self.dir, manifest, None)?;
        Ok(kid)
    }

    /// Retires `kid`: it is no longer published and its tokens no longer
    /// verify. The active key cannot be retired (rotate first).
    pub fn retire(&self, kid: &str, now: Timestamp) -> Result<(), SigningError> {
        let mut held = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let mut manifest = Manifest {
            version: 1,
            keys: held.manifest.keys.clone(),
        };
        let key = manifest
            .keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .ok_or_else(|| SigningError::NotFound(kid.to_owned()))?;
        if key.retired_at.is_some() {
            return Err(SigningError::Refused(format!(
                "key {kid} is already retired"
            )));
        }
        if is_current(key) {
            return Err(SigningError::Refused(format!(
                "key {kid} is the active key: rotate to a new key first, then retire it"
            )));
        }
        key.retired_at = Some(now.0);
        write_manifest(&self.dir, &manifest)?;
        let external = held.active.external.take();
        *held = load(&self.dir, manifest, external.as_deref())?;
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Held) -> T) -> T {
        f(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn is_current(key: &KeyInfo) -> bool {
    key.superseded_at.is_none() && key.retired_at.is_none()
}

fn state_of(key: &KeyInfo, now: Timestamp, overlap: Duration) -> KeyState {
    let overlap = u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX);
    match (key.retired_at, key.superseded_at) {
        (Some(_), _) => KeyState::Retired,
        (None, None) => KeyState::Active,
        (None, Some(at)) if now.0 < at.saturating_add(overlap) => KeyState::Previous,
        (None, Some(_)) => KeyState::Expired,
    }
}

fn public_of(held: &Held, kid: &str) -> Option<PublicKey> {
    held.public.iter().find(|(k, _)| k == kid).map(|(_, p)| *p)
}

/// Reads every key's public half from `manifest` and the active key's
/// private half from its file (or `external`).
fn load(dir: &Path, manifest: Manifest, external: Option<&[u8]>) -> Result<Held, SigningError> {
    let mut public = Vec::with_capacity(manifest.keys.len());
    for info in &manifest.keys {
        let key = PublicKey::from_x(&info.x)
            .filter(|k| k.thumbprint() == info.kid)
            .ok_or_else(|| {
                SigningError::Damaged(format!(
                    "the key manifest's entry {} has no matching public key",
                    info.kid
                ))
            })?;
        public.push((info.kid.clone(), key));
    }
    let info = manifest
        .keys
        .iter()
        .find(|k| is_current(k))
        .ok_or_else(|| SigningError::Damaged("no active signing key".into()))?;
    let (pkcs8, external) = if info.external {
        let pkcs8 = external.ok_or_else(|| {
            SigningError::Damaged(format!(
                "key {} comes from signing.key, which is not set",
                info.kid
            ))
        })?;
        (pkcs8.to_vec(), Some(pkcs8.to_vec()))
    } else {
        let path = dir.join(format!("{}.pk8", info.kid));
        (
            std::fs::read(&path).map_err(SigningError::io("read", &path))?,
            None,
        )
    };
    let key = public_key(&pkcs8).ok_or_else(|| {
        SigningError::Damaged(format!(
            "the private key of {} is not an Ed25519 key",
            info.kid
        ))
    })?;
    if key.thumbprint() != info.kid {
        return Err(SigningError::Damaged(format!(
            "the private key file of {} holds another key (its thumbprint is {})",
            info.kid,
            key.thumbprint()
        )));
    }
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| {
        SigningError::Damaged(format!(
            "the private key of {} is not an Ed25519 key",
            info.kid
        ))
    })?;
    let active = Signer {
        kid: info.kid.clone(),
        pair,
        external,
    };
    Ok(Held {
        manifest,
        public,
        active,
    })
}

/// Reads `signing.key`'s value: a PKCS#8 private key as PEM
/// (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey -algorithm ed25519`
/// writes) or as base64 of its DER bytes.
pub fn read_private_key(text: &str) -> Result<Vec<u8>, SigningError> {
    use base64::Engine as _;
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| {
            SigningError::Damaged(
                "signing.key holds neither PEM nor base64: expected a PKCS#8 Ed25519 private key"
                    .into(),
            )
        })?;
    if public_key(&der).is_none() {
        return Err(SigningError::Damaged(
            "signing.key is not a PKCS#8 Ed25519 private key".into(),
        ));
    }
    Ok(der)
}

/// The public key of a PKCS#8 Ed25519 key pair.
pub(crate) fn public_key(pkcs8: &[u8]) -> Option<PublicKey> {
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).ok()?;
    Some(PublicKey(pair.public_key().as_ref().try_into().ok()?))
}

/// Makes a key pair, writes its private key (0600) and returns its entry.
fn generate(dir: &Path, now: Timestamp) -> Result<KeyInfo, SigningError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| SigningError::Damaged("the system's random source failed".into()))?;
    let key = public_key(pkcs8.as_ref())
        .ok_or_else(|| SigningError::Damaged("a fresh key does not parse".into()))?;
    let kid = key.thumbprint();
    write_atomically(&dir.join(format!("{kid}.pk8")), pkcs8.as_ref(), 0o600)?;
    Ok(KeyInfo {
        kid,
        x: key.x(),
        created_at: now.0,
        superseded_at: None,
        retired_at: None,
        external: false,
    })
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), SigningError> {
    let text = serde_json::to_vec_pretty(manifest)
        .map_err(|e| SigningError::Damaged(format!("cannot encode the key manifest: {e}")))?;
    write_atomically(&dir.join(MANIFEST), &text, 0o600)
}

/// Writes `bytes` to `path` under a temporary name, syncs, renames into
/// place and syncs the directory.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .map_err(SigningError::io("create", &temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(SigningError::io("write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(SigningError::io("rename", &temporary))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SigningError::io("sync", dir))
}

fn restrict(path: &Path, mode: u32) -> Result<(), SigningError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(SigningError::io("set permissions on", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_first_key_is_made_once_and_kept_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path(), HOUR, Timestamp(1_000), None).unwrap();
        let kid = ring.active_kid();
        assert_eq!(ring.published(Timestamp(2_000)).len(), 1);
        let mode = std::fs::metadata(dir.path().join(format!("{kid}.pk8")))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        drop(ring);
        let again = KeyRing::open(dir.path(), HOUR, Timestamp(3_000), None).unwrap();
        assert_eq!(again.active_kid(), kid);
    }

    #[test]
    fn a_rotated_key_stays_published_for_the_overlap_and_retired_keys_never() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path(), HOUR, Timestamp(0), None).unwrap();
        let old = ring.active_kid();
        let new = ring.rotate(Timestamp(1_000)).unwrap();
        assert_ne!(old, new);
        assert_eq!(ring.active_kid(), new);
        let kids = |at: u64| -> Vec<String> {
            ring.published(Timestamp(at))
                .iter()
                .map(PublicKey::thumbprint)
                .collect()
        };
        assert_eq!(kids(2_000), vec![old.clone(), new.clone()]);
        assert_eq!(
            kids(1_000 + 3_600_000),
            vec![new.clone()],
            "past the overlap"
        );
        let err = ring.retire(&new, Timestamp(5_000)).unwrap_err();
        assert!(err.to_string().contains("active"), "{err}");
        ring.retire(&old, Timestamp(5_000)).unwrap();
        assert_eq!(kids(5_001), vec![new.clone()]);
        let states: Vec<&str> = ring
            .list(Timestamp(5_001))
            .iter()
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(states, ["retired", "active"]);
        // All of it survives reopening.
        drop(ring);
        let again = KeyRing::open(dir.path(), HOUR, Timestamp(6_000), None).unwrap();
        assert_eq!(again.active_kid(), new);
        assert_eq!(again.published(Timestamp(6_000)).len(), 1);
    }

    #[test]
    fn a_damaged_or_swapped_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path(), HOUR, Timestamp(0), None).unwrap();
        let kid = ring.active_kid();
        let other = ring.rotate(Timestamp(1)).unwrap();
        drop(ring);
        // The active key's file now holds the old key.
        std::fs::copy(
            dir.path().join(format!("{kid}.pk8")),
            dir.path().join(format!("{other}.pk8")),
        )
        .unwrap();
        let err = KeyRing::open(dir.path(), HOUR, Timestamp(2), None).unwrap_err();
        assert!(err.to_string().contains("another key"), "{err}");
        std::fs::write(dir.path().join(MANIFEST), b"{").unwrap();
        assert!(KeyRing::open(dir.path(), HOUR, Timestamp(2), None).is_err());
    }

    fn pem(pkcs8: &[u8]) -> String {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8);
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }

    #[test]
    fn a_key_from_outside_becomes_active_and_is_rotated_by_replacing_it() {
        let dir = tempfile::tempdir().unwrap();
        let made_here = KeyRing::open(dir.path(), HOUR, Timestamp(0), None)
            .unwrap()
            .active_kid();
        let first = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let first = read_private_key(&pem(first.as_ref())).unwrap();
        let ring = KeyRing::open(dir.path(), HOUR, Timestamp(10), Some(&first)).unwrap();
        let external = ring.active_kid();
        assert_eq!(external, public_key(&first).unwrap().thumbprint());
        assert!(!dir.path().join(format!("{external}.pk8")).exists());
        let published: Vec<String> = ring
            .published(Timestamp(20))
            .iter()
            .map(PublicKey::thumbprint)
            .collect();
        assert_eq!(published, [made_here.clone(), external.clone()]);
        let err = ring.rotate(Timestamp(30)).unwrap_err();
        assert!(err.to_string().contains("signing.key"), "{err}");
        ring.retire(&made_here, Timestamp(40)).unwrap();
        assert_eq!(ring.active_kid(), external, "retiring keeps the key");
        drop(ring);
        // The same key again changes nothing; the directory alone cannot open.
        let ring = KeyRing::open(dir.path(), HOUR, Timestamp(50), Some(&first)).unwrap();
        assert_eq!(ring.list(Timestamp(50)).len(), 2);
        drop(ring);
        // A new key replaces it; the old one may not come back.
        let second = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let ring = KeyRing::open(dir.path(), HOUR, Timestamp(60), Some(second.as_ref())).unwrap();
        assert_ne!(ring.active_kid(), external);
        assert_eq!(ring.published(Timestamp(70)).len(), 2);
        drop(ring);
        let err = KeyRing::open(dir.path(), HOUR, Timestamp(80), Some(&first)).unwrap_err();
        assert!(err.to_string().contains("never made active again"), "{err}");
        // Without signing.key, a key is made here again.
        let ring = KeyRing::open(dir.path(), HOUR, Timestamp(90), None).unwrap();
        assert!(
            dir.path()
                .join(format!("{}.pk8", ring.active_kid()))
                .exists()
        );
        for bad in ["", "not base64!", "aGVsbG8="] {
            assert!(read_private_key(bad).is_err(), "{bad}");
        }
    }
}
