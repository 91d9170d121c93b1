//! Arbitrary HTTP requests through the kvserver router (see `kvstore_fuzz::http`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvstore_fuzz::http::check(data));
