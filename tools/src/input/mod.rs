//! Input files: CSV/TSV (RFC 4180) and JSON Lines, turned into `(key, value)` records.
//!
//! Every error names the file, the 1-based line and the 1-based column (counted in bytes) where
//! the problem is, formatted `file:line:column: message` like a compiler diagnostic. The parsers
//! stream from any [`BufRead`], hold at most one record in memory, and never panic on arbitrary
//! bytes: [`parse_bytes`] is the entry point a fuzz target calls.

pub mod csv;
pub mod jsonl;

use crate::key_encoding::{DecodeError, Encoding};
use std::fmt;
use std::io::BufRead;

/// Largest single field (CSV) or line (JSONL) accepted. A bound so that an unterminated quote
/// in a huge file is reported instead of swallowing the rest of the file into memory.
pub const MAX_FIELD_BYTES: usize = 64 << 20;

/// The input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values, RFC 4180: columns `key,value`.
    Csv,
    /// Tab-separated values with RFC 4180 quoting: columns `key<TAB>value`.
    Tsv,
    /// JSON Lines: one object `{"key": "...", "value": "..."}` per line.
    Jsonl,
}

/// How the records of one input are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputOptions {
    /// The file format.
    pub format: Format,
    /// How key text becomes key bytes.
    pub key_encoding: Encoding,
    /// How value text becomes value bytes.
    pub value_encoding: Encoding,
    /// CSV/TSV: the first record is a header and is skipped. Ignored for JSONL.
    pub header: bool,
}

/// One `(key, value)` pair read from an input, with the line it started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The decoded key (never empty).
    pub key: Vec<u8>,
    /// The decoded value (may be empty).
    pub value: Vec<u8>,
    /// 1-based line where the record starts.
    pub line: u64,
}

/// What kind of problem an [`InputError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputErrorKind {
    /// The data is malformed (syntax, columns, encoding, empty key).
    Syntax,
    /// Reading the file failed at the OS level.
    Io,
}

/// A problem in an input file, at an exact position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file as named on the command line.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in bytes from the start of the line.
    pub column: u64,
    /// What is wrong.
    pub message: String,
    /// Malformed data or an I/O failure.
    pub kind: InputErrorKind,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for InputError {}

/// A line/column position in an input file (both 1-based; columns count bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column in bytes.
    pub column: u64,
}

impl Position {
    /// The first byte of a file.
    pub const START: Position = Position { line: 1, column: 1 };

    /// The position `bytes` bytes further along the same line.
    pub fn advanced(self, bytes: usize) -> Position {
        Position {
            line: self.line,
            column: self.column.saturating_add(bytes as u64),
        }
    }

    /// A syntax error at this position.
    pub fn error(self, file: &str, message: impl Into<String>) -> InputError {
        InputError {
            file: file.to_string(),
            line: self.line,
            column: self.column,
            message: message.into(),
            kind: InputErrorKind::Syntax,
        }
    }
}

/// Decodes a key field whose text starts at `text_at` (after any opening quote) and whose field
/// starts at `field_at`; an empty key is an error reported at `field_at`.
pub(crate) fn decode_key(
    file: &str,
    field_at: Position,
    text_at: Position,
    text: &[u8],
    encoding: Encoding,
) -> Result<Vec<u8>, InputError> {
    let key = decode_field(file, text_at, text, encoding, "key")?;
    if key.is_empty() {
        return Err(field_at.error(file, "empty key (keys must be at least one byte)"));
    }
    Ok(key)
}

/// Decodes a field that starts at `at`, naming the field (`key`/`value`) in errors.
pub(crate) fn decode_field(
    file: &str,
    at: Position,
    text: &[u8],
    encoding: Encoding,
    what: &str,
) -> Result<Vec<u8>, InputError> {
    encoding
        .decode(text)
        .map_err(|DecodeError { offset, message }| {
            at.advanced(offset)
                .error(file, format!("{what} ({}): {message}", encoding.name()))
        })
}

/// Reads records from one input, whatever its format.
pub enum RecordReader<R: BufRead> {
    /// CSV or TSV.
    Csv(csv::CsvRecords<R>),
    /// JSON Lines.
    Jsonl(jsonl::JsonlRecords<R>),
}

impl<R: BufRead> RecordReader<R> {
    /// Reads `source` (named `file` in errors) as described by `options`.
    pub fn new(source: R, file: &str, options: &InputOptions) -> Self {
        match options.format {
            Format::Csv => RecordReader::Csv(csv::CsvRecords::new(source, file, b',', options)),
            Format::Tsv => RecordReader::Csv(csv::CsvRecords::new(source, file, b'\t', options)),
            Format::Jsonl => RecordReader::Jsonl(jsonl::JsonlRecords::new(source, file, options)),
        }
    }

    /// The next record, `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, InputError> {
        match self {
            RecordReader::Csv(r) => r.next_record(),
            RecordReader::Jsonl(r) => r.next_record(),
        }
    }
}

/// Parses a whole input held in memory. The fuzzing entry point: never panics on any bytes.
pub fn parse_bytes(
    data: &[u8],
    file: &str,
    options: &InputOptions,
) -> Result<Vec<Record>, InputError> {
    let mut reader = RecordReader::new(data, file, options);
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    Ok(records)
}

/// An I/O error at a position.
pub(crate) fn io_error(file: &str, at: Position, err: &std::io::Error) -> InputError {
    InputError {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        message: format!("read error: {err}"),
        kind: InputErrorKind::Io,
    }
}
