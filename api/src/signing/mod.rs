//! Signed attestations for relying parties and signing services: the
//! Ed25519 key ring (`keyring.rs`), public keys as JWKs (`jwk.rs`), and the
//! tokens themselves (`attestation.rs`).

pub mod attestation;
pub mod jwk;
pub mod keyring;

use std::path::Path;

pub use attestation::{Attester, Claims, verify, verify_issued_by};
pub use jwk::{PublicKey, is_key_id, key_set};
pub use keyring::{KeyInfo, KeyRing, KeyState, read_private_key};

/// Why a signing-key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A key file or the manifest is not what otpd wrote.
    #[error("{0}")]
    Damaged(String),
    /// No key has this id.
    #[error("no signing key has the id {0}")]
    NotFound(String),
    /// The operation does not apply (retiring the active key, rotating a
    /// key that comes from `signing.key`).
    #[error("{0}")]
    Refused(String),
}

impl SigningError {
    fn io(what: &'static str, path: &Path) -> impl Fn(std::io::Error) -> SigningError {
        let path = path.display().to_string();
        move |e| SigningError::Io(format!("cannot {what} {path}: {e}"))
    }
}
