//! cargo-fuzz target `vocab`: see `engram_fuzz::vocab`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engram_fuzz::vocab(data));
