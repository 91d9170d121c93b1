//! Arbitrary bytes through the bulk decoder, whole and streamed (see `kvstore_fuzz::bulk`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvstore_fuzz::bulk::check(data));
