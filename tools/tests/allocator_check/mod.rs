//! The seed S4 allocator check shared by every package that ships a binary (`tools`,
//! `server`, `benches` include this file from their `tests/allocator_s4.rs`): the binary loads
//! no allocator shared library (tcmalloc, jemalloc, libmimalloc, ...), checked from the ELF
//! dynamic section (DT_NEEDED, parsed here, no tool needed) and, where `ldd` exists, from the
//! full list of libraries the loader would map; it contains mimalloc itself (its symbols are in
//! the symbol table) and defines `malloc`/`free` (libmimalloc-sys's `override` feature, so C
//! code allocates through mimalloc too).
#![allow(dead_code)]

use std::path::Path;

/// Library name fragments that would mean a second, dynamically linked allocator.
pub const ALLOCATOR_LIBRARIES: &[&str] = &[
    "tcmalloc",
    "jemalloc",
    "mimalloc",
    "hoard",
    "tbbmalloc",
    "snmalloc",
    "rpmalloc",
    "scudo",
];

/// Panics unless the binary at `path` uses the one statically linked mimalloc for Rust and C
/// allocations and links no allocator library dynamically.
#[track_caller]
pub fn assert_one_static_allocator(path: &Path) {
    let name = path.display();
    let binary = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let elf = elf::Elf::parse(&binary).expect("the binary is a 64-bit little-endian ELF");
    let needed = elf.needed();
    assert!(
        !needed.is_empty(),
        "{name}: expected at least libc in DT_NEEDED"
    );
    for library in &needed {
        for allocator in ALLOCATOR_LIBRARIES {
            assert!(
                !library.to_lowercase().contains(allocator),
                "{name}: {library} is linked dynamically (DT_NEEDED): {needed:?}"
            );
        }
    }
    let symbols = elf.symbol_names();
    // What `mimalloc::MiMalloc` (the `#[global_allocator]`) calls.
    for wanted in ["mi_malloc_aligned", "mi_free"] {
        assert!(
            symbols.contains(wanted),
            "{name}: {wanted} not in the binary: mimalloc is not linked in statically"
        );
    }

    // The `override` feature: the binary itself defines (and exports) malloc and free, so C code
    // (zstd, libc) allocates through the same mimalloc as Rust code.
    let exported = elf.defined_dynamic_symbols();
    for wanted in ["malloc", "free", "calloc", "realloc", "posix_memalign"] {
        assert!(
            exported.contains(wanted),
            "{name}: {wanted} is not defined by the binary: C allocations would bypass mimalloc"
        );
    }

    // ldd also shows libraries pulled in indirectly.
    if let Ok(out) = std::process::Command::new("ldd").arg(path).output() {
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        for allocator in ALLOCATOR_LIBRARIES {
            assert!(
                !text.contains(allocator),
                "{name}: ldd shows {allocator}:\n{text}"
            );
        }
    }
}

/// Just enough ELF64 (little-endian) to read DT_NEEDED and the static symbol table.
mod elf {
    use std::collections::HashSet;

    pub struct Elf<'a> {
        data: &'a [u8],
        sections: Vec<Section>,
    }

    #[derive(Clone, Copy)]
    struct Section {
        kind: u32,
        offset: usize,
        size: usize,
        link: usize,
        entry_size: usize,
    }

    const SHT_SYMTAB: u32 = 2;
    const SHT_DYNAMIC: u32 = 6;
    const SHT_DYNSYM: u32 = 11;
    const DT_NEEDED: u64 = 1;

    fn u16_at(d: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
    }
    fn u32_at(d: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
    }
    fn u64_at(d: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
    }

    impl<'a> Elf<'a> {
        pub fn parse(data: &'a [u8]) -> Option<Elf<'a>> {
            if data.get(..4)? != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
                return None;
            }
            let shoff = u64_at(data, 0x28)? as usize;
            let shentsize = u16_at(data, 0x3a)? as usize;
            let shnum = u16_at(data, 0x3c)? as usize;
            let mut sections = Vec::with_capacity(shnum);
            for i in 0..shnum {
                let at = shoff + i * shentsize;
                sections.push(Section {
                    kind: u32_at(data, at + 4)?,
                    offset: u64_at(data, at + 0x18)? as usize,
                    size: u64_at(data, at + 0x20)? as usize,
                    link: u32_at(data, at + 0x28)? as usize,
                    entry_size: u64_at(data, at + 0x38)? as usize,
                });
            }
            Some(Elf { data, sections })
        }

        fn string(&self, table: usize, offset: usize) -> Option<String> {
            let section = self.sections.get(table)?;
            let bytes = self
                .data
                .get(section.offset + offset..section.offset + section.size)?;
            let end = bytes.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
        }

        /// DT_NEEDED entries of the dynamic section.
        pub fn needed(&self) -> Vec<String> {
            let mut out = Vec::new();
            for s in self.sections.iter().filter(|s| s.kind == SHT_DYNAMIC) {
                for i in 0..s.size / 16 {
                    let at = s.offset + i * 16;
                    let (Some(tag), Some(value)) =
                        (u64_at(self.data, at), u64_at(self.data, at + 8))
                    else {
                        break;
                    };
                    if tag == DT_NEEDED {
                        out.extend(self.string(s.link, value as usize));
                    }
                }
            }
            out
        }

        /// Names of symbols the dynamic symbol table defines (section index not SHN_UNDEF).
        pub fn defined_dynamic_symbols(&self) -> HashSet<String> {
            let mut out = HashSet::new();
            for s in self.sections.iter().filter(|s| s.kind == SHT_DYNSYM) {
                let entry = s.entry_size.max(24);
                for i in 0..s.size / entry {
                    let at = s.offset + i * entry;
                    let (Some(name), Some(section)) =
                        (u32_at(self.data, at), u16_at(self.data, at + 6))
                    else {
                        break;
                    };
                    if section != 0 {
                        out.extend(self.string(s.link, name as usize));
                    }
                }
            }
            out
        }

        /// Names in the static and dynamic symbol tables.
        pub fn symbol_names(&self) -> HashSet<String> {
            let mut out = HashSet::new();
            for s in self
                .sections
                .iter()
                .filter(|s| s.kind == SHT_SYMTAB || s.kind == SHT_DYNSYM)
            {
                let entry = s.entry_size.max(24);
                for i in 0..s.size / entry {
                    if let Some(name) = u32_at(self.data, s.offset + i * entry) {
                        out.extend(self.string(s.link, name as usize));
                    }
                }
            }
            out
        }
    }
}
