//! Iterates over the sorted, non-overlapping files of one level, opening files lazily.

use super::InternalIterator;
use crate::key::cmp_internal;
use crate::manifest::version::FileMeta;
use crate::sst::{ReadFlags, TableIter};
use crate::table_cache::TableCache;
use crate::{Error, Result};
use std::cmp::Ordering;
use std::sync::Arc;

/// A cursor over one level (L1+), or any list of files sorted and non-overlapping.
pub(crate) struct LevelIter {
    files: Vec<Arc<FileMeta>>,
    tables: Arc<TableCache>,
    flags: ReadFlags,
    index: usize,
    cur: Option<TableIter>,
    err: Option<Error>,
}

impl LevelIter {
    pub(crate) fn new(
        files: Vec<Arc<FileMeta>>,
        tables: Arc<TableCache>,
        flags: ReadFlags,
    ) -> Self {
        LevelIter {
            files,
            tables,
            flags,
            index: 0,
            cur: None,
            err: None,
        }
    }

    fn open(&mut self, index: usize) -> bool {
        self.index = index;
        self.cur = None;
        if index >= self.files.len() || self.err.is_some() {
            return false;
        }
        match self.tables.get(&self.files[index]) {
            Ok(t) => {
                self.cur = Some(t.iter(self.flags));
                true
            }
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    fn cur_valid(&self) -> bool {
        self.cur.as_ref().is_some_and(|c| c.valid())
    }

    fn check_cur_status(&mut self) -> bool {
        if let Some(c) = &self.cur {
            if let Err(e) = c.status() {
                self.err = Some(e);
                self.cur = None;
                return false;
            }
        }
        true
    }

    fn skip_forward(&mut self) {
        while self.cur.is_some() && !self.cur_valid() {
            if !self.check_cur_status() {
                return;
            }
            if self.index + 1 >= self.files.len() {
                self.cur = None;
                return;
            }
            if self.open(self.index + 1) {
                if let Some(c) = self.cur.as_mut() {
                    c.seek_to_first();
                }
            }
        }
    }

    fn skip_backward(&mut self) {
        while self.cur.is_some() && !self.cur_valid() {
            if !self.check_cur_status() {
                return;
            }
            if self.index == 0 {
                self.cur = None;
                return;
            }
            if self.open(self.index - 1) {
                if let Some(c) = self.cur.as_mut() {
                    c.seek_to_last();
                }
            }
        }
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.err.is_none() && self.cur_valid()
    }
    fn seek_to_first(&mut self) {
        if self.open(0) {
            if let Some(c) = self.cur.as_mut() {
                c.seek_to_first();
            }
        }
        self.skip_forward();
    }
    fn seek_to_last(&mut self) {
        if self.files.is_empty() {
            self.cur = None;
            return;
        }
        if self.open(self.files.len() - 1) {
            if let Some(c) = self.cur.as_mut() {
                c.seek_to_last();
            }
        }
        self.skip_backward();
    }
    fn seek(&mut self, target: &[u8]) {
        let i = self
            .files
            .partition_point(|f| cmp_internal(&f.f.largest, target) == Ordering::Less);
        if self.open(i) {
            if let Some(c) = self.cur.as_mut() {
                c.seek(target);
            }
        }
        self.skip_forward();
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        // Last file whose smallest key is <= target.
        let i = self
            .files
            .partition_point(|f| cmp_internal(&f.f.smallest, target) != Ordering::Greater);
        if i == 0 {
            self.cur = None;
            self.index = 0;
            return;
        }
        if self.open(i - 1) {
            if let Some(c) = self.cur.as_mut() {
                c.seek_for_prev(target);
            }
        }
        self.skip_backward();
    }
    fn next(&mut self) {
        if let Some(c) = self.cur.as_mut() {
            c.next();
        }
        self.skip_forward();
    }
    fn prev(&mut self) {
        if let Some(c) = self.cur.as_mut() {
            c.prev();
        }
        self.skip_backward();
    }
    fn key(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |c| c.key())
    }
    fn value(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |c| c.value())
    }
    fn status(&self) -> Result<()> {
        if let Some(e) = &self.err {
            return Err(e.duplicate());
        }
        match &self.cur {
            Some(c) => c.status(),
            None => Ok(()),
        }
    }
}
