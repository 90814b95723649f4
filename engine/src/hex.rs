//! Hexadecimal text for ids, keys and digests: the `hex` crate, with the
//! two shapes otpd uses (fixed-size arrays, and writing without allocating).

use std::fmt;

/// Lower-case hex of `bytes`.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    ::hex::encode(bytes)
}

/// `N` bytes from exactly `2N` hex digits (either case); `None` for
/// anything else: other lengths, signs, spaces, non-ASCII.
pub(crate) fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    ::hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

/// Writes lower-case hex of up to 32 bytes without allocating.
pub(crate) fn write(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut buffer = [0u8; 64];
    let text = buffer.get_mut(..bytes.len() * 2).ok_or(fmt::Error)?;
    ::hex::encode_to_slice(bytes, text).map_err(|_| fmt::Error)?;
    f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_ascii_hex_decodes() {
        assert_eq!(decode_array::<2>("0aFf"), Some([0x0a, 0xff]));
        for bad in ["0af", "0aFf0", "+a0f", "0a f", "0x0a", "ü0", "€€"] {
            assert_eq!(decode_array::<2>(bad), None, "{bad:?}");
        }
        assert_eq!(encode([0xab, 0x01]), "ab01");
    }
}
