//! JSON Lines: one JSON object per line, `{"key": "...", "value": "..."}`.
//!
//! Both members must be JSON strings; their text is decoded with the key/value encoding. Other
//! members are ignored. Blank lines are skipped. Errors carry the line and the byte column: the
//! column reported by the JSON parser for syntax errors, and the column of the offending
//! member's value for a missing, mistyped, empty or undecodable key or value (the column of the
//! line's first byte when a member is missing).

use super::MAX_FIELD_BYTES;
use super::{decode_field, decode_key, io_error, InputError, InputOptions, Position, Record};
use crate::key_encoding::Encoding;
use std::io::{BufRead, ErrorKind};

/// Reads `(key, value)` records from JSON Lines.
pub struct JsonlRecords<R: BufRead> {
    source: R,
    file: String,
    /// 1-based number of the next line to read.
    line: u64,
    key_encoding: Encoding,
    value_encoding: Encoding,
    buffer: Vec<u8>,
}

impl<R: BufRead> JsonlRecords<R> {
    /// Reads `source`, named `file` in errors.
    pub fn new(source: R, file: &str, options: &InputOptions) -> Self {
        JsonlRecords {
            source,
            file: file.to_string(),
            line: 1,
            key_encoding: options.key_encoding,
            value_encoding: options.value_encoding,
            buffer: Vec::new(),
        }
    }

    /// The next record, `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, InputError> {
        loop {
            let line_number = self.line;
            if !self.read_line()? {
                return Ok(None);
            }
            let mut line = std::mem::take(&mut self.buffer);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let result = if line.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(self.parse_line(&line, line_number))
            };
            self.buffer = line;
            if let Some(record) = result {
                return record.map(Some);
            }
        }
    }

    /// Reads the next line (without its LF) into `self.buffer`; false at the end of the input.
    fn read_line(&mut self) -> Result<bool, InputError> {
        self.buffer.clear();
        let mut saw_any = false;
        loop {
            let available = match self.source.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let at = Position {
                        line: self.line,
                        column: self.buffer.len() as u64 + 1,
                    };
                    return Err(io_error(&self.file, at, &e));
                }
            };
            if available.is_empty() {
                return Ok(saw_any);
            }
            saw_any = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let n = newline.unwrap_or(available.len());
            if self.buffer.len() + n > MAX_FIELD_BYTES {
                let at = Position {
                    line: self.line,
                    column: 1,
                };
                return Err(at.error(
                    &self.file,
                    format!("line longer than {MAX_FIELD_BYTES} bytes"),
                ));
            }
            self.buffer.extend_from_slice(&available[..n]);
            if newline.is_some() {
                self.source.consume(n + 1);
                self.line += 1;
                return Ok(true);
            }
            self.source.consume(n);
        }
    }

    fn parse_line(&self, line: &[u8], line_number: u64) -> Result<Record, InputError> {
        let at = |column: usize| Position {
            line: line_number,
            column: column as u64,
        };
        let object: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
            at(e.column().max(1)).error(&self.file, format!("invalid JSON: {}", json_message(&e)))
        })?;
        let serde_json::Value::Object(map) = object else {
            return Err(at(first_non_blank(line)).error(
                &self.file,
                format!(
                    "expected a JSON object {{\"key\": ..., \"value\": ...}}, found {}",
                    kind_of(&object)
                ),
            ));
        };
        let key_text = self.member_text(&map, "key", line, line_number)?;
        let value_text = self.member_text(&map, "value", line, line_number)?;
        let key_column = member_value_column(line, "key");
        let key = decode_key(
            &self.file,
            at(key_column),
            at(key_column + 1),
            key_text.as_bytes(),
            self.key_encoding,
        )?;
        let value_column = member_value_column(line, "value");
        let value = decode_field(
            &self.file,
            at(value_column + 1),
            value_text.as_bytes(),
            self.value_encoding,
            "value",
        )?;
        Ok(Record {
            key,
            value,
            line: line_number,
        })
    }

    /// The string held by member `name`, or an error naming what is wrong with it.
    fn member_text<'m>(
        &self,
        map: &'m serde_json::Map<String, serde_json::Value>,
        name: &str,
        line: &[u8],
        line_number: u64,
    ) -> Result<&'m str, InputError> {
        match map.get(name) {
            Some(serde_json::Value::String(text)) => Ok(text),
            Some(other) => {
                let at = Position {
                    line: line_number,
                    column: member_value_column(line, name) as u64,
                };
                Err(at.error(
                    &self.file,
                    format!("\"{name}\" must be a JSON string, found {}", kind_of(other)),
                ))
            }
            None => {
                let at = Position {
                    line: line_number,
                    column: first_non_blank(line) as u64,
                };
                Err(at.error(&self.file, format!("missing \"{name}\" member")))
            }
        }
    }
}

/// serde_json's message without its trailing " at line L column C" (we print our own).
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// 1-based column of the first non-whitespace byte.
fn first_non_blank(line: &[u8]) -> usize {
    line.iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0)
        + 1
}

/// 1-based column where the value of the last top-level member spelled exactly `"name"` starts,
/// in a line already known to be a valid JSON object. Falls back to the first non-blank column
/// (e.g. when the member name is written with escapes).
pub(crate) fn member_value_column(line: &[u8], name: &str) -> usize {
    let mut scanner = Scanner { line, at: 0 };
    let mut found = None;
    scanner.skip_ws();
    if !scanner.eat(b'{') {
        return first_non_blank(line);
    }
    loop {
        scanner.skip_ws();
        let Some(member) = scanner.string() else {
            break;
        };
        scanner.skip_ws();
        if !scanner.eat(b':') {
            break;
        }
        scanner.skip_ws();
        if member.len() == name.len() + 2 && &member[1..member.len() - 1] == name.as_bytes() {
            found = Some(scanner.at + 1);
        }
        scanner.skip_value();
        scanner.skip_ws();
        if !scanner.eat(b',') {
            break;
        }
    }
    found.unwrap_or_else(|| first_non_blank(line))
}

/// A minimal cursor over a valid JSON text; every access is bounds-checked.
struct Scanner<'a> {
    line: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            return true;
        }
        false
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// A string token including its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        if !self.eat(b'"') {
            return None;
        }
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => return self.line.get(start..self.at),
                _ => {}
            }
        }
        None
    }

    fn skip_value(&mut self) {
        let mut depth = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    if self.string().is_none() {
                        return;
                    }
                    if depth == 0 {
                        return;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return;
                    }
                }
                b',' if depth == 0 => return,
                _ => {}
            }
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_bytes, Format, InputOptions};
    use super::*;

    fn opts(key_encoding: Encoding) -> InputOptions {
        InputOptions {
            format: Format::Jsonl,
            key_encoding,
            value_encoding: Encoding::Utf8,
            header: false,
        }
    }

    #[test]
    fn reads_objects_and_skips_blank_lines() {
        let data = b"{\"key\":\"a\",\"value\":\"1\"}\n\n  \r\n{\"value\":\"x\\ny\",\"extra\":[1,{\"key\":2}],\"key\":\"b\"}\r\n";
        let records = parse_bytes(data, "d.jsonl", &opts(Encoding::Utf8)).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[1].key.as_slice(), records[1].line), (&b"b"[..], 4));
        assert_eq!(records[1].value, b"x\ny");
    }

    #[test]
    fn errors_have_exact_positions() {
        let cases: [(&[u8], Encoding, &str); 7] = [
            (
                b"{\"key\":\"a\",\"value\":\"1\"}\n{\"key\": \"b\", \"value\": }\n",
                Encoding::Utf8,
                "d.jsonl:2:23: invalid JSON",
            ),
            (
                b"{\"key\":\"a\"}\n",
                Encoding::Utf8,
                "d.jsonl:1:1: missing \"value\" member",
            ),
            (
                b"  {\"value\":\"a\"}\n",
                Encoding::Utf8,
                "d.jsonl:1:3: missing \"key\" member",
            ),
            (
                b"{\"key\":5,\"value\":\"1\"}",
                Encoding::Utf8,
                "d.jsonl:1:8: \"key\" must be a JSON string, found a number",
            ),
            (
                b"{\"key\": \"\", \"value\":\"1\"}",
                Encoding::Utf8,
                "d.jsonl:1:9: empty key",
            ),
            (
                b"{\"key\": \"0x\", \"value\":\"1\"}",
                Encoding::Hex,
                "d.jsonl:1:11: key (hex): invalid hex digit 'x'",
            ),
            (
                b"[1,2]\n",
                Encoding::Utf8,
                "d.jsonl:1:1: expected a JSON object",
            ),
        ];
        for (data, enc, want) in cases {
            let got = parse_bytes(data, "d.jsonl", &opts(enc))
                .unwrap_err()
                .to_string();
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn member_columns() {
        let line = br#"{"a": {"key": 1}, "key" : "x", "value":"y"}"#;
        assert_eq!(member_value_column(line, "key"), 27);
        assert_eq!(member_value_column(line, "value"), 40);
        assert_eq!(member_value_column(b"not json", "key"), 1);
    }
}
