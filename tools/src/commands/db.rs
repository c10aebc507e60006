//! `sst-ingest db --db DBDIR ...`: operate a database from the shell.

use super::{out_flush, out_line};
use crate::cli::{DbArgs, DbOp};
use crate::error::{ToolError, ToolResult};
use crate::key_encoding::Encoding;
use siltdb::{Db, Options, ReadOptions};
use std::io::Write;
use std::path::Path;

/// Opens the database at `path`; without `create`, a directory holding no database (no
/// `CURRENT` file) is reported as not found instead of being created.
pub fn open(path: &Path, create: bool) -> ToolResult<Db> {
    if !create && !path.join("CURRENT").exists() {
        return Err(ToolError::NotFound(format!(
            "no database at {} (no CURRENT file)",
            path.display()
        )));
    }
    let options = Options {
        create_if_missing: create,
        ..Default::default()
    };
    Db::open(path, options)
        .map_err(|e| ToolError::engine(format!("opening database {}", path.display()), e))
}

fn decode_arg(text: &str, encoding: Encoding, what: &str) -> ToolResult<Vec<u8>> {
    encoding.decode(text.as_bytes()).map_err(|e| {
        ToolError::Usage(format!(
            "{what} {text:?} ({}): {} at byte {}",
            encoding.name(),
            e.message,
            e.offset
        ))
    })
}

/// Runs one `db` operation.
pub fn run(args: DbArgs) -> ToolResult<()> {
    let create = matches!(args.op, DbOp::Put { .. });
    let db = open(&args.db, create)?;
    let result = run_op(&db, &args);
    let closed = db
        .close()
        .map_err(|e| ToolError::engine("closing the database", e));
    result.and(closed)
}

fn run_op(db: &Db, args: &DbArgs) -> ToolResult<()> {
    let key_arg = |text: &str| decode_arg(text, args.key_encoding, "key");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match &args.op {
        DbOp::Get { key } => {
            let key_bytes = key_arg(key)?;
            let value = db
                .get(&key_bytes)
                .map_err(|e| ToolError::engine(format!("get {key:?}"), e))?;
            let Some(value) = value else {
                return Err(ToolError::NotFound(format!("key not found: {key}")));
            };
            let rendered = args.output.render(value.as_ref());
            if args.output == crate::escape::OutputFormat::Raw {
                out.write_all(&rendered)
                    .map_err(|e| ToolError::io("<stdout>", e))?;
            } else {
                out_line(&mut out, &rendered)?;
            }
        }
        DbOp::Scan {
            from,
            to,
            limit,
            reverse,
        } => {
            let options = ReadOptions {
                lower_bound: from.as_deref().map(key_arg).transpose()?,
                upper_bound: to.as_deref().map(key_arg).transpose()?,
                ..Default::default()
            };
            scan(db, &options, *limit, *reverse, args.output, &mut out)?;
        }
        DbOp::Put { key, value } => {
            let value_bytes = decode_arg(value, args.value_encoding, "value")?;
            db.put(key_arg(key)?, value_bytes)
                .map_err(|e| ToolError::engine(format!("put {key:?}"), e))?;
        }
        DbOp::Delete { key } => {
            db.delete(key_arg(key)?)
                .map_err(|e| ToolError::engine(format!("delete {key:?}"), e))?;
        }
        DbOp::Stats => {
            let stats = db
                .property("siltdb.stats")
                .unwrap_or_else(|| "(the engine reports no siltdb.stats)".to_string());
            out_line(&mut out, stats.trim_end().as_bytes())?;
        }
        DbOp::Checkpoint { dir } => {
            let info = db
                .checkpoint(dir)
                .map_err(|e| ToolError::engine(format!("checkpoint to {}", dir.display()), e))?;
            let line = format!(
                "checkpoint written to {}: seqno {}, {} SST files, {}",
                dir.display(),
                info.seqno,
                info.files,
                crate::size::human_bytes(info.bytes)
            );
            out_line(&mut out, line.as_bytes())?;
        }
        DbOp::Compact => {
            db.compact_range(None::<&[u8]>, None::<&[u8]>)
                .map_err(|e| ToolError::engine("compact", e))?;
        }
    }
    out_flush(&mut out)
}

fn scan(
    db: &Db,
    options: &ReadOptions,
    limit: Option<u64>,
    reverse: bool,
    output: crate::escape::OutputFormat,
    out: &mut impl Write,
) -> ToolResult<()> {
    let iter = db.iter(options);
    let items: Box<dyn Iterator<Item = siltdb::Result<_>>> = if reverse {
        Box::new(iter.rev())
    } else {
        Box::new(iter)
    };
    for item in items.take(limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX))) {
        let (key, value) = item.map_err(|e| ToolError::engine("scan", e))?;
        let mut line = output.render(key.as_ref());
        line.push(b'\t');
        line.extend_from_slice(&output.render(value.as_ref()));
        out_line(out, &line)?;
    }
    Ok(())
}
