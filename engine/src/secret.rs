//! Secrets in newtypes: their `Debug` is redacted and their memory is zeroed on drop.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A PIN as typed by the citizen. Not yet checked against any policy.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Pin(String);

impl Pin {
    /// Wraps a PIN; checking it is the policy's job.
    pub fn new(pin: impl Into<String>) -> Self {
        Self(pin.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// A one-time code in plain text: what is delivered to the citizen and what
/// they type back. Never stored; only its keyed hash is.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Code(String);

impl Code {
    /// Wraps a code as received.
    pub fn new(code: impl Into<String>) -> Self {
        Self(code.into())
    }

    /// The code's characters, for delivery to the citizen only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// The server secret that keys the hash of every code (HMAC-SHA-256).
///
/// It lives outside the database, so a stolen data directory does not allow
/// an offline search of the short code space.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CodeKey([u8; 32]);

impl CodeKey {
    /// Length of the key in bytes.
    pub const LEN: usize = 32;

    /// Wraps key material.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The raw key, for writing it to its secret file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey(<redacted>)")
    }
}

/// An Argon2id hash in PHC string form, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PinHash(String);

impl PinHash {
    pub(crate) fn from_phc_unchecked(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string (`$argon2id$v=19$m=...`).
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PinHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinHash(<redacted>)")
    }
}

/// A keyed hash of a code (HMAC-SHA-256 output). Compared in constant time.
#[derive(Clone, Copy)]
pub(crate) struct CodeMac(pub(crate) [u8; 32]);

impl CodeMac {
    pub(crate) fn matches(&self, other: &CodeMac) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for CodeMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeMac(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secret_material() {
        let shown = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            Pin::new("4821"),
            Code::new("123456"),
            CodeKey::new([7; 32]),
            PinHash::from_phc_unchecked("$argon2id$secret".into()),
            CodeMac([9; 32]),
        );
        for secret in ["4821", "123456", "argon2id", "7, 7", "9, 9"] {
            assert!(!shown.contains(secret), "{shown} leaks {secret}");
        }
    }

    #[test]
    fn code_macs_compare_by_value() {
        assert!(CodeMac([1; 32]).matches(&CodeMac([1; 32])));
        let mut other = [1; 32];
        other[31] = 2;
        assert!(!CodeMac([1; 32]).matches(&CodeMac(other)));
    }
}
