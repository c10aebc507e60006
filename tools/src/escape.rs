//! How keys and values are printed.
//!
//! [`OutputFormat::Escaped`] (the default) prints printable ASCII (0x20..=0x7e) as is, except
//! the backslash which is doubled (`\\`), and every other byte as `\xNN` (two lowercase hex
//! digits). Tabs and newlines are therefore escaped too, so `scan` output (`KEY<TAB>VALUE` per
//! line) is unambiguous. The escaping is reversible: [`unescape`] reads it back.

use crate::key_encoding::Encoding;

/// How bytes are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Printable ASCII as is, `\\` for backslash, `\xNN` for other bytes.
    #[default]
    Escaped,
    /// Lowercase hex.
    Hex,
    /// Standard base64.
    Base64,
    /// The bytes unchanged (binary-safe only for `get`).
    Raw,
}

impl OutputFormat {
    /// Renders `bytes` in this format.
    pub fn render(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            OutputFormat::Escaped => escape(bytes).into_bytes(),
            OutputFormat::Hex => Encoding::Hex.encode(bytes).into_bytes(),
            OutputFormat::Base64 => Encoding::Base64.encode(bytes).into_bytes(),
            OutputFormat::Raw => bytes.to_vec(),
        }
    }
}

/// Escapes bytes: printable ASCII as is, `\\`, and `\xNN` for the rest.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Reverses [`escape`]; `None` when `text` holds a malformed escape.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let digits = text.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(digits, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_back() {
        let data = b"a b\\c\t\n\x00\xff~";
        let text = escape(data);
        assert_eq!(text, "a b\\\\c\\x09\\x0a\\x00\\xff~");
        assert_eq!(unescape(&text).unwrap(), data);
        assert_eq!(unescape("\\q"), None);
        assert_eq!(unescape("\\x4"), None);
        assert_eq!(unescape("\\xzz"), None);
    }
}
