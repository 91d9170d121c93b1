//! Arbitrary bytes as journal files through kvserver's journal verifier (see
//! `kvstore_fuzz::journal`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvstore_fuzz::journal::check(data));
