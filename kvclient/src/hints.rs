//! What servers say on every response, collected so a sharded client notices a change without
//! polling: the topology (`x-kv-epoch`, `x-kv-routing-shards`), and on a replicated store the
//! pod leading the answering copy's shard (`x-kv-leader`).

use std::collections::HashMap;
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
    /// Base URL of a server → the leader its last answer named.
    leaders: Mutex<HashMap<String, String>>,
}

impl RoutingHints {
    /// Records the headers of one response; keeps the hint with the highest epoch (the latest
    /// one within an epoch, since phases move the routing shard count within an epoch).
    pub fn observe(&self, server: &str, headers: &HeaderMap) {
        self.observe_leader(server, headers);
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

    fn observe_leader(&self, server: &str, headers: &HeaderMap) {
        let named = headers
            .get(header::LEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|pod| !pod.is_empty());
        let mut leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
        match named {
            Some(pod) if leaders.get(server).is_none_or(|known| known != pod) => {
                leaders.insert(server.to_owned(), pod.to_owned());
            }
            Some(_) => {}
            None => {
                leaders.remove(server);
            }
        }
    }

    /// The pod that `server`'s last answer named as its shard's leader, if it named one.
    pub fn leader_named_by(&self, server: &str) -> Option<String> {
        self.leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)
            .cloned()
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

    #[test]
    fn remembers_the_leader_each_server_last_named() {
        let hints = RoutingHints::default();
        let mut h = HeaderMap::new();
        h.insert(header::LEADER, HeaderValue::from_static("kv-r1-0"));
        hints.observe("a", &h);
        assert_eq!(hints.leader_named_by("a").as_deref(), Some("kv-r1-0"));
        assert_eq!(hints.leader_named_by("b"), None);
        hints.observe("a", &HeaderMap::new());
        assert_eq!(hints.leader_named_by("a"), None);
    }
}
