//! cargo-fuzz target `glaive`: see `engram_fuzz::glaive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engram_fuzz::glaive(data));
