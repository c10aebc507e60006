//! Fuzz target bodies for the `sst-ingest` CLI crate (`siltdb-tools`).
//!
//! The engine's target bodies live in `siltdb::fuzzing` (replayed by
//! `engine/tests/fuzz_corpus.rs`); the CLI's live here because the engine cannot depend on the
//! tools crate. `tests/replay.rs` replays every committed corpus file, the tools' and the
//! engine's, on stable: `cargo test --manifest-path fuzz/Cargo.toml --no-default-features`.

use siltdb_tools::escape::{escape, unescape, OutputFormat};
use siltdb_tools::input::{parse_bytes, Format, InputOptions};
use siltdb_tools::key_encoding::Encoding;
use siltdb_client::bulk_load_metadata::{self as metadata, BulkLoadMetadata};

/// Every tools fuzz target: `(name, entry point)`.
pub const TARGETS: &[(&str, siltdb::fuzzing::Target)] = &[
    ("tools_input", tools_input),
    ("tools_metadata", tools_metadata),
    ("tools_strings", tools_strings),
];

const ENCODINGS: [Encoding; 3] = [Encoding::Utf8, Encoding::Hex, Encoding::Base64];

/// `tools_input`: the CSV/TSV/JSONL input parsers. The first byte picks the format
/// (`% 3`: CSV, TSV, JSONL), the key encoding (`/ 3 % 3`), the value encoding (`/ 9 % 3`) and the
/// header flag (bit 7). Parsed records must have non-empty keys and non-decreasing lines, and must
/// survive a round trip through CSV (hex) and JSONL (base64) text written here.
pub fn tools_input(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let format = [Format::Csv, Format::Tsv, Format::Jsonl][usize::from(sel % 3)];
    let options = InputOptions {
        format,
        key_encoding: ENCODINGS[usize::from(sel / 3 % 3)],
        value_encoding: ENCODINGS[usize::from(sel / 9 % 3)],
        header: sel & 0x80 != 0,
    };
    let records = match parse_bytes(rest, "fuzz", &options) {
        Ok(records) => records,
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "position {e}");
            let _ = e.to_string();
            return;
        }
    };
    let mut line = 0;
    for r in &records {
        assert!(!r.key.is_empty(), "empty key at line {}", r.line);
        assert!(r.line > line, "record lines not increasing");
        line = r.line;
    }
    let pairs: Vec<(&[u8], &[u8])> = records.iter().map(|r| (&r.key[..], &r.value[..])).collect();

    let mut csv = Vec::new();
    for (k, v) in &pairs {
        csv.extend_from_slice(hex::encode(k).as_bytes());
        csv.push(b',');
        csv.extend_from_slice(hex::encode(v).as_bytes());
        csv.push(b'\n');
    }
    let csv_options = InputOptions {
        format: Format::Csv,
        key_encoding: Encoding::Hex,
        value_encoding: Encoding::Hex,
        header: false,
    };
    let again = parse_bytes(&csv, "fuzz.csv", &csv_options).expect("re-parse of written CSV");
    let again: Vec<(&[u8], &[u8])> = again.iter().map(|r| (&r.key[..], &r.value[..])).collect();
    assert_eq!(again, pairs, "CSV round trip");

    let mut jsonl = Vec::new();
    for (k, v) in &pairs {
        let line = serde_json::json!({
            "key": Encoding::Base64.encode(k),
            "value": Encoding::Base64.encode(v),
        });
        jsonl.extend_from_slice(line.to_string().as_bytes());
        jsonl.push(b'\n');
    }
    let jsonl_options = InputOptions {
        format: Format::Jsonl,
        key_encoding: Encoding::Base64,
        value_encoding: Encoding::Base64,
        header: false,
    };
    let again =
        parse_bytes(&jsonl, "fuzz.jsonl", &jsonl_options).expect("re-parse of written JSONL");
    let again: Vec<(&[u8], &[u8])> = again.iter().map(|r| (&r.key[..], &r.value[..])).collect();
    assert_eq!(again, pairs, "JSONL round trip");
}

/// `tools_metadata`: `bulk_load_metadata.json` as `BulkLoadMetadata::from_json` parses it
/// (serde_json then `validate`; the format's one owner, `siltdb_client::bulk_load_metadata`, read
/// by `sst-ingest` and the replicas). Whatever parses must serialize and parse back equal, with
/// the same verdict, and `from_json` must agree with that verdict.
pub fn tools_metadata(data: &[u8]) {
    if data.len() > metadata::MAX_METADATA_BYTES {
        return;
    }
    let Ok(m) = serde_json::from_slice::<BulkLoadMetadata>(data) else {
        return;
    };
    let verdict = m.validate();
    let text = serde_json::to_vec_pretty(&m).expect("serialize metadata");
    let again: BulkLoadMetadata = serde_json::from_slice(&text).expect("re-parse metadata");
    assert_eq!(again, m);
    assert_eq!(again.validate(), verdict);
    assert_eq!(BulkLoadMetadata::from_json(data).is_ok(), verdict.is_ok());
    let _ = m.validate_sst_names();
    for f in &m.files {
        if metadata::is_sst_file_name(&f.name) {
            assert!(metadata::validate_file_name(&f.name).is_ok(), "{:?}", f.name);
        }
    }
}

/// `tools_strings`: the small string codecs. Selector byte `% 4`: 0 = key/value encodings
/// (decode, and encode→decode round trips), 1 = output escaping (`unescape(escape(b)) == b`),
/// 2 = size strings (`parse_size`), 3 = bulk-load file names and every output format.
pub fn tools_strings(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 => {
            for enc in ENCODINGS {
                if let Ok(bytes) = enc.decode(rest) {
                    let text = enc.encode(&bytes);
                    assert_eq!(enc.decode(text.as_bytes()).as_ref(), Ok(&bytes), "{enc:?}");
                } else if let Err(e) = enc.decode(rest) {
                    assert!(e.offset <= rest.len(), "{enc:?} error offset {}", e.offset);
                }
            }
            for enc in [Encoding::Hex, Encoding::Base64] {
                let text = enc.encode(rest);
                assert_eq!(enc.decode(text.as_bytes()).as_deref(), Ok(rest), "{enc:?}");
            }
        }
        1 => {
            assert_eq!(unescape(&escape(rest)).as_deref(), Some(rest));
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Some(bytes) = unescape(text) {
                    assert_eq!(unescape(&escape(&bytes)), Some(bytes));
                }
            }
        }
        2 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(n) = siltdb_tools::size::parse_size(&text) {
                let _ = siltdb_tools::size::human_bytes(n);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if metadata::is_sst_file_name(&text) {
                assert!(text.ends_with(".sst") && !text.contains('/'), "{text:?}");
            }
            for f in [
                OutputFormat::Escaped,
                OutputFormat::Hex,
                OutputFormat::Base64,
                OutputFormat::Raw,
            ] {
                let _ = f.render(rest);
            }
        }
    }
}
