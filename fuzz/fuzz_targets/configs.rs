//! cargo-fuzz target `configs`: see `engram_fuzz::configs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engram_fuzz::configs(data));
