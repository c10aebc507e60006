//! How key and value text in an input file becomes bytes: `utf8`, `hex` or `base64`.
//!
//! Decoding errors carry the byte offset inside the field where decoding failed, so the input
//! parsers can report an exact `file:line:column`.

use base64::Engine as _;

/// The text encoding of a key or value field in an input file (or on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Encoding {
    /// The field's text is the bytes, and must be valid UTF-8.
    #[default]
    Utf8,
    /// Hexadecimal digits, two per byte, upper or lower case, no prefix.
    Hex,
    /// Standard base64 (RFC 4648 alphabet `+/`, padding required).
    Base64,
}

/// A field that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset inside the field (0-based) where decoding failed.
    pub offset: usize,
    /// What is wrong, e.g. `invalid hex digit 'g'`.
    pub message: String,
}

impl Encoding {
    /// The name used on the command line (`utf8`, `hex`, `base64`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }

    /// Decodes one field. Never panics, whatever the bytes.
    pub fn decode(self, field: &[u8]) -> Result<Vec<u8>, DecodeError> {
        match self {
            Encoding::Utf8 => decode_utf8(field),
            Encoding::Hex => decode_hex(field),
            Encoding::Base64 => decode_base64(field),
        }
    }

    /// Encodes bytes as text in this encoding. For `utf8`, bytes that are not valid UTF-8 are
    /// replaced by U+FFFD: use `hex` or `base64` for binary data.
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Hex => hex::encode(bytes),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

fn decode_utf8(field: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match std::str::from_utf8(field) {
        Ok(_) => Ok(field.to_vec()),
        Err(e) => {
            let offset = e.valid_up_to();
            let byte = field.get(offset).copied().unwrap_or(0);
            Err(DecodeError {
                offset,
                message: format!(
                    "invalid UTF-8 (byte 0x{byte:02x}); use --key-encoding/--value-encoding hex or base64 for binary data"
                ),
            })
        }
    }
}

fn decode_hex(field: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match hex::decode(field) {
        Ok(bytes) => Ok(bytes),
        Err(hex::FromHexError::InvalidHexCharacter { c, index }) => Err(DecodeError {
            offset: index,
            message: format!("invalid hex digit {c:?}"),
        }),
        Err(hex::FromHexError::OddLength) => Err(DecodeError {
            offset: field.len(),
            message: format!("invalid hex: odd number of digits ({})", field.len()),
        }),
        Err(other) => Err(DecodeError {
            offset: 0,
            message: format!("invalid hex: {other}"),
        }),
    }
}

fn decode_base64(field: &[u8]) -> Result<Vec<u8>, DecodeError> {
    use base64::DecodeError as E;
    match base64::engine::general_purpose::STANDARD.decode(field) {
        Ok(bytes) => Ok(bytes),
        Err(E::InvalidByte(offset, byte)) => Err(DecodeError {
            offset,
            message: format!("invalid base64: unexpected byte {:?}", char::from(byte)),
        }),
        Err(E::InvalidLastSymbol(offset, byte)) => Err(DecodeError {
            offset,
            message: format!("invalid base64: bad last symbol {:?}", char::from(byte)),
        }),
        Err(E::InvalidLength(len)) => Err(DecodeError {
            offset: field.len(),
            message: format!("invalid base64: length {len} is not valid (missing padding?)"),
        }),
        Err(E::InvalidPadding) => Err(DecodeError {
            offset: field.len(),
            message: "invalid base64: bad padding".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let data = b"\x00\xffhello";
        for enc in [Encoding::Hex, Encoding::Base64] {
            assert_eq!(enc.decode(enc.encode(data).as_bytes()).unwrap(), data);
        }
        assert_eq!(
            Encoding::Utf8.decode("héllo".as_bytes()).unwrap(),
            "héllo".as_bytes()
        );
    }

    #[test]
    fn hex_errors_point_at_the_bad_digit() {
        let e = Encoding::Hex.decode(b"00zz").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("invalid hex digit 'z'"), "{}", e.message);
        let e = Encoding::Hex.decode(b"abc").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("odd"));
    }

    #[test]
    fn base64_and_utf8_errors() {
        let e = Encoding::Base64.decode(b"ab$d").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(Encoding::Base64.decode(b"abc").is_err());
        let e = Encoding::Utf8.decode(b"ab\xffcd").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("0xff"));
    }
}
