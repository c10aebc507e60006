//! RESP: the bounded request parser and the reply encoder.
//!
//! Requests are arrays of bulk strings (`*N\r\n$len\r\n...\r\n`) or inline commands (words
//! on one line). Every length is checked against its bound before anything is allocated, as
//! Redis does; a malformed request is a [`ProtocolError`], after which the connection is
//! closed (the bytes that follow cannot be framed).

use thiserror::Error;

/// Largest bulk string in a request (Redis' `proto-max-bulk-len` default).
pub const MAX_BULK_BYTES: usize = 512 << 20;
/// Most elements in a request array (Redis' multibulk limit).
pub const MAX_ARRAY_ELEMENTS: usize = 1 << 20;
/// Longest inline command or header line.
pub const MAX_INLINE_BYTES: usize = 64 << 10;

/// A request that cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// A bad array header.
    #[error("invalid multibulk length")]
    MultibulkLength,
    /// A bad bulk header.
    #[error("invalid bulk length")]
    BulkLength,
    /// Something else than `$` where a bulk string was expected.
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A bulk string not followed by CRLF.
    #[error("bulk string not terminated by CRLF")]
    Unterminated,
    /// An inline request or header line longer than [`MAX_INLINE_BYTES`].
    #[error("too big inline request")]
    InlineTooBig,
    /// Unbalanced quotes in an inline request.
    #[error("unbalanced quotes in request")]
    Quotes,
}

/// One parsed command: its arguments (the name first).
pub type Command = Vec<Vec<u8>>;

fn line(buf: &[u8], from: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buf[from..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i > MAX_INLINE_BYTES => Err(ProtocolError::InlineTooBig),
        Some(i) => Ok(Some((&rest[..i], from + i + 2))),
        None if rest.len() > MAX_INLINE_BYTES => Err(ProtocolError::InlineTooBig),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Parses one command from the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// command and the bytes it used. An empty inline line yields an empty command.
pub fn parse(buf: &[u8]) -> Result<Option<(Command, usize)>, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return parse_inline(buf);
    }
    let Some((head, mut pos)) = line(buf, 0)? else {
        return Ok(None);
    };
    let n = number(&head[1..]).ok_or(ProtocolError::MultibulkLength)?;
    if n <= 0 {
        return Ok(Some((Vec::new(), pos)));
    }
    let n = usize::try_from(n).map_err(|_| ProtocolError::MultibulkLength)?;
    if n > MAX_ARRAY_ELEMENTS {
        return Err(ProtocolError::MultibulkLength);
    }
    let mut args = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let Some((h, next)) = line(buf, pos)? else {
            return Ok(None);
        };
        match h.first() {
            Some(b'$') => {}
            Some(&c) => return Err(ProtocolError::ExpectedBulk(c as char)),
            None => return Err(ProtocolError::ExpectedBulk(' ')),
        }
        let len = number(&h[1..])
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l <= MAX_BULK_BYTES)
            .ok_or(ProtocolError::BulkLength)?;
        let end = next.checked_add(len).ok_or(ProtocolError::BulkLength)?;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::Unterminated);
        }
        args.push(buf[next..end].to_vec());
        pos = end + 2;
    }
    Ok(Some((args, pos)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<(Command, usize)>, ProtocolError> {
    let (text, used) = match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i > MAX_INLINE_BYTES => return Err(ProtocolError::InlineTooBig),
        Some(i) => (&buf[..i], i + 1),
        None if buf.len() > MAX_INLINE_BYTES => return Err(ProtocolError::InlineTooBig),
        None => return Ok(None),
    };
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let mut args = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut quote: Option<u8> = None;
    for &c in text {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.get_or_insert_with(Vec::new).push(c),
            None if c == b'"' || c == b'\'' => {
                quote = Some(c);
                cur.get_or_insert_with(Vec::new);
            }
            None if c.is_ascii_whitespace() => {
                if let Some(a) = cur.take() {
                    args.push(a);
                }
            }
            None => cur.get_or_insert_with(Vec::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(ProtocolError::Quotes);
    }
    if let Some(a) = cur {
        args.push(a);
    }
    Ok(Some((args, used)))
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`.
    Simple(String),
    /// `-text` (the text starts with the error code, e.g. `ERR`).
    Error(String),
    /// `:n`.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// The null bulk (RESP3 `_`).
    Nil,
    /// An array.
    Array(Vec<Reply>),
    /// A map (RESP3 `%`; a flat array in RESP2).
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// `-ERR text`.
    pub fn err(text: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {text}"))
    }

    /// A bulk string of `text`.
    pub fn bulk(text: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(text.into())
    }

    /// Appends the encoding for protocol version 2 or 3 (`resp3`).
    pub fn encode(&self, out: &mut Vec<u8>, resp3: bool) {
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        match self {
            Reply::Simple(s) => out.extend_from_slice(format!("+{}\r\n", clean(s)).as_bytes()),
            Reply::Error(s) => out.extend_from_slice(format!("-{}\r\n", clean(s)).as_bytes()),
            Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Reply::Bulk(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for i in items {
                    i.encode(out, resp3);
                }
            }
            Reply::Map(pairs) => {
                let head = if resp3 {
                    format!("%{}\r\n", pairs.len())
                } else {
                    format!("*{}\r\n", pairs.len() * 2)
                };
                out.extend_from_slice(head.as_bytes());
                for (k, v) in pairs {
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_multibulk_inline_and_partial_input() {
        let req = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let (c, used) = parse(req).unwrap().unwrap();
        assert_eq!(c, vec![b"GET".to_vec(), b"k".to_vec()]);
        let (c, _) = parse(&req[used..]).unwrap().unwrap();
        assert_eq!(c, vec![b"PING".to_vec()]);
        for cut in 0..used {
            assert_eq!(parse(&req[..cut]).unwrap(), None, "cut {cut}");
        }
        let (c, used) = parse(b"set a \"b c\"\r\nrest").unwrap().unwrap();
        assert_eq!(c, vec![b"set".to_vec(), b"a".to_vec(), b"b c".to_vec()]);
        assert_eq!(used, 13);
        assert_eq!(parse(b"\r\n").unwrap(), Some((vec![], 2)));
        assert_eq!(parse(b"\"open\r\n"), Err(ProtocolError::Quotes));
    }

    #[test]
    fn lengths_are_bounded_before_allocating() {
        assert_eq!(
            parse(b"*99999999999\r\n"),
            Err(ProtocolError::MultibulkLength)
        );
        assert_eq!(parse(b"*x\r\n"), Err(ProtocolError::MultibulkLength));
        assert_eq!(
            parse(b"*1\r\n$536870913\r\n"),
            Err(ProtocolError::BulkLength)
        );
        assert_eq!(parse(b"*1\r\n$-1\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(
            parse(b"*1\r\n:1\r\n"),
            Err(ProtocolError::ExpectedBulk(':'))
        );
        assert_eq!(
            parse(b"*1\r\n$1\r\nab\r\n"),
            Err(ProtocolError::Unterminated)
        );
        // A declared 512 MiB bulk waits for its bytes without allocating them.
        assert_eq!(parse(b"*1\r\n$536870912\r\nabc").unwrap(), None);
        let long = vec![b'a'; MAX_INLINE_BYTES + 1];
        assert_eq!(parse(&long), Err(ProtocolError::InlineTooBig));
    }

    #[test]
    fn replies_encode_for_both_protocols() {
        let mut out = Vec::new();
        Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]).encode(&mut out, false);
        assert_eq!(out, b"*2\r\n$1\r\na\r\n:1\r\n");
        out.clear();
        Reply::Map(vec![(Reply::bulk("a"), Reply::Nil)]).encode(&mut out, true);
        assert_eq!(out, b"%1\r\n$1\r\na\r\n_\r\n");
        out.clear();
        Reply::Nil.encode(&mut out, false);
        Reply::Error("ERR x\r\ny".into()).encode(&mut out, false);
        assert_eq!(out, b"$-1\r\n-ERR x  y\r\n");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(Some((_, used))) = parse(&b) {
                prop_assert!(used <= b.len());
            }
        }

        #[test]
        fn encoded_commands_round_trip(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 1..6)
        ) {
            let mut buf = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                buf.extend_from_slice(a);
                buf.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(parse(&buf).unwrap(), Some((args, buf.len())));
        }
    }
}
