//! Arbitrary bytes and text through every `kvproto::Key` decoder (see `kvstore_fuzz::key`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvstore_fuzz::key::check(data));
