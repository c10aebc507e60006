#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| siltdb_server::fuzzing::server_handshake(data));
