//! What servers say about the topology on every response (`x-kv-epoch`,
//! `x-kv-routing-shards`), collected so a sharded client notices a change without polling.

use std::sync::Mutex;

use kvproto::wire::header;
use reqwest::header::HeaderMap;

/// The newest topology hint seen from any server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub epoch: u64,
    /// Absent before the operator set any topology.
    pub routing_shards: Option<u32>,
    /// Base URL of the server that sent it, to fetch the full topology from.
    pub server: String,
}

/// Shared by all [`crate::ServerClient`]s of one sharded client.
#[derive(Debug, Default)]
pub struct RoutingHints {
    newest: Mutex<Option<Hint>>,
}

impl RoutingHints {
    /// Records the headers of one response; keeps the hint with the highest epoch (the latest
    /// one within an epoch, since phases move the routing shard count within an epoch).
    pub fn observe(&self, server: &str, headers: &HeaderMap) {
        let Some(epoch) = header_u64(headers, header::EPOCH) else {
            return;
        };
        let routing_shards =
            header_u64(headers, header::ROUTING_SHARDS).and_then(|n| u32::try_from(n).ok());
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let replace = match &*newest {
            None => true,
            Some(h) => epoch > h.epoch || (epoch == h.epoch && routing_shards != h.routing_shards),
        };
        if replace {
            *newest = Some(Hint {
                epoch,
                routing_shards,
                server: server.to_string(),
            });
        }
    }

    /// The newest hint so far.
    pub fn newest(&self) -> Option<Hint> {
        self.newest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(epoch: &str, shards: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::EPOCH, HeaderValue::from_str(epoch).unwrap());
        if let Some(s) = shards {
            h.insert(header::ROUTING_SHARDS, HeaderValue::from_str(s).unwrap());
        }
        h
    }

    #[test]
    fn keeps_the_newest_epoch() {
        let hints = RoutingHints::default();
        assert_eq!(hints.newest(), None);
        hints.observe("a", &headers("2", Some("3")));
        hints.observe("b", &headers("1", Some("5")));
        assert_eq!(hints.newest().unwrap().server, "a");
        hints.observe("c", &headers("2", Some("5")));
        let newest = hints.newest().unwrap();
        assert_eq!((newest.epoch, newest.routing_shards), (2, Some(5)));
        hints.observe("d", &headers("garbage", Some("7")));
        assert_eq!(hints.newest().unwrap().server, "c");
    }
}
