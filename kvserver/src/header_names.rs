//! The wire contract's header names ([`kvproto::wire::header`]) as parsed [`HeaderName`]s.
//!
//! A `&str` name is parsed (checked and lower-cased) at every `HeaderMap` lookup or insert;
//! these are parsed once, at compile time, for the lookups every request makes. (Statics, not
//! consts: a const would build a new value at every use.)

use axum::http::HeaderName;
use kvproto::wire::header as kvh;

/// Marks a request a copy of a replicated shard forwarded to its leader (`replica.rs`): a
/// kvserver-to-kvserver header, not part of kvproto's wire contract.
pub static TO_LEADER: HeaderName = HeaderName::from_static("x-kv-to-leader");

pub static EPOCH: HeaderName = HeaderName::from_static(kvh::EPOCH);
pub static ROUTING_SHARDS: HeaderName = HeaderName::from_static(kvh::ROUTING_SHARDS);
pub static LEADER: HeaderName = HeaderName::from_static(kvh::LEADER);
/// The headers a forwarded request carries ([`kvh::FORWARDING`]).
pub static FORWARDING: [HeaderName; 3] = [
    HeaderName::from_static(kvh::FORWARDED_EPOCH),
    HeaderName::from_static(kvh::HOPS),
    HeaderName::from_static(kvh::READ_THROUGH),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_wire_contracts() {
        assert_eq!(EPOCH.as_str(), kvh::EPOCH);
        assert_eq!(ROUTING_SHARDS.as_str(), kvh::ROUTING_SHARDS);
        assert_eq!(LEADER.as_str(), kvh::LEADER);
        let forwarding: Vec<&str> = FORWARDING.iter().map(HeaderName::as_str).collect();
        assert_eq!(forwarding, kvh::FORWARDING);
    }
}
