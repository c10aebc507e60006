//! CSV and TSV per RFC 4180, as a small streaming state machine with exact positions.
//!
//! Accepted: fields separated by the separator (`,` or TAB); records ended by LF or CRLF (the
//! last one may lack it); a field wholly enclosed in `"` may hold separators, newlines and
//! quotes written twice (`""`). Blank lines are skipped. Every record must have exactly two
//! fields, key then value. Rejected, with the position of the offending byte: a quote inside an
//! unquoted field, anything but a separator or line end after a closing quote, a carriage
//! return not followed by a line feed outside quotes, an unterminated quoted field (reported at
//! its opening quote), a missing or an extra column, an empty key, and undecodable fields.

use super::MAX_FIELD_BYTES;
use super::{decode_field, decode_key, io_error, InputError, InputOptions, Position, Record};
use crate::key_encoding::Encoding;
use std::io::{BufRead, ErrorKind};

/// Columns a record must have: key and value.
const COLUMNS: usize = 2;

/// Reads `(key, value)` records from CSV or TSV.
pub struct CsvRecords<R: BufRead> {
    source: R,
    file: String,
    separator: u8,
    /// Position of the next unread byte.
    position: Position,
    key_encoding: Encoding,
    value_encoding: Encoding,
    skip_header: bool,
}

/// One field as read, before decoding.
struct Field {
    bytes: Vec<u8>,
    /// Where the field starts (its opening quote, if quoted).
    start: Position,
    quoted: bool,
}

/// What ended a field.
enum FieldEnd {
    Separator,
    /// End of the record; the position of its line terminator (or of the end of the file).
    Record(Position),
}

impl<R: BufRead> CsvRecords<R> {
    /// Reads `source`, named `file` in errors, with fields split on `separator`.
    pub fn new(source: R, file: &str, separator: u8, options: &InputOptions) -> Self {
        CsvRecords {
            source,
            file: file.to_string(),
            separator,
            position: Position::START,
            key_encoding: options.key_encoding,
            value_encoding: options.value_encoding,
            skip_header: options.header,
        }
    }

    /// The next record, `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, InputError> {
        loop {
            let Some((fields, end)) = self.read_fields()? else {
                return Ok(None);
            };
            if self.skip_header {
                self.skip_header = false;
                continue;
            }
            return self.decode(fields, end).map(Some);
        }
    }

    fn decode(&self, mut fields: Vec<Field>, end: Position) -> Result<Record, InputError> {
        if fields.len() < COLUMNS {
            return Err(end.error(
                &self.file,
                "missing value column: expected 2 columns (key,value), found 1",
            ));
        }
        let value_field = fields.pop().expect("two fields checked above");
        let key_field = fields.pop().expect("two fields checked above");
        let key = decode_key(
            &self.file,
            key_field.start,
            text_start(&key_field),
            &key_field.bytes,
            self.key_encoding,
        )?;
        let value = decode_field(
            &self.file,
            text_start(&value_field),
            &value_field.bytes,
            self.value_encoding,
            "value",
        )?;
        Ok(Record {
            key,
            value,
            line: key_field.start.line,
        })
    }

    /// Reads the fields of the next non-blank record and the position where it ends.
    fn read_fields(&mut self) -> Result<Option<(Vec<Field>, Position)>, InputError> {
        if !self.skip_blank_lines()? {
            return Ok(None);
        }
        let mut fields = Vec::with_capacity(COLUMNS);
        loop {
            let start = self.position;
            if fields.len() == COLUMNS {
                // Checked before reading the field so a runaway line never fills memory.
                return Err(start.error(
                    &self.file,
                    "too many columns: expected 2 (key,value); quote fields that contain the separator",
                ));
            }
            let (field, end) = if self.peek()? == Some(b'"') {
                self.quoted_field(start)?
            } else {
                self.unquoted_field(start)?
            };
            fields.push(field);
            if let FieldEnd::Record(at) = end {
                return Ok(Some((fields, at)));
            }
        }
    }

    /// Skips empty lines; false at the end of the input.
    fn skip_blank_lines(&mut self) -> Result<bool, InputError> {
        loop {
            match self.peek()? {
                None => return Ok(false),
                Some(b'\n') => self.bump(b'\n'),
                Some(b'\r') => self.line_end_after_cr()?,
                Some(_) => return Ok(true),
            }
        }
    }

    fn unquoted_field(&mut self, start: Position) -> Result<(Field, FieldEnd), InputError> {
        let separator = self.separator;
        let mut bytes = Vec::new();
        let stop = self.take_until(&mut bytes, start, false, |b| {
            b == separator || b == b'\n' || b == b'\r' || b == b'"'
        })?;
        let field = Field {
            bytes,
            start,
            quoted: false,
        };
        let end = match stop {
            Some(b'"') => {
                return Err(self.position.error(
                    &self.file,
                    "quote inside an unquoted field (enclose the whole field in quotes and double the quotes inside)",
                ))
            }
            other => self.field_end(other)?,
        };
        Ok((field, end))
    }

    fn quoted_field(&mut self, start: Position) -> Result<(Field, FieldEnd), InputError> {
        self.bump(b'"');
        let mut bytes = Vec::new();
        loop {
            match self.take_until(&mut bytes, start, true, |b| b == b'"' || b == b'\n')? {
                None => return Err(start.error(&self.file, "unterminated quoted field")),
                Some(b'\n') => {
                    self.check_length(bytes.len() + 1, start, true)?;
                    bytes.push(b'\n');
                    self.bump(b'\n');
                }
                Some(_) => {
                    self.bump(b'"');
                    if self.peek()? != Some(b'"') {
                        break;
                    }
                    self.check_length(bytes.len() + 1, start, true)?;
                    bytes.push(b'"');
                    self.bump(b'"');
                }
            }
        }
        let next = self.peek()?;
        let field = Field {
            bytes,
            start,
            quoted: true,
        };
        let is_end = match next {
            None | Some(b'\n') | Some(b'\r') => true,
            Some(b) => b == self.separator,
        };
        if !is_end {
            let shown = show_byte(next.unwrap_or(0));
            return Err(self.position.error(
                &self.file,
                format!(
                    "unexpected {shown} after closing quote (quotes inside a quoted field must be doubled)"
                ),
            ));
        }
        let end = self.field_end(next)?;
        Ok((field, end))
    }

    /// Consumes the byte that ended a field (`stop`, already peeked) and says what it was.
    fn field_end(&mut self, stop: Option<u8>) -> Result<FieldEnd, InputError> {
        let at = self.position;
        match stop {
            None => Ok(FieldEnd::Record(at)),
            Some(b'\n') => {
                self.bump(b'\n');
                Ok(FieldEnd::Record(at))
            }
            Some(b'\r') => {
                self.line_end_after_cr()?;
                Ok(FieldEnd::Record(at))
            }
            Some(b) => {
                debug_assert_eq!(b, self.separator);
                self.bump(b);
                Ok(FieldEnd::Separator)
            }
        }
    }

    /// Consumes a CR (peeked) that must be followed by LF.
    fn line_end_after_cr(&mut self) -> Result<(), InputError> {
        let at = self.position;
        self.bump(b'\r');
        if self.peek()? == Some(b'\n') {
            self.bump(b'\n');
            return Ok(());
        }
        Err(at.error(
            &self.file,
            "carriage return not followed by a line feed outside a quoted field",
        ))
    }

    /// Appends bytes to `out` up to (not including) the first byte for which `stop` holds, and
    /// returns that byte, unconsumed; `None` at the end of the input. Scans whole buffers at a
    /// time: the common case is long runs of ordinary bytes.
    fn take_until(
        &mut self,
        out: &mut Vec<u8>,
        field_start: Position,
        quoted: bool,
        stop: impl Fn(u8) -> bool,
    ) -> Result<Option<u8>, InputError> {
        loop {
            let buffer = match self.source.fill_buf() {
                Ok(buffer) => buffer,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&self.file, self.position, &e)),
            };
            if buffer.is_empty() {
                return Ok(None);
            }
            let n = buffer.iter().position(|&b| stop(b)).unwrap_or(buffer.len());
            let stopped_at = buffer.get(n).copied();
            if out.len() + n > MAX_FIELD_BYTES {
                return Err(self.length_error(field_start, quoted));
            }
            out.extend_from_slice(&buffer[..n]);
            self.source.consume(n);
            self.position = self.position.advanced(n);
            if stopped_at.is_some() {
                return Ok(stopped_at);
            }
        }
    }

    fn check_length(&self, len: usize, start: Position, quoted: bool) -> Result<(), InputError> {
        if len > MAX_FIELD_BYTES {
            return Err(self.length_error(start, quoted));
        }
        Ok(())
    }

    fn length_error(&self, start: Position, quoted: bool) -> InputError {
        let hint = if quoted {
            " (unterminated quoted field?)"
        } else {
            ""
        };
        start.error(
            &self.file,
            format!("field longer than {MAX_FIELD_BYTES} bytes{hint}"),
        )
    }

    fn peek(&mut self) -> Result<Option<u8>, InputError> {
        loop {
            match self.source.fill_buf() {
                Ok(buffer) => return Ok(buffer.first().copied()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&self.file, self.position, &e)),
            }
        }
    }

    /// Consumes one byte already seen by `peek`.
    fn bump(&mut self, byte: u8) {
        self.source.consume(1);
        if byte == b'\n' {
            self.position = Position {
                line: self.position.line + 1,
                column: 1,
            };
        } else {
            self.position = self.position.advanced(1);
        }
    }
}

/// Where a field's text starts: after the opening quote of a quoted field.
fn text_start(field: &Field) -> Position {
    if field.quoted {
        field.start.advanced(1)
    } else {
        field.start
    }
}

/// A byte for an error message: `'x'` when printable ASCII, else `byte 0xNN`.
pub(crate) fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_bytes, Format, InputOptions};
    use super::*;

    fn opts(format: Format) -> InputOptions {
        InputOptions {
            format,
            key_encoding: Encoding::Utf8,
            value_encoding: Encoding::Utf8,
            header: false,
        }
    }

    fn parse(data: &str) -> Result<Vec<(String, String, u64)>, String> {
        parse_bytes(data.as_bytes(), "data.csv", &opts(Format::Csv))
            .map(|records| {
                records
                    .into_iter()
                    .map(|r| {
                        let k = String::from_utf8(r.key).unwrap();
                        (k, String::from_utf8(r.value).unwrap(), r.line)
                    })
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn rec(k: &str, v: &str, line: u64) -> (String, String, u64) {
        (k.to_string(), v.to_string(), line)
    }

    #[test]
    fn plain_quoted_and_embedded() {
        let data = "a,1\r\n\"b,c\",\"x \"\"y\"\"\"\n\"multi\nline\",\"v\r\nw\"\n\nlast,\n";
        assert_eq!(
            parse(data).unwrap(),
            vec![
                rec("a", "1", 1),
                rec("b,c", "x \"y\"", 2),
                rec("multi\nline", "v\r\nw", 3),
                rec("last", "", 7),
            ]
        );
        assert_eq!(parse("k,v").unwrap(), vec![rec("k", "v", 1)]);
        assert_eq!(parse("\"\"\"\",\"\"").unwrap(), vec![rec("\"", "", 1)]);
    }

    #[test]
    fn header_is_skipped_and_tsv_uses_tabs() {
        let mut o = opts(Format::Tsv);
        o.header = true;
        let records = parse_bytes(b"key\tvalue\na,b\t2\n", "t.tsv", &o).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key, b"a,b");
        assert_eq!(records[0].line, 2);
    }

    #[test]
    fn errors_have_exact_positions() {
        let cases = [
            (
                "a,1\nb,2\nkey,\"abc\n",
                "data.csv:3:5: unterminated quoted field",
            ),
            ("a,1\nbb\n", "data.csv:2:3: missing value column"),
            ("a,1\nbb", "data.csv:2:3: missing value column"),
            ("a,1,2\n", "data.csv:1:5: too many columns"),
            ("a,b\"c\n", "data.csv:1:4: quote inside an unquoted field"),
            (
                "\"a\"x,1\n",
                "data.csv:1:4: unexpected 'x' after closing quote",
            ),
            ("a,1\n,2\n", "data.csv:2:1: empty key"),
            ("a,1\n\"\",2\n", "data.csv:2:1: empty key"),
            ("a,1\rb,2\n", "data.csv:1:4: carriage return not followed"),
            (
                "\"x\ny\",1\nk,\"2\n",
                "data.csv:3:3: unterminated quoted field",
            ),
        ];
        for (data, want) in cases {
            let got = parse(data).unwrap_err();
            assert!(
                got.starts_with(want),
                "input {data:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn decode_errors_point_into_the_field() {
        let mut o = opts(Format::Csv);
        o.key_encoding = Encoding::Hex;
        let e = parse_bytes(b"00ff,1\nabzz,2\n", "h.csv", &o).unwrap_err();
        assert_eq!(e.to_string(), "h.csv:2:3: key (hex): invalid hex digit 'z'");
        let e = parse_bytes(b"\"0g\",1\n", "h.csv", &o).unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
    }

    /// Random records written with RFC 4180 quoting read back identically, at the right lines.
    #[test]
    fn quoted_writer_round_trips() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = ['a', 'Z', ',', '"', '\n', '\r', '\t', ' ', 'é'];
        for _ in 0..300 {
            let mut text = String::new();
            let mut want = Vec::new();
            let mut line = 1u64;
            for _ in 0..(next() % 8) {
                let mut field = |min: u64| -> String {
                    let len = min + next() % 6;
                    (0..len)
                        .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                        .collect()
                };
                let (key, value) = (field(1), field(0));
                let quote = |f: &str| format!("\"{}\"", f.replace('"', "\"\""));
                text.push_str(&format!("{},{}\r\n", quote(&key), quote(&value)));
                want.push((key.clone(), value.clone(), line));
                line += 1 + (key.matches('\n').count() + value.matches('\n').count()) as u64;
            }
            assert_eq!(parse(&text).unwrap(), want, "input {text:?}");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"a,\"\r\n\t\xff0";
        for _ in 0..20_000 {
            let len = (seed % 12) as usize;
            let mut data = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            for format in [Format::Csv, Format::Tsv, Format::Jsonl] {
                let _ = parse_bytes(&data, "f", &opts(format));
            }
        }
    }
}
