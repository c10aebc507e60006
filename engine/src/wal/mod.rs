//! The record log: the WAL and the MANIFEST are both sequences of records in this format.
//!
//! LevelDB-style (`docs/format.md`, "Record log"): the file is a sequence of 32 KiB blocks; a
//! record is split into fragments that never cross a block boundary, each with a 7-byte header:
//!
//! ```text
//! masked crc32c (u32 LE, over type byte + payload) | payload length (u16 LE) | type (u8)
//! type: 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST
//! ```
//! A block tail shorter than a header is zero-filled. Recovery tolerates a torn tail: damage
//! after which no valid fragment follows is the unsynced end of the log and is dropped; damage
//! followed by valid fragments is real corruption.

mod reader;
mod writer;

pub use reader::{read_log, LogRead};
pub use writer::LogWriter;

/// Size of a log block.
pub const BLOCK_SIZE: usize = 32 * 1024;
/// Size of a fragment header.
pub const HEADER_SIZE: usize = 7;

/// Fragment types.
pub(crate) const FULL: u8 = 1;
pub(crate) const FIRST: u8 = 2;
pub(crate) const MIDDLE: u8 = 3;
pub(crate) const LAST: u8 = 4;
