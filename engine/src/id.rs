//! Opaque random identifiers, written as 32 lower-case hex digits.

use std::fmt;

use crate::error::{EngineError, Result};

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) [u8; 16]);

        impl $name {
            /// Parses the 32-hex-digit form (ASCII digits and letters a-f,
            /// either case, nothing else); `field` names the input in the error.
            pub fn parse(field: &'static str, text: &str) -> Result<Self> {
                crate::hex::decode_array(text.trim())
                    .map(Self)
                    .ok_or_else(|| EngineError::invalid(field, "must be 32 hexadecimal digits"))
            }

            /// The raw bytes.
            pub fn to_bytes(self) -> [u8; 16] {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                crate::hex::write(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

opaque_id!(
    /// An account's id: random, so identity numbers never need to appear in URLs or logs.
    AccountId
);
opaque_id!(
    /// A challenge's id: its account's first 8 id bytes (so it names the
    /// account's slot in a cluster), then 64 random bits, unguessable.
    ChallengeId
);

impl ChallengeId {
    /// No challenge: what a notice (a message with no code) carries.
    pub const NONE: ChallengeId = ChallengeId([0; 16]);
}

/// Hashes an id for a map of the engine's own: ids are random, so their
/// last eight bytes, mixed with a key drawn per map, are hash enough, at a
/// fraction of SipHash's cost. Only for ids otpd generated, never for text
/// a caller chose.
#[derive(Clone)]
pub(crate) struct IdHasher(u64);

impl Default for IdHasher {
    fn default() -> Self {
        use std::hash::BuildHasher;
        IdHasher(std::collections::hash_map::RandomState::new().hash_one(0u64) | 1)
    }
}

impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash(self.0)
    }
}

/// The hasher [`IdHasher`] builds.
pub(crate) struct IdHash(u64);

impl std::hash::Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        // The last eight bytes: a challenge id's first eight are its
        // account's (shared by all its challenges), its last eight random.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[bytes.len() - n..]);
        self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, _length: usize) {
        // The length prefix of a 16-byte id says nothing.
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = AccountId([0xab; 16]);
        let text = id.to_string();
        assert_eq!(text, "ab".repeat(16));
        assert_eq!(AccountId::parse("account_id", &text).unwrap(), id);
        assert_eq!(
            ChallengeId::parse("challenge_id", &text.to_uppercase())
                .unwrap()
                .0,
            [0xab; 16]
        );
    }

    #[test]
    fn malformed_ids_name_their_field() {
        for bad in [
            "",
            "abc",
            &"zz".repeat(16),
            &"é".repeat(16),
            &"a".repeat(33),
            // 32 bytes whose char boundaries are not at even offsets (issue #14).
            &format!("aa{}", "€".repeat(10)),
            // `from_str_radix` takes a sign: every pair of `+f` once parsed.
            &"+f".repeat(16),
            &"-0".repeat(16),
            &" f".repeat(16),
        ] {
            match ChallengeId::parse("challenge_id", bad) {
                Err(EngineError::Invalid { field, .. }) => assert_eq!(field, "challenge_id"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
