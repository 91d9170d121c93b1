//! The checks behind the cargo-fuzz targets; each target in `fuzz_targets/` is one call into here.
//!
//! # Layout
//! - [`key`]: `kvproto::Key` decoding against the key rules written out independently.
//! - [`bulk`]: the bulk decoder, whole and streamed at arbitrary split points, and re-encoding.
//! - [`http`]: raw HTTP requests through the real kvserver routers with `oneshot`.
//! - [`journal`]: arbitrary bytes as journal files through kvserver's journal verifier.
//!
//! A check returns normally for input it accepts or refuses correctly, and panics (which
//! libFuzzer records as a crash, with the input saved) when an invariant breaks.
#![forbid(unsafe_code)]

pub mod bulk;
pub mod http;
pub mod journal;
pub mod key;
