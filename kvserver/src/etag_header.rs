//! The one conversion between a version and its `ETag` / `If-Match` header value; the format
//! itself is the wire contract's ([`kvproto::wire::etag`]).

use axum::http::HeaderValue;
use kvproto::wire::etag;

/// `123` → `"123"`.
pub fn of_version(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::try_from(etag::format(version)).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `"123"` (or `W/"123"`) → 123.
pub fn version(value: &HeaderValue) -> Option<u64> {
    etag::parse(value.to_str().ok()?)
}
