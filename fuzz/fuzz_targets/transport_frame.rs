#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| siltdb_replica::fuzzing::transport_frame(data));
