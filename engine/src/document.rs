//! A document a citizen is asked to sign: its name as they will see it, the
//! SHA-256 of its bytes (computed by the signing service), and its size.
//!
//! The name is shown in the code's message, so it is refused when it could
//! make the message lie: control characters, and the invisible formatting
//! characters (bidirectional overrides and isolates, zero-width marks) that
//! can reorder or hide what a reader sees ("contrato\u{202e}fdp.exe").

use std::fmt;

use crate::error::{EngineError, Result};

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Largest size a document may declare (4 GiB).
pub const MAX_SIZE: u64 = 1 << 32;

/// A document to sign, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    name: String,
    sha256: [u8; 32],
    size: Option<u64>,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Document({:?}, {})", self.name, self.fingerprint())
    }
}

/// Characters a reader cannot see or that change how text around them is
/// laid out: Unicode's Default_Ignorable_Code_Point set (zero-width marks,
/// bidirectional overrides and isolates, variation selectors, tag
/// characters, fillers), the line and paragraph separators, the
/// interlinear annotation marks, and private-use characters (no agreed
/// glyph: a phone may draw anything, or nothing).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
            | '\u{E000}'..='\u{F8FF}'
            | '\u{F0000}'..='\u{10FFFF}'
    )
}

impl Document {
    /// Checks a document as a request gives it: `name` (1 to 200 visible
    /// characters), `sha256` (64 hexadecimal digits) and an optional `size`
    /// (1 byte to 4 GiB). Errors name `document.name`, `document.sha256` or
    /// `document.size`.
    pub fn parse(name: &str, sha256: &str, size: Option<u64>) -> Result<Document> {
        let name = name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(EngineError::invalid(
                "document.name",
                format!(
                    "must be 1 to {MAX_NAME_CHARS} characters once surrounding spaces are trimmed"
                ),
            ));
        }
        if name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
        {
            return Err(EngineError::invalid(
                "document.name",
                "must not contain control or invisible formatting characters (such as \
                 right-to-left overrides), which could make the message misstate the document",
            ));
        }
        if !name.chars().any(char::is_alphanumeric) {
            return Err(EngineError::invalid(
                "document.name",
                "must contain a letter or a digit, so the citizen can recognise it",
            ));
        }
        let sha256 = crate::hex::decode_array::<32>(sha256.trim()).ok_or_else(|| {
            EngineError::invalid("document.sha256", "must be 64 hexadecimal digits (SHA-256)")
        })?;
        if let Some(size) = size
            && !(1..=MAX_SIZE).contains(&size)
        {
            return Err(EngineError::invalid(
                "document.size",
                format!("must be 1 to {MAX_SIZE} bytes"),
            ));
        }
        Ok(Document {
            name: name.to_owned(),
            sha256,
            size,
        })
    }

    /// A document from stored parts (validated when it was first accepted).
    pub(crate) fn from_parts(name: String, sha256: [u8; 32], size: Option<u64>) -> Document {
        Document { name, sha256, size }
    }

    /// The name as given (trimmed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SHA-256 of the document's bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The SHA-256 as 64 lower-case hexadecimal digits.
    pub fn sha256_hex(&self) -> String {
        crate::hex::encode(self.sha256)
    }

    /// The declared size in bytes, if given.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// A short fingerprint a citizen can compare: the first eight hex
    /// digits of the hash, in two groups of four (`3a7f-9c21`).
    pub fn fingerprint(&self) -> String {
        let hex = self.sha256_hex();
        format!("{}-{}", &hex[..4], &hex[4..8])
    }

    /// The name shortened to at most `max` characters for a text message:
    /// its beginning and its end (where the extension is), an ellipsis
    /// where the middle was cut.
    pub fn short_name(&self, max: usize) -> String {
        let chars: Vec<char> = self.name.chars().collect();
        if chars.len() <= max {
            return self.name.clone();
        }
        let tail = (max / 3).min(12);
        let head = max.saturating_sub(1 + tail);
        let start: String = chars[..head].iter().collect();
        let end: String = chars[chars.len() - tail..].iter().collect();
        format!("{}…{}", start.trim_end(), end.trim_start())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443322";

    fn field(result: Result<Document>) -> &'static str {
        match result {
            Err(EngineError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_document_has_a_name_a_hash_and_maybe_a_size() {
        let d = Document::parse("  contrato.pdf ", &HASH.to_uppercase(), Some(1024)).unwrap();
        assert_eq!(d.name(), "contrato.pdf");
        assert_eq!(d.sha256_hex(), HASH);
        assert_eq!(d.fingerprint(), "3a7f-9c21");
        assert_eq!(d.size(), Some(1024));
    }

    #[test]
    fn names_that_could_misstate_the_document_are_refused() {
        for bad in [
            "",
            "   ",
            "contrato\u{202e}fdp.exe",
            "a\u{2066}b",
            "zero\u{200b}width",
            "line\nbreak",
            "tab\there",
            "nul\u{0}",
            "bom\u{feff}",
            "a\u{E0041}b.pdf",
            "\u{3164}",
            "\u{2800}",
            "\u{115F}",
            "a\u{034F}b",
            "a\u{17B4}b",
            "a\u{FE0F}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{E000}b",
            "...",
        ] {
            assert_eq!(
                field(Document::parse(bad, HASH, None)),
                "document.name",
                "{bad:?}"
            );
        }
        assert_eq!(
            field(Document::parse(&"a".repeat(201), HASH, None)),
            "document.name"
        );
        assert!(Document::parse(&"á".repeat(200), HASH, None).is_ok());
        assert!(Document::parse("Relatório 2026 — versão final.pdf", HASH, None).is_ok());
    }

    #[test]
    fn hashes_are_64_hex_digits_and_sizes_are_bounded() {
        for bad in [
            "",
            "3a7f",
            &HASH[..63],
            &format!("{HASH}0"),
            &HASH.replace('3', "g"),
        ] {
            assert_eq!(
                field(Document::parse("a.pdf", bad, None)),
                "document.sha256"
            );
        }
        assert_eq!(
            field(Document::parse("a.pdf", HASH, Some(0))),
            "document.size"
        );
        assert_eq!(
            field(Document::parse("a.pdf", HASH, Some(MAX_SIZE + 1))),
            "document.size"
        );
        assert!(Document::parse("a.pdf", HASH, Some(MAX_SIZE)).is_ok());
    }

    #[test]
    fn long_names_are_shortened_for_a_text_message() {
        let d = Document::parse(&"x".repeat(60), HASH, None).unwrap();
        let short = d.short_name(30);
        assert_eq!(short.chars().count(), 30);
        assert!(short.contains('…'));
        let d = Document::parse(&format!("{}.exe", "y".repeat(60)), HASH, None).unwrap();
        assert!(d.short_name(30).ends_with(".exe"), "the extension shows");
        assert_eq!(
            Document::parse("a.pdf", HASH, None).unwrap().short_name(30),
            "a.pdf"
        );
    }
}
