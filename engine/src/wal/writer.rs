//! Appends records to a log file.

use super::{BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE};
use crate::coding::crc32c_masked;
use crate::fs::WritableFile;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Writes records to a log file; one `append` call (one `write(2)`) per record.
pub struct LogWriter {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    block_offset: usize,
    buf: Vec<u8>,
}

impl LogWriter {
    /// Starts a log in a new (empty) file.
    pub fn new(file: Box<dyn WritableFile>, path: PathBuf) -> Self {
        let block_offset = (file.len() % BLOCK_SIZE as u64) as usize;
        LogWriter {
            file,
            path,
            block_offset,
            buf: Vec::new(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.file.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.file.len() == 0
    }

    /// Appends one record. The bytes reach the OS before this returns.
    pub fn add_record(&mut self, data: &[u8]) -> Result<()> {
        self.buf.clear();
        encode_record(&mut self.buf, &mut self.block_offset, data);
        let r = self.file.append(&self.buf);
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        r.map_err(|e| Error::io(&self.path, e))
    }

    /// Makes every record written so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync().map_err(|e| Error::io(&self.path, e))
    }
}

/// Encodes `data` as fragments into `out`, starting at `block_offset` within the current block.
pub(crate) fn encode_record(out: &mut Vec<u8>, block_offset: &mut usize, data: &[u8]) {
    let mut left = data;
    let mut begin = true;
    loop {
        let room = BLOCK_SIZE - *block_offset;
        if room < HEADER_SIZE {
            out.extend(std::iter::repeat_n(0u8, room));
            *block_offset = 0;
            continue;
        }
        let avail = room - HEADER_SIZE;
        let n = left.len().min(avail);
        let end = n == left.len();
        let kind = match (begin, end) {
            (true, true) => FULL,
            (true, false) => FIRST,
            (false, true) => LAST,
            (false, false) => MIDDLE,
        };
        let (frag, rest) = left.split_at(n);
        let crc = crc32c_masked(&[&[kind], frag]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.push(kind);
        out.extend_from_slice(frag);
        *block_offset += HEADER_SIZE + n;
        left = rest;
        begin = false;
        if end {
            return;
        }
    }
}
