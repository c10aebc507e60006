//! The command line: clap definitions, `--help` text with examples and exit codes, and the
//! entry point the `sst-ingest` binary calls.

use crate::commands;
use crate::error::{ToolError, EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE};
use crate::escape::OutputFormat;
use crate::input::Format;
use crate::key_encoding::Encoding;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  sst-ingest demo
  sst-ingest build --format csv --input data.csv --out bulk/ --target-file-size 64MiB
  sst-ingest build --format csv --input data.csv --out bulk/ --partitions 8
  sst-ingest build --format jsonl --input a.jsonl --input b.jsonl --key-encoding hex --out bulk/
  sst-ingest verify bulk/
  sst-ingest ingest --db /var/lib/siltdb bulk/
  sst-ingest inspect bulk/000001.sst
  sst-ingest dump bulk/000001.sst --limit 10
  sst-ingest db --db /var/lib/siltdb get user:42
  sst-ingest db --db /var/lib/siltdb scan --from user: --to user; --limit 100

Binary keys and values are printed escaped: printable ASCII as is, '\\' as '\\\\', every other
byte as '\\xNN'; '--output hex|base64|raw' prints them otherwise.";

/// sst-ingest: build SST files from CSV/TSV/JSONL, verify and ingest them, and operate a
/// siltdb database.
#[derive(Debug, Parser)]
#[command(name = "sst-ingest", about, long_about = None)]
pub struct Cli {
    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build SST files and bulk_load_metadata.json from CSV, TSV or JSON Lines input.
    Build(BuildArgs),
    /// Check a bulk-load directory: metadata, sizes, checksums, and every SST's blocks.
    Verify(VerifyArgs),
    /// Verify a bulk-load directory, then ingest all its files into a database atomically.
    Ingest(IngestArgs),
    /// Print an SST file's properties and block statistics.
    Inspect(InspectArgs),
    /// Print an SST file's entries, one `KEY<TAB>VALUE` per line (deletions: `KEY` alone).
    Dump(DumpArgs),
    /// Operate a database: get, scan, put, delete, stats, checkpoint, compact.
    Db(DbArgs),
    /// Create a database, load it by writes and by SST ingestion, checkpoint it, and report.
    Demo(DemoArgs),
}

/// Compression of SST data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// No compression.
    None,
    /// LZ4.
    Lz4,
    /// zstd (level from --zstd-level).
    Zstd,
}

/// `build` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Input need not be sorted: records are sorted externally within \
--memory-budget. When a key occurs more than once, the last occurrence (in input order, files in \
the order given) wins, unless --fail-on-duplicate. Nothing is left in --out when the build fails."
)]
pub struct BuildArgs {
    /// Input format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Input file (repeat for several; read in the order given).
    #[arg(long = "input", short = 'i', required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Output directory; must not exist (or be empty).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// CSV/TSV: skip the first record (a header).
    #[arg(long)]
    pub header: bool,
    /// How key fields are encoded.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    pub key_encoding: Encoding,
    /// How value fields are encoded.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    pub value_encoding: Encoding,
    /// Start a new SST file once the current one holds about this many bytes.
    #[arg(long, default_value = "64MiB", value_parser = parse_size_arg, value_name = "BYTES")]
    pub target_file_size: u64,
    /// Block compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// zstd level with --compression zstd.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,
    /// Uncompressed data block size.
    #[arg(long, default_value = "4KiB", value_parser = parse_size_arg, value_name = "BYTES")]
    pub block_size: u64,
    /// Memory for sorting; larger inputs spill sorted runs to disk.
    #[arg(long, default_value = "256MiB", value_parser = parse_size_arg, value_name = "BYTES")]
    pub memory_budget: u64,
    /// Fail (naming the key and both positions) when a key occurs twice.
    #[arg(long)]
    pub fail_on_duplicate: bool,
    /// Directory for sort runs (default: beside --out).
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
    /// Split the records by hash partition (xxh3_64(key) % N, as silt-server routes keys) into
    /// OUT/0 .. OUT/N-1, each with its own SST files and bulk_load_metadata.json: the layout
    /// `silt-admin start-bulk-load` reads for a table of N partitions.
    #[arg(long, value_name = "N")]
    pub partitions: Option<u32>,
}

/// `verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bulk-load directory (holding bulk_load_metadata.json).
    pub dir: PathBuf,
    /// Check sizes and checksums only; do not read every block.
    #[arg(long)]
    pub shallow: bool,
}

/// `ingest` arguments.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The database directory (created if missing).
    #[arg(long, value_name = "DBDIR")]
    pub db: PathBuf,
    /// A bulk-load directory (with `bulk_load_metadata.json`), or one or more loose SST files
    /// (siltdb's or RocksDB's block-based format).
    #[arg(required = true, value_name = "DIR|FILE.sst")]
    pub paths: Vec<PathBuf>,
    /// Remove the ingested SST files (and a bulk-load directory's metadata) once ingested.
    #[arg(long = "move")]
    pub move_files: bool,
}

/// `inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The SST file.
    pub file: PathBuf,
}

/// `dump` arguments.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The SST file.
    pub file: PathBuf,
    /// Print at most N entries.
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<u64>,
    /// How keys and values are printed.
    #[arg(long, value_enum, default_value_t = OutputFormat::Escaped)]
    pub output: OutputFormat,
}

/// `db` arguments.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// The database directory.
    #[arg(long, value_name = "DBDIR")]
    pub db: PathBuf,
    /// How KEY, --from and --to are written on the command line.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8, global = true)]
    pub key_encoding: Encoding,
    /// How VALUE is written on the command line.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8, global = true)]
    pub value_encoding: Encoding,
    /// How keys and values are printed (get: raw prints the exact bytes, no newline).
    #[arg(long, value_enum, default_value_t = OutputFormat::Escaped, global = true)]
    pub output: OutputFormat,
    /// The operation.
    #[command(subcommand)]
    pub op: DbOp,
}

/// `db` operations.
#[derive(Debug, Subcommand)]
pub enum DbOp {
    /// Print the value of KEY alone (exit 1 if missing).
    Get {
        /// The key.
        key: String,
    },
    /// Print `KEY<TAB>VALUE` lines in key order.
    Scan {
        /// First key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// End key (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Print at most N entries.
        #[arg(long, short = 'n')]
        limit: Option<u64>,
        /// Descending key order.
        #[arg(long)]
        reverse: bool,
    },
    /// Set KEY to VALUE (creates the database if missing).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete KEY.
    Delete {
        /// The key.
        key: String,
    },
    /// Print the engine's statistics.
    Stats,
    /// Write a checkpoint (a consistent copy that opens as a database) to DIR.
    Checkpoint {
        /// Must not exist.
        dir: PathBuf,
    },
    /// Compact the whole key range.
    Compact,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the database, the input and the checkpoint (kept). Default: a temporary
    /// directory, removed at the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Rows written through the database and rows loaded through SST files.
    #[arg(long, default_value_t = 200_000)]
    pub rows: u64,
}

fn parse_size_arg(text: &str) -> Result<u64, String> {
    crate::size::parse_size(text)
}

/// The `clap` command with the version line and the help epilogue filled in.
pub fn command() -> clap::Command {
    // The version names the allocator actually linked; computed once per process.
    let version: &'static str = Box::leak(crate::allocator::version_line().into_boxed_str());
    Cli::command()
        .version(version)
        .after_help(format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))
}

/// Parses the process arguments and runs the command; returns the exit code.
pub fn main() -> u8 {
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return EXIT_USAGE;
        }
    };
    match run(cli) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

fn report(error: &ToolError) {
    match error {
        // `db get` of a missing key: the message alone, as the documented contract.
        ToolError::NotFound(message) => eprintln!("sst-ingest: {message}"),
        other => eprintln!("sst-ingest: error: {other}"),
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), ToolError> {
    let progress = crate::progress::Progress::new(cli.quiet);
    match cli.command {
        Command::Build(args) => commands::build(args, &progress),
        Command::Verify(args) => commands::verify(args, &progress),
        Command::Ingest(args) => commands::ingest(args, &progress),
        Command::Inspect(args) => commands::inspect(args),
        Command::Dump(args) => commands::dump(args),
        Command::Db(args) => commands::db::run(args),
        Command::Demo(args) => commands::demo::run(args, &progress),
    }
}
