//! An arena skiplist for the memtable: keys and values live inline in one arena allocation per
//! entry, one writer at a time inserts, any number of readers search and iterate without locks.
//!
//! The design is LevelDB's `SkipList` (and RocksDB's `InlineSkipList`): a node is
//!
//! ```text
//! | key_len u32 | value_len u32 | height u32 | pad u32 | next[height]: AtomicPtr<Node> | key | value |
//! ```
//! allocated from 1 MiB arena chunks that are freed only when the whole list is dropped. A node is
//! fully written before it is published with a `Release` store into its predecessors' `next`
//! pointers (level 0 first), and readers load `next` with `Acquire`, so a reader that reaches a node
//! sees its contents. Nodes are never removed or moved. Compared with `crossbeam-skiplist` (one
//! global allocation per node plus a separate key `Vec`, epoch reclamation), each comparison
//! touches one cache line fewer and inserts allocate nothing from the global allocator.

use parking_lot::Mutex;
use std::cmp::Ordering;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering as AtomicOrdering};

/// Tallest tower.
const MAX_HEIGHT: usize = 12;
/// 1 in `BRANCHING` nodes of height h also has height h+1.
const BRANCHING: u32 = 4;
/// Arena chunk size; larger entries get a chunk of their own.
const CHUNK_BYTES: usize = 1 << 20;
/// The first chunk of a memtable's arena; each later one doubles up to [`CHUNK_BYTES`]. An
/// empty memtable then costs 4 KiB, not 1 MiB: a node hosting hundreds of mostly idle
/// replicas would otherwise hold a megabyte per replica for nothing.
const FIRST_CHUNK_BYTES: usize = 4 << 10;
/// Most bytes of freed arena chunks kept for the next memtable, process-wide. A memtable's
/// chunks are freed when it has been flushed; without reuse the next memtable faults every
/// page in again and the kernel zeroes it (about a tenth of a random-write workload's time).
/// Bounded so that closed or idle databases do not pin more than this.
const MAX_CHUNK_POOL_BYTES: usize = 64 << 20;

/// Freed chunks of exactly [`CHUNK_BYTES`], waiting for reuse.
static CHUNK_POOL: std::sync::Mutex<Vec<Box<[u64]>>> = std::sync::Mutex::new(Vec::new());

fn chunk_pool() -> std::sync::MutexGuard<'static, Vec<Box<[u64]>>> {
    // A panic while holding the lock cannot leave the vector inconsistent: keep using it.
    CHUNK_POOL.lock().unwrap_or_else(|e| e.into_inner())
}

#[repr(C)]
struct Node {
    key_len: u32,
    value_len: u32,
    height: u32,
    _pad: u32,
    // `height` AtomicPtr<Node> follow, then the key, then the value.
}

const NODE_HEADER: usize = size_of::<Node>();

impl Node {
    /// # Safety
    /// `node` points at a fully initialised node and `level < height`.
    unsafe fn next_slot(node: *const Node, level: usize) -> *const AtomicPtr<Node> {
        // SAFETY: the caller guarantees `node` is a live node with at least `level + 1` slots,
        // laid out right after the header (see `Arena::alloc_node`).
        unsafe {
            (node as *const u8)
                .add(NODE_HEADER)
                .cast::<AtomicPtr<Node>>()
                .add(level)
        }
    }

    /// # Safety
    /// As for `next_slot`.
    unsafe fn next(node: *const Node, level: usize) -> *mut Node {
        // SAFETY: forwarded contract; Acquire pairs with the Release in `set_next`.
        unsafe { (*Node::next_slot(node, level)).load(AtomicOrdering::Acquire) }
    }

    /// # Safety
    /// As for `next_slot`.
    unsafe fn set_next(node: *const Node, level: usize, to: *mut Node) {
        // SAFETY: forwarded contract.
        unsafe { (*Node::next_slot(node, level)).store(to, AtomicOrdering::Release) }
    }

    /// # Safety
    /// `node` points at a fully initialised, non-head node.
    unsafe fn key<'a>(node: *const Node) -> &'a [u8] {
        // SAFETY: the key bytes follow the `height` next pointers and were written before the node
        // was published; the arena outlives every reference handed out (tied to the list).
        unsafe {
            let h = (*node).height as usize;
            let at = (node as *const u8).add(NODE_HEADER + h * size_of::<AtomicPtr<Node>>());
            std::slice::from_raw_parts(at, (*node).key_len as usize)
        }
    }

    /// # Safety
    /// As for `key`.
    unsafe fn value<'a>(node: *const Node) -> &'a [u8] {
        // SAFETY: the value follows the key; same reasoning as `key`.
        unsafe {
            let h = (*node).height as usize;
            let at = (node as *const u8)
                .add(NODE_HEADER + h * size_of::<AtomicPtr<Node>>() + (*node).key_len as usize);
            std::slice::from_raw_parts(at, (*node).value_len as usize)
        }
    }
}

/// Chunks of memory that never move and are freed together.
struct Arena {
    chunks: Vec<Box<[u64]>>,
    /// Free bytes at the end of the last chunk start at `cursor`.
    cursor: *mut u8,
    end: *mut u8,
}

impl Arena {
    fn alloc(&mut self, bytes: usize) -> *mut u8 {
        let bytes = bytes.next_multiple_of(align_of::<u64>());
        let room = self.end as usize - self.cursor as usize;
        if bytes > room {
            let step = match self.chunks.last() {
                None => FIRST_CHUNK_BYTES,
                Some(c) => (c.len() * size_of::<u64>() * 2).min(CHUNK_BYTES),
            };
            let words = bytes.max(step).div_ceil(size_of::<u64>());
            let recycled = if step == CHUNK_BYTES && bytes <= CHUNK_BYTES {
                chunk_pool().pop()
            } else {
                None
            };
            // A recycled chunk holds old nodes' bytes: harmless, every node is fully written
            // before it is linked (`alloc_node`).
            let mut chunk = recycled.unwrap_or_else(|| vec![0u64; words].into_boxed_slice());
            debug_assert!(chunk.len() >= words);
            let words = chunk.len();
            let start = chunk.as_mut_ptr().cast::<u8>();
            // SAFETY: `start .. start + words * 8` is the chunk just taken (new or recycled),
            // which this arena now owns.
            self.end = unsafe { start.add(words * size_of::<u64>()) };
            self.cursor = start;
            self.chunks.push(chunk);
        }
        let out = self.cursor;
        // SAFETY: `bytes <= end - cursor` now, so the result stays inside the chunk.
        self.cursor = unsafe { self.cursor.add(bytes) };
        out
    }

    fn alloc_node(&mut self, height: usize, key: &[u8], value: &[u8]) -> *mut Node {
        let size = NODE_HEADER + height * size_of::<AtomicPtr<Node>>() + key.len() + value.len();
        let p = self.alloc(size);
        let node = p.cast::<Node>();
        // SAFETY: `p` is 8-aligned, `size` bytes long and exclusively ours; we initialise the
        // header, every next pointer (null), the key and the value before anyone can see it.
        unsafe {
            node.write(Node {
                key_len: key.len() as u32,
                value_len: value.len() as u32,
                height: height as u32,
                _pad: 0,
            });
            for l in 0..height {
                let slot = p.add(NODE_HEADER).cast::<AtomicPtr<Node>>().add(l);
                slot.write(AtomicPtr::new(ptr::null_mut()));
            }
            let kp = p.add(NODE_HEADER + height * size_of::<AtomicPtr<Node>>());
            ptr::copy_nonoverlapping(key.as_ptr(), kp, key.len());
            ptr::copy_nonoverlapping(value.as_ptr(), kp.add(key.len()), value.len());
        }
        node
    }
}

/// The order a [`SkipList`] keeps its keys in. A type rather than a function pointer so that
/// the comparison inlines into the search loop (it runs about twenty times per insert).
pub(crate) trait KeyOrder {
    /// Compares two keys.
    fn cmp(a: &[u8], b: &[u8]) -> Ordering;
}

impl Drop for Arena {
    fn drop(&mut self) {
        let mut pool = chunk_pool();
        for chunk in self.chunks.drain(..) {
            if chunk.len() * size_of::<u64>() == CHUNK_BYTES
                && (pool.len() + 1) * CHUNK_BYTES <= MAX_CHUNK_POOL_BYTES
            {
                pool.push(chunk);
            }
        }
    }
}

/// A concurrent skiplist of `(key, value)` byte strings ordered by `O`.
pub(crate) struct SkipList<O: KeyOrder> {
    head: *mut Node,
    max_height: AtomicUsize,
    len: AtomicUsize,
    order: PhantomData<fn() -> O>,
    /// The writer's state: inserts are serialised by this lock; readers never take it.
    writer: Mutex<Writer>,
}

struct Writer {
    arena: Arena,
    rng: u32,
    /// Reused buffer for keys composed by [`SkipList::insert_composed`].
    scratch: Vec<u8>,
    /// The last node inserted (null before the first insert) and its predecessor at every
    /// level (the node itself at the levels it has): RocksDB's "splice". A key that lands
    /// right after the last one (sequential inserts) needs no search from the head.
    last: *mut Node,
    splice: [*mut Node; MAX_HEIGHT],
}

// SAFETY: the raw pointers point into the arena owned by `writer` (boxed chunks that never move
// and are freed only on drop). Mutation of shared node links happens only through atomics, and
// allocation only under the `writer` lock, so the list may be shared and sent across threads.
unsafe impl<O: KeyOrder> Send for SkipList<O> {}
// SAFETY: see `Send`.
unsafe impl<O: KeyOrder> Sync for SkipList<O> {}

impl<O: KeyOrder> SkipList<O> {
    pub(crate) fn new() -> Self {
        let mut arena = Arena {
            chunks: Vec::new(),
            cursor: ptr::null_mut(),
            end: ptr::null_mut(),
        };
        let head = arena.alloc_node(MAX_HEIGHT, &[], &[]);
        SkipList {
            head,
            max_height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            order: PhantomData,
            writer: Mutex::new(Writer {
                arena,
                rng: 0x2545_f491,
                scratch: Vec::new(),
                last: ptr::null_mut(),
                splice: [head; MAX_HEIGHT],
            }),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(AtomicOrdering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key_is_after(&self, node: *mut Node, key: &[u8]) -> bool {
        // SAFETY: non-null nodes reached from the list are initialised, non-head nodes.
        !node.is_null() && O::cmp(unsafe { Node::key(node) }, key) == Ordering::Less
    }

    /// First node `>= key`, filling `prev` with the last node `< key` at each level.
    fn find_ge(&self, key: &[u8], mut prev: Option<&mut [*mut Node; MAX_HEIGHT]>) -> *mut Node {
        let mut x = self.head;
        let mut level = self.max_height.load(AtomicOrdering::Acquire) - 1;
        loop {
            // SAFETY: `x` is the head or a node reached through the list; level < its height.
            let next = unsafe { Node::next(x, level) };
            if self.key_is_after(next, key) {
                x = next;
                continue;
            }
            if let Some(p) = prev.as_deref_mut() {
                p[level] = x;
            }
            if level == 0 {
                return next;
            }
            level -= 1;
        }
    }

    /// Last node `< key`, or null.
    fn find_lt(&self, key: &[u8]) -> *mut Node {
        let mut x = self.head;
        let mut level = self.max_height.load(AtomicOrdering::Acquire) - 1;
        loop {
            // SAFETY: as in `find_ge`.
            let next = unsafe { Node::next(x, level) };
            if self.key_is_after(next, key) {
                x = next;
                continue;
            }
            if level == 0 {
                return if x == self.head { ptr::null_mut() } else { x };
            }
            level -= 1;
        }
    }

    /// Last node `<= key`, or null.
    fn find_le(&self, key: &[u8]) -> *mut Node {
        let ge = self.find_ge(key, None);
        // SAFETY: non-null nodes from the list are initialised.
        if !ge.is_null() && O::cmp(unsafe { Node::key(ge) }, key) == Ordering::Equal {
            return ge;
        }
        self.find_lt(key)
    }

    fn find_last(&self) -> *mut Node {
        let mut x = self.head;
        let mut level = self.max_height.load(AtomicOrdering::Acquire) - 1;
        loop {
            // SAFETY: as in `find_ge`.
            let next = unsafe { Node::next(x, level) };
            if !next.is_null() {
                x = next;
                continue;
            }
            if level == 0 {
                return if x == self.head { ptr::null_mut() } else { x };
            }
            level -= 1;
        }
    }

    /// Inserts `(key, value)`. A key equal to an existing one is ignored (keys are unique
    /// internal keys). Returns true if inserted.
    #[cfg(test)]
    pub(crate) fn insert(&self, key: &[u8], value: &[u8]) -> bool {
        let mut w = self.writer.lock();
        self.insert_locked(&mut w, key, value)
    }

    /// [`SkipList::insert`] of a key that `compose` appends to an empty buffer: the memtable
    /// builds internal keys here without allocating one per insert.
    pub(crate) fn insert_composed(&self, compose: impl FnOnce(&mut Vec<u8>), value: &[u8]) -> bool {
        let mut w = self.writer.lock();
        let mut key = std::mem::take(&mut w.scratch);
        key.clear();
        compose(&mut key);
        let inserted = self.insert_locked(&mut w, &key, value);
        w.scratch = key;
        inserted
    }

    /// The successor of the last inserted node if `key` goes right after it; then every
    /// level's predecessor is the splice (no node lies between the last key and `key` at level
    /// 0, hence at no level).
    fn after_last(&self, w: &Writer, key: &[u8]) -> Option<*mut Node> {
        if w.last.is_null() || !self.key_is_after(w.last, key) {
            return None;
        }
        // SAFETY: `last` is a node of this list (inserted under this lock; never removed).
        let next = unsafe { Node::next(w.last, 0) };
        // SAFETY: non-null nodes reached from the list are initialised.
        let tight = next.is_null() || O::cmp(key, unsafe { Node::key(next) }) != Ordering::Greater;
        tight.then_some(next)
    }

    fn insert_locked(&self, w: &mut Writer, key: &[u8], value: &[u8]) -> bool {
        let mut prev = [self.head; MAX_HEIGHT];
        let ge = match self.after_last(w, key) {
            Some(next) => {
                prev = w.splice;
                next
            }
            None => self.find_ge(key, Some(&mut prev)),
        };
        // SAFETY: non-null nodes from the list are initialised.
        if !ge.is_null() && O::cmp(unsafe { Node::key(ge) }, key) == Ordering::Equal {
            return false;
        }
        let mut height = 1;
        while height < MAX_HEIGHT {
            w.rng ^= w.rng << 13;
            w.rng ^= w.rng >> 17;
            w.rng ^= w.rng << 5;
            if !w.rng.is_multiple_of(BRANCHING) {
                break;
            }
            height += 1;
        }
        let max = self.max_height.load(AtomicOrdering::Relaxed);
        if height > max {
            // `prev` already holds the head for the new levels. Readers that see the new height
            // before the links find null at those levels of the head and step down: harmless.
            self.max_height.store(height, AtomicOrdering::Release);
        }
        let node = w.arena.alloc_node(height, key, value);
        for (level, p) in prev.iter().enumerate().take(height) {
            // SAFETY: `node` is initialised and has `height` levels; `p` is the head or a list
            // node whose height exceeds `level` (it was recorded at that level by `find_ge`).
            // The new node's link is set before it is published (Release in `set_next`).
            unsafe {
                Node::set_next(node, level, Node::next(*p, level));
                Node::set_next(*p, level, node);
            }
        }
        for (level, s) in w.splice.iter_mut().enumerate() {
            *s = if level < height { node } else { prev[level] };
        }
        w.last = node;
        self.len.fetch_add(1, AtomicOrdering::Release);
        true
    }

    /// Bytes held by the arena.
    #[cfg(test)]
    pub(crate) fn arena_bytes(&self) -> usize {
        self.writer
            .lock()
            .arena
            .chunks
            .iter()
            .map(|c| c.len() * 8)
            .sum()
    }
}

/// A position in a [`SkipList`]. Valid as long as the list it came from is alive; the memtable
/// iterator keeps the list alive by holding its `Arc`.
#[derive(Clone, Copy)]
pub(crate) struct Cursor {
    node: *mut Node,
}

// SAFETY: a cursor is a pointer into an immutable node of a `Sync` list.
unsafe impl Send for Cursor {}

impl Cursor {
    pub(crate) const NONE: Cursor = Cursor {
        node: ptr::null_mut(),
    };

    pub(crate) fn valid(&self) -> bool {
        !self.node.is_null()
    }

    /// # Safety
    /// The list this cursor points into is alive for `'a`.
    pub(crate) unsafe fn key<'a>(&self) -> &'a [u8] {
        if self.node.is_null() {
            return &[];
        }
        // SAFETY: forwarded contract; the node is initialised.
        unsafe { Node::key(self.node) }
    }

    /// # Safety
    /// As for `key`.
    pub(crate) unsafe fn value<'a>(&self) -> &'a [u8] {
        if self.node.is_null() {
            return &[];
        }
        // SAFETY: forwarded contract; the node is initialised.
        unsafe { Node::value(self.node) }
    }
}

impl<O: KeyOrder> SkipList<O> {
    pub(crate) fn first(&self) -> Cursor {
        // SAFETY: the head has MAX_HEIGHT levels.
        Cursor {
            node: unsafe { Node::next(self.head, 0) },
        }
    }
    pub(crate) fn last(&self) -> Cursor {
        Cursor {
            node: self.find_last(),
        }
    }
    pub(crate) fn seek(&self, key: &[u8]) -> Cursor {
        Cursor {
            node: self.find_ge(key, None),
        }
    }
    pub(crate) fn seek_for_prev(&self, key: &[u8]) -> Cursor {
        Cursor {
            node: self.find_le(key),
        }
    }
    /// The cursor after `c` (`c` must come from this list).
    pub(crate) fn next(&self, c: Cursor) -> Cursor {
        if c.node.is_null() {
            return c;
        }
        // SAFETY: `c` points at a live node of this list.
        Cursor {
            node: unsafe { Node::next(c.node, 0) },
        }
    }
    /// The cursor before `c` (`c` must come from this list).
    pub(crate) fn prev(&self, c: Cursor) -> Cursor {
        if c.node.is_null() {
            return c;
        }
        // SAFETY: `c` points at a live node of this list.
        Cursor {
            node: self.find_lt(unsafe { Node::key(c.node) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Bytewise;
    impl KeyOrder for Bytewise {
        fn cmp(a: &[u8], b: &[u8]) -> Ordering {
            a.cmp(b)
        }
    }

    #[test]
    fn ordered_iteration_both_ways_and_seeks() {
        let l = SkipList::<Bytewise>::new();
        let mut keys: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| ((i * 7919) % 5000).to_be_bytes().to_vec())
            .collect();
        for k in &keys {
            assert!(l.insert(k, &[k[3]; 3]));
        }
        assert!(!l.insert(&keys[0], b"dup"));
        keys.sort();
        assert_eq!(l.len(), 5000);
        let mut c = l.first();
        for k in &keys {
            // SAFETY: the list is alive.
            assert_eq!(unsafe { c.key() }, &k[..]);
            assert_eq!(unsafe { c.value() }, &[k[3]; 3]);
            c = l.next(c);
        }
        assert!(!c.valid());
        let mut c = l.last();
        for k in keys.iter().rev() {
            assert_eq!(unsafe { c.key() }, &k[..]);
            c = l.prev(c);
        }
        assert!(!c.valid());
        let probe = 2500u32.to_be_bytes();
        assert_eq!(unsafe { l.seek(&probe).key() }, &probe[..]);
        let between = [0u8, 0, 9, 196, 1];
        assert_eq!(
            unsafe { l.seek(&between).key() },
            &2501u32.to_be_bytes()[..]
        );
        assert_eq!(
            unsafe { l.seek_for_prev(&between).key() },
            &2500u32.to_be_bytes()[..]
        );
        assert!(!l.seek(&[0xff; 5]).valid());
        assert!(!l.seek_for_prev(&[]).valid());
        // Every node (header, one tower slot, 4-byte key, 3-byte value) is in the arena.
        assert!(l.arena_bytes() >= 5000 * (NODE_HEADER + 8 + 7));
    }

    #[test]
    fn ascending_runs_mixed_with_random_keys_match_a_model() {
        // Ascending runs take the splice fast path; jumps back and duplicates must not.
        let l = SkipList::<Bytewise>::new();
        let mut model = std::collections::BTreeSet::new();
        let mut rng = 0x9e37_79b9u32;
        let mut next_seq = 0u32;
        for round in 0..200u32 {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let run = rng % 40;
            if round % 3 == 0 {
                next_seq = rng % 100_000; // jump anywhere, often backwards
            }
            for _ in 0..run {
                let k = next_seq.to_be_bytes();
                next_seq += 1 + (rng % 3);
                assert_eq!(l.insert(&k, &k), model.insert(k), "key {k:?}");
            }
            let dup = (rng % 100_000).to_be_bytes();
            assert_eq!(l.insert(&dup, &dup), model.insert(dup));
        }
        let mut c = l.first();
        for k in &model {
            assert!(c.valid());
            // SAFETY: `l` outlives the cursor.
            assert_eq!(unsafe { (c.key(), c.value()) }, (&k[..], &k[..]));
            c = l.next(c);
        }
        assert!(!c.valid());
        for probe in (0..110_000u32).step_by(997) {
            let want = model.range(probe.to_be_bytes()..).next();
            let got = l.seek(&probe.to_be_bytes());
            // SAFETY: as above.
            assert_eq!(
                got.valid().then(|| unsafe { got.key() }),
                want.map(|k| &k[..])
            );
        }
    }

    #[test]
    fn lists_built_on_recycled_chunks_are_intact() {
        // Fill several chunks with one pattern, drop the list (its chunks go to the pool),
        // then build lists with another: whatever memory they get, contents are exact.
        for round in 0..3u8 {
            let l = SkipList::<Bytewise>::new();
            let n = 3 * CHUNK_BYTES / 200;
            for i in 0..n as u32 {
                let k = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
                assert!(l.insert(&k, &[round ^ k[0]; 150]));
            }
            // The growing first chunks (4 KiB doubling to 1 MiB) and then full chunks, some
            // of them recycled.
            assert!(l.arena_bytes() >= 2 * CHUNK_BYTES);
            let mut c = l.first();
            let mut seen = 0;
            let mut prev: Option<Vec<u8>> = None;
            while c.valid() {
                // SAFETY: `l` outlives the cursor.
                let (k, v) = unsafe { (c.key(), c.value()) };
                assert!(prev.as_deref().is_none_or(|p| p < k));
                assert_eq!(v, &[round ^ k[0]; 150][..]);
                prev = Some(k.to_vec());
                seen += 1;
                c = l.next(c);
            }
            assert_eq!(seen, n);
        }
        assert!(chunk_pool().len() * CHUNK_BYTES <= MAX_CHUNK_POOL_BYTES);
    }

    #[test]
    fn an_empty_list_costs_one_small_chunk_and_chunks_grow_to_full_size() {
        let l = SkipList::<Bytewise>::new();
        assert_eq!(l.arena_bytes(), FIRST_CHUNK_BYTES);
        for i in 0..20_000u32 {
            l.insert(&i.to_be_bytes(), &[0u8; 100]);
        }
        let w = l.writer.lock();
        let sizes: Vec<usize> = w.arena.chunks.iter().map(|c| c.len() * 8).collect();
        assert_eq!(sizes[0], FIRST_CHUNK_BYTES);
        for pair in sizes.windows(2) {
            assert!(pair[1] == (pair[0] * 2).min(CHUNK_BYTES), "{sizes:?}");
        }
        assert_eq!(*sizes.last().unwrap(), CHUNK_BYTES);
    }

    #[test]
    fn big_entries_and_concurrent_readers() {
        let l = Arc::new(SkipList::<Bytewise>::new());
        l.insert(b"big", &vec![7u8; 3 * CHUNK_BYTES]);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let mut c = l.first();
                        let mut prev: Option<Vec<u8>> = None;
                        while c.valid() {
                            let k = unsafe { c.key() }.to_vec();
                            assert!(prev.as_ref().is_none_or(|p| p < &k), "order");
                            prev = Some(k);
                            c = l.next(c);
                        }
                    }
                })
            })
            .collect();
        for i in 0..20_000u32 {
            l.insert(&i.to_be_bytes(), b"v");
        }
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(l.len(), 20_001);
        assert_eq!(unsafe { l.seek(b"big").value() }.len(), 3 * CHUNK_BYTES);
    }
}
