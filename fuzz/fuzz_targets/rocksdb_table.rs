#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| siltdb::fuzzing::rocksdb_table(data));
