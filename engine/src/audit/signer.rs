//! The checkpoint key: an Ed25519 key pair whose seed is derived from the
//! code key (HKDF label `otpd/v1/audit`), so it needs no file of its own and
//! whoever holds the code key can verify and sign; its public half can be
//! handed to auditors to verify exports without any secret.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::error::{EngineError, Result};
use crate::keys::{AUDIT, subkey};
use crate::secret::CodeKey;

/// What a checkpoint signature covers, before the sequence number, hash
/// and the longest run of unsigned events that may follow it.
const CHECKPOINT: &[u8] = b"otpd audit checkpoint v2\0";
/// What an export's trailer covers, before the sequence number and hash:
/// another context, so a checkpoint's signature cannot close a truncated export.
const TRAILER: &[u8] = b"otpd audit export end v1\0";

/// The checkpoint signing key.
pub struct AuditKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("public", &self.public().to_string())
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// The key derived from `code_key`.
    pub fn derive(code_key: &CodeKey) -> Result<AuditKey> {
        let seed = zeroize::Zeroizing::new(subkey(code_key, AUDIT));
        let pair = Ed25519KeyPair::from_seed_unchecked(&*seed)
            .map_err(|_| EngineError::Internal("cannot make the audit key".into()))?;
        Ok(AuditKey { pair })
    }

    /// Its public half.
    pub fn public(&self) -> AuditPublicKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        AuditPublicKey(bytes)
    }

    /// Signs `(seq, hash)` as the last event of an export (its trailer).
    pub fn sign(&self, seq: u64, hash: &[u8; 32]) -> [u8; 64] {
        self.sign_message(&message(TRAILER, seq, hash, None))
    }

    /// Signs the chain head `(seq, hash)` as a checkpoint after which at
    /// most `every` unsigned events may come.
    pub fn sign_checkpoint(&self, seq: u64, hash: &[u8; 32], every: u64) -> [u8; 64] {
        self.sign_message(&message(CHECKPOINT, seq, hash, Some(every)))
    }

    fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.pair.sign(message).as_ref());
        signature
    }
}

/// The public key that verifies checkpoints, 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPublicKey(pub [u8; 32]);

impl AuditPublicKey {
    /// Parses 64 hexadecimal digits.
    pub fn parse(text: &str) -> Option<AuditPublicKey> {
        crate::hex::decode_array(text.trim()).map(AuditPublicKey)
    }

    /// Whether `signature` is an export's trailer for `(seq, hash)`.
    pub fn verifies(&self, seq: u64, hash: &[u8; 32], signature: &[u8]) -> bool {
        self.verifies_message(&message(TRAILER, seq, hash, None), signature)
    }

    /// Whether `signature` is a checkpoint of `(seq, hash)` stating `every`.
    pub fn verifies_checkpoint(
        &self,
        seq: u64,
        hash: &[u8; 32],
        every: u64,
        signature: &[u8],
    ) -> bool {
        self.verifies_message(&message(CHECKPOINT, seq, hash, Some(every)), signature)
    }

    fn verifies_message(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, signature)
            .is_ok()
    }
}

impl std::fmt::Display for AuditPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::hex::encode(self.0))
    }
}

fn message(context: &[u8], seq: u64, hash: &[u8; 32], every: Option<u64>) -> Vec<u8> {
    let mut message = Vec::with_capacity(context.len() + 48);
    message.extend_from_slice(context);
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash);
    if let Some(every) = every {
        message.extend_from_slice(&every.to_be_bytes());
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_under_its_key_only_for_what_it_signed() {
        let key = AuditKey::derive(&CodeKey::new([1; 32])).unwrap();
        let public = key.public();
        let signature = key.sign(7, &[2; 32]);
        assert!(public.verifies(7, &[2; 32], &signature));
        assert!(!public.verifies(8, &[2; 32], &signature));
        assert!(!public.verifies(7, &[3; 32], &signature));
        let other = AuditKey::derive(&CodeKey::new([9; 32])).unwrap().public();
        assert!(!other.verifies(7, &[2; 32], &signature));
        assert_eq!(AuditPublicKey::parse(&public.to_string()), Some(public));
        assert_eq!(
            AuditKey::derive(&CodeKey::new([1; 32])).unwrap().public(),
            public,
            "derived, so the same code key gives the same key"
        );
    }

    #[test]
    fn a_checkpoint_states_its_run_and_never_passes_for_a_trailer() {
        let key = AuditKey::derive(&CodeKey::new([1; 32])).unwrap();
        let public = key.public();
        let checkpoint = key.sign_checkpoint(7, &[2; 32], 1_000);
        assert!(public.verifies_checkpoint(7, &[2; 32], 1_000, &checkpoint));
        assert!(
            !public.verifies_checkpoint(7, &[2; 32], 1_000_000, &checkpoint),
            "the allowed run cannot be raised"
        );
        assert!(
            !public.verifies(7, &[2; 32], &checkpoint),
            "a checkpoint cannot close an export cut short before it"
        );
        let trailer = key.sign(7, &[2; 32]);
        assert!(!public.verifies_checkpoint(7, &[2; 32], 1_000, &trailer));
    }
}
