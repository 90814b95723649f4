//! An event's details: a few key–value pairs, built on the request path
//! and dropped on the store's writer thread. Keys are fixed words; values
//! are fixed words, short texts (an id's hex, a count, a masked contact)
//! kept inline, or, rarely, longer texts. Building the usual event
//! therefore allocates nothing, and the writer frees nothing the request
//! thread allocated (docs/CAPACITY.md, "The audit trail").

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use smallvec::SmallVec;

/// A detail's key.
pub type Key = Cow<'static, str>;

/// How many details an event holds without a heap allocation: every kind
/// but a few rare ones.
const KEPT_INLINE: usize = 4;

/// An event's details, sorted by key.
pub type Details = SmallVec<[(Key, Detail); KEPT_INLINE]>;

/// The longest text a [`Detail`] keeps inline: an id's 32 hex digits.
const INLINE: usize = 32;

/// A detail's value: text, stored without allocating where it can be.
#[derive(Clone)]
pub struct Detail(Repr);

#[derive(Clone)]
enum Repr {
    Word(&'static str),
    Short { len: u8, bytes: [u8; INLINE] },
    Long(Box<str>),
}

impl Detail {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Word(word) => word,
            // Only ever filled from whole `str`s (`short`), so always UTF-8.
            Repr::Short { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Long(text) => text,
        }
    }

    /// `value` as a detail, inline if it is short.
    fn text(value: &str) -> Detail {
        Detail::short(value).unwrap_or_else(|| Detail(Repr::Long(value.into())))
    }

    fn short(value: &str) -> Option<Detail> {
        let mut bytes = [0; INLINE];
        bytes
            .get_mut(..value.len())?
            .copy_from_slice(value.as_bytes());
        Some(Detail(Repr::Short {
            len: u8::try_from(value.len()).ok()?,
            bytes,
        }))
    }

    /// `bytes` as lower-case hex digits.
    pub fn hex(bytes: &[u8]) -> Detail {
        let mut out = [0; INLINE];
        let len = bytes.len() * 2;
        match out
            .get_mut(..len)
            .map(|digits| hex::encode_to_slice(bytes, digits))
        {
            Some(Ok(())) => Detail(Repr::Short {
                len: u8::try_from(len).unwrap_or_default(),
                bytes: out,
            }),
            _ => Detail(Repr::Long(hex::encode(bytes).into())),
        }
    }

    /// `value` formatted, inline if the text is short.
    pub fn display(value: impl fmt::Display) -> Detail {
        let mut short = Inline::default();
        if write!(short, "{value}").is_ok() {
            return Detail(Repr::Short {
                len: short.len,
                bytes: short.bytes,
            });
        }
        Detail(Repr::Long(value.to_string().into()))
    }
}

/// A formatter's output while it fits in a [`Detail`].
#[derive(Default)]
struct Inline {
    len: u8,
    bytes: [u8; INLINE],
}

impl fmt::Write for Inline {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let end = start + s.len();
        self.bytes
            .get_mut(start..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = u8::try_from(end).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

impl From<&'static str> for Detail {
    fn from(word: &'static str) -> Detail {
        Detail(Repr::Word(word))
    }
}

impl From<String> for Detail {
    fn from(text: String) -> Detail {
        Detail::short(&text).unwrap_or_else(|| Detail(Repr::Long(text.into_boxed_str())))
    }
}

impl From<&String> for Detail {
    fn from(text: &String) -> Detail {
        Detail::text(text)
    }
}

impl From<u32> for Detail {
    fn from(n: u32) -> Detail {
        Detail::display(n)
    }
}

impl From<u64> for Detail {
    fn from(n: u64) -> Detail {
        Detail::display(n)
    }
}

impl std::ops::Deref for Detail {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Detail {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Detail {
    fn eq(&self, other: &Detail) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Detail {}

impl PartialEq<str> for Detail {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Detail {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stored as the text it is: the same bytes as a `String`'s.
impl bincode::Encode for Detail {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.as_str().encode(encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back_as_its_text() {
        let long = "x".repeat(INLINE + 1);
        let exact = "y".repeat(INLINE);
        let (ab, cd, e) = ("ab".repeat(16), "cd".repeat(17), "é".repeat(16));
        let cases: Vec<(Detail, &str)> = vec![
            (Detail::from("login"), "login"),
            (
                Detail::from(String::from("a***@example.pt")),
                "a***@example.pt",
            ),
            (Detail::from(exact.clone()), &exact),
            (Detail::from(long.clone()), &long),
            (Detail::from(&long), &long),
            (Detail::from(String::new()), ""),
            (Detail::from(4_294_967_295u32), "4294967295"),
            (Detail::from(u64::MAX), "18446744073709551615"),
            (Detail::hex(&[0xab; 16]), &ab),
            (Detail::hex(&[0xcd; 17]), &cd),
            (Detail::display(&e), &e),
            (Detail::display(&long), &long),
        ];
        for (detail, text) in cases {
            assert_eq!(detail.as_str(), text);
            assert_eq!(detail, Detail::from(text.to_owned()));
            assert_eq!(format!("{detail:?}"), format!("{text:?}"));
        }
    }

    #[test]
    fn short_texts_are_kept_inline_and_long_ones_are_not() {
        assert!(matches!(
            Detail::from("x".repeat(INLINE)).0,
            Repr::Short { .. }
        ));
        assert!(matches!(
            Detail::from("x".repeat(INLINE + 1)).0,
            Repr::Long(_)
        ));
        assert!(matches!(Detail::hex(&[0; 16]).0, Repr::Short { .. }));
        assert!(matches!(Detail::from(7u32).0, Repr::Short { .. }));
        assert!(matches!(Detail::from("word").0, Repr::Word(_)));
    }

    #[test]
    fn a_detail_encodes_as_its_text() {
        let config = bincode::config::standard();
        for detail in [
            Detail::from("word"),
            Detail::from(3u32),
            Detail::from("z".repeat(100)),
        ] {
            assert_eq!(
                bincode::encode_to_vec(&detail, config).unwrap(),
                bincode::encode_to_vec(detail.as_str(), config).unwrap()
            );
        }
    }
}
