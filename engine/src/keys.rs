//! Keys with purpose: the code key is a root from which HKDF-SHA-256
//! derives one subkey per use, so no key serves two algorithms.
//!
//! Labels (HKDF `info`), each naming its use and its version:
//!
//! | label | use |
//! |---|---|
//! | `otpd/v1/code-mac` | HMAC-SHA-256 of each code, stored in its challenge |
//! | `otpd/v1/outbox-seal` | ChaCha20-Poly1305 key sealing the code in a queued message |
//! | `otpd/v1/signing` | reserved for signed attestations |
//! | `otpd/v1/audit` | the Ed25519 seed that signs audit checkpoints (`audit/signer.rs`) |
//! | `otpd/v1/audit-login` | HMAC-SHA-256 key naming unknown logins in audit events |
//! | `otpd/v1/idempotency` | HMAC-SHA-256 key of request fingerprints bound to idempotency keys |
//!
//! Records written before the keys were split (challenges with their MAC
//! made by the root key itself, messages sealed with an HMAC pad) carry
//! the older scheme's tag and are still read with the root key; nothing
//! new is written that way.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{EngineError, Result};
use crate::id::ChallengeId;
use crate::secret::{Code, CodeKey, CodeMac};
use crate::terms::MessageId;

/// HKDF salt: fixed, naming the application (RFC 5869 §3.1 allows it).
const SALT: &[u8] = b"otpd key derivation";
/// The label of the code-MAC subkey.
pub(crate) const CODE_MAC: &[u8] = b"otpd/v1/code-mac";
/// The label of the outbox-sealing subkey.
pub(crate) const OUTBOX_SEAL: &[u8] = b"otpd/v1/outbox-seal";
/// Reserved for signed attestations; no subkey is derived from it yet.
#[allow(dead_code)]
pub(crate) const SIGNING: &[u8] = b"otpd/v1/signing";
/// The label of the audit checkpoints' Ed25519 seed.
pub(crate) const AUDIT: &[u8] = b"otpd/v1/audit";
/// The label of the key that hashes unknown login identifiers in audit events.
pub(crate) const AUDIT_LOGIN: &[u8] = b"otpd/v1/audit-login";

/// The label of the key that fingerprints requests for idempotency keys.
pub(crate) const IDEMPOTENCY: &[u8] = b"otpd/v1/idempotency";

/// The label of the key that names destinations' and source addresses'
/// rate-limit buckets (the same on every node of a cluster, meaningless
/// without the code key).
pub(crate) const LIMIT_DESTINATIONS: &[u8] = b"otpd/v1/limit-destinations";
/// The label of the subkey naming destination verifications' holders.
pub(crate) const HOLDERS: &[u8] = b"otpd/v1/destination-holders";

/// Which key made a challenge's code MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacKey {
    /// The root code key itself (challenges written before keys had purposes).
    Root,
    /// The `code-mac` subkey.
    Derived,
}

impl MacKey {
    pub(crate) fn tag(self) -> u8 {
        match self {
            MacKey::Root => 0,
            MacKey::Derived => 1,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(MacKey::Root),
            1 => Some(MacKey::Derived),
            _ => None,
        }
    }
}

/// How a queued message's code is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seal {
    /// XORed with `HMAC-SHA-256(root key, "otpd-outbox" ‖ message id)`
    /// (messages written before keys had purposes).
    Pad,
    /// ChaCha20-Poly1305 under the `outbox-seal` subkey.
    Aead,
}

impl Seal {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Seal::Pad => 0,
            Seal::Aead => 1,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Seal::Pad),
            1 => Some(Seal::Aead),
            _ => None,
        }
    }
}

/// The subkeys derived from one code key, and the root for older records.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Keys {
    root: [u8; 32],
    /// Keys the digests naming rate-limit buckets (see `limit_subjects`).
    limit_subjects: [u8; 16],
    code_mac: [u8; 32],
    outbox_seal: [u8; 32],
    idempotency: [u8; 32],
    holders: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// Derives every subkey from `root`.
    pub(crate) fn derive(root: &CodeKey) -> Keys {
        Keys {
            root: *root.expose(),
            code_mac: subkey(root, CODE_MAC),
            outbox_seal: subkey(root, OUTBOX_SEAL),
            idempotency: subkey(root, IDEMPOTENCY),
            holders: subkey(root, HOLDERS),
            limit_subjects: {
                let mut key = [0u8; 16];
                key.copy_from_slice(&subkey(root, LIMIT_DESTINATIONS)[..16]);
                key
            },
        }
    }

    /// The key of the digests that name rate-limit buckets of destinations
    /// and source addresses: the same on every node of a cluster, and
    /// meaningless to whoever reads the cluster without the code key.
    pub(crate) fn limit_subjects(&self) -> [u8; 16] {
        self.limit_subjects
    }

    /// The id of the holder of `client`'s account-less codes to
    /// `destination`: the same on every node and after a restart, so a
    /// new code finds (and supersedes) the last one; meaningless without
    /// the code key.
    pub(crate) fn holder_id(&self, client: &[u8], destination: &str) -> [u8; 16] {
        let (c, d) = (client.len() as u64, destination.len() as u64);
        let digest = hmac(
            &self.holders,
            &[
                &c.to_be_bytes(),
                client,
                &d.to_be_bytes(),
                destination.as_bytes(),
            ],
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        id
    }

    /// `HMAC-SHA-256(idempotency subkey, length ‖ part ‖ length ‖ part …)`,
    /// each length a u64 BE: a request's fingerprint. A request may hold a
    /// PIN or a code, so the fingerprint is keyed: a copy of the store
    /// without the code key cannot test guesses against it.
    pub(crate) fn request_fingerprint(&self, parts: &[&[u8]]) -> [u8; 32] {
        let lengths: Vec<[u8; 8]> = parts
            .iter()
            .map(|p| (p.len() as u64).to_be_bytes())
            .collect();
        let mut framed: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2);
        for (length, part) in lengths.iter().zip(parts) {
            framed.push(length);
            framed.push(part);
        }
        hmac(&self.idempotency, &framed)
    }

    /// `HMAC-SHA-256(key, challenge id ‖ normalised code)` with the key
    /// `which` names; for a code bound to a document, `‖ 0x00 ‖ "doc" ‖
    /// SHA-256 of the document` as well (a code holds no NUL, so the parts
    /// cannot run into each other).
    pub(crate) fn code_mac(
        &self,
        which: MacKey,
        challenge: ChallengeId,
        normalised: &str,
        document: Option<&[u8; 32]>,
    ) -> CodeMac {
        let key = match which {
            MacKey::Root => &self.root,
            MacKey::Derived => &self.code_mac,
        };
        CodeMac(match document {
            None => hmac(key, &[&challenge.0, normalised.as_bytes()]),
            Some(hash) => hmac(key, &[&challenge.0, normalised.as_bytes(), b"\0doc", hash]),
        })
    }

    /// Seals `code` for message `id` (ChaCha20-Poly1305; the message id is
    /// the associated data, and its first 12 bytes the nonce: ids are random
    /// and never reused, so no nonce repeats under one key).
    pub(crate) fn seal(&self, id: MessageId, code: &Code) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(&self.outbox_seal.into());
        let payload = Payload {
            msg: code.expose().as_bytes(),
            aad: &id.0,
        };
        // Encrypting a few bytes into a Vec cannot fail.
        cipher.encrypt(&nonce(id), payload).unwrap_or_default()
    }

    /// Opens a sealed code; an error when it was not sealed for `id` by these keys.
    pub(crate) fn unseal(&self, seal: Seal, id: MessageId, sealed: &[u8]) -> Result<Code> {
        let wrong_key =
            || EngineError::Corrupt("an outbox message does not open with this code key".into());
        let bytes = match seal {
            Seal::Aead => ChaCha20Poly1305::new(&self.outbox_seal.into())
                .decrypt(
                    &nonce(id),
                    Payload {
                        msg: sealed,
                        aad: &id.0,
                    },
                )
                .map_err(|_| wrong_key())?,
            Seal::Pad => {
                let pad = hmac(&self.root, &[b"otpd-outbox", &id.0]);
                sealed.iter().zip(pad).map(|(c, p)| c ^ p).collect()
            }
        };
        String::from_utf8(bytes)
            .map(Code::new)
            .map_err(|_| wrong_key())
    }
}

/// The 32-byte subkey for `label`.
pub(crate) fn subkey(root: &CodeKey, label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's limit of 255 × 32.
    let _ = Hkdf::<Sha256>::new(Some(SALT), root.expose()).expand(label, &mut out);
    out
}

fn nonce(id: MessageId) -> chacha20poly1305::Nonce {
    let mut bytes = [0u8; 12];
    bytes.copy_from_slice(&id.0[..12]);
    bytes.into()
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: this cannot fail for 32 bytes.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts any key length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::derive(&CodeKey::new([1; 32]))
    }

    #[test]
    fn request_fingerprints_are_keyed_and_keep_their_parts_apart() {
        let k = keys();
        let base = k.request_fingerprint(&[b"POST", b"/v1/login", b"{}"]);
        assert_eq!(base, k.request_fingerprint(&[b"POST", b"/v1/login", b"{}"]));
        assert_ne!(base, k.request_fingerprint(&[b"PUT", b"/v1/login", b"{}"]));
        assert_ne!(
            base,
            k.request_fingerprint(&[b"POST", b"/v1/login", b"{ }"])
        );
        assert_ne!(
            k.request_fingerprint(&[b"POST", b"/a", b"b"]),
            k.request_fingerprint(&[b"POST", b"/ab", b""]),
            "lengths keep the parts apart"
        );
        let other = Keys::derive(&CodeKey::new([2; 32]));
        assert_ne!(
            base,
            other.request_fingerprint(&[b"POST", b"/v1/login", b"{}"]),
            "another code key, another fingerprint"
        );
    }

    #[test]
    fn every_use_gets_its_own_key_and_none_is_the_root() {
        let root = CodeKey::new([1; 32]);
        let labels = [CODE_MAC, OUTBOX_SEAL, SIGNING, AUDIT];
        let mut all: Vec<[u8; 32]> = labels.iter().map(|l| subkey(&root, l)).collect();
        all.push(*root.expose());
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            count,
            "subkeys are distinct from each other and the root"
        );
        assert_eq!(
            subkey(&root, CODE_MAC),
            subkey(&root, CODE_MAC),
            "deterministic"
        );
        assert_ne!(
            subkey(&root, CODE_MAC),
            subkey(&CodeKey::new([2; 32]), CODE_MAC)
        );
    }

    #[test]
    fn sealed_codes_open_only_with_their_key_and_id_and_tampering_is_refused() {
        let id = MessageId([2; 16]);
        let sealed = keys().seal(id, &Code::new("ABCDEFGHJK"));
        assert_eq!(sealed.len(), 10 + 16, "the code and the tag");
        assert_eq!(
            keys().unseal(Seal::Aead, id, &sealed).unwrap().expose(),
            "ABCDEFGHJK"
        );
        let other = Keys::derive(&CodeKey::new([3; 32]));
        assert!(other.unseal(Seal::Aead, id, &sealed).is_err());
        assert!(
            keys()
                .unseal(Seal::Aead, MessageId([4; 16]), &sealed)
                .is_err()
        );
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(keys().unseal(Seal::Aead, id, &flipped).is_err());
    }

    #[test]
    fn codes_sealed_with_the_old_pad_still_open() {
        // As the version before keys had purposes sealed them.
        let id = MessageId([5; 16]);
        let pad = hmac(&[1; 32], &[b"otpd-outbox", &id.0]);
        let sealed: Vec<u8> = b"533485".iter().zip(pad).map(|(c, p)| c ^ p).collect();
        assert_eq!(
            keys().unseal(Seal::Pad, id, &sealed).unwrap().expose(),
            "533485"
        );
    }

    #[test]
    fn a_mac_depends_on_key_challenge_and_code() {
        let k = keys();
        let a = k.code_mac(MacKey::Derived, ChallengeId([1; 16]), "123456", None);
        assert!(a.matches(&k.code_mac(MacKey::Derived, ChallengeId([1; 16]), "123456", None)));
        assert!(!a.matches(&k.code_mac(MacKey::Derived, ChallengeId([2; 16]), "123456", None)));
        assert!(!a.matches(&k.code_mac(MacKey::Derived, ChallengeId([1; 16]), "123457", None)));
        let other = Keys::derive(&CodeKey::new([2; 32]));
        assert!(!a.matches(&other.code_mac(MacKey::Derived, ChallengeId([1; 16]), "123456", None)));
    }

    #[test]
    fn a_mac_bound_to_a_document_holds_for_that_document_only() {
        let k = keys();
        let id = ChallengeId([7; 16]);
        let a = k.code_mac(MacKey::Derived, id, "123456", Some(&[1; 32]));
        assert!(a.matches(&k.code_mac(MacKey::Derived, id, "123456", Some(&[1; 32]))));
        let mut one_bit = [1; 32];
        one_bit[31] ^= 1;
        assert!(!a.matches(&k.code_mac(MacKey::Derived, id, "123456", Some(&one_bit))));
        assert!(!a.matches(&k.code_mac(MacKey::Derived, id, "123456", None)));
    }

    #[test]
    fn macs_differ_by_key_and_match_the_old_scheme_with_the_root() {
        let id = ChallengeId([6; 16]);
        let derived = keys().code_mac(MacKey::Derived, id, "123456", None);
        let root = keys().code_mac(MacKey::Root, id, "123456", None);
        assert!(!derived.matches(&root));
        assert_eq!(root.0, hmac(&[1; 32], &[&id.0, b"123456"]));
    }
}
