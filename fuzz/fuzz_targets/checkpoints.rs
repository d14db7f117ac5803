//! cargo-fuzz target `checkpoints`: see `engram_fuzz::checkpoints`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engram_fuzz::checkpoints(data));
