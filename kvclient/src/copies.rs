//! The copies of each shard of a replicated store (docs/replication.md section 3), and which
//! one a request tries first: the leader the copies' answers last named (`x-kv-leader`), else
//! the copy that last answered, so requests skip a follower's forwarding hop and do not keep
//! knocking on a dead copy.

use crate::server::ServerClient;

/// Every copy of every shard, indexed by shard; copy 0 (the book's pod) first in each row.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardCopies {
    rows: Vec<Row>,
}

#[derive(Debug, Clone)]
struct Row {
    copies: Vec<ServerClient>,
    /// Position in `copies` tried first.
    preferred: usize,
}

impl ShardCopies {
    /// `rows[shard]` lists that shard's copies, copy 0 first.
    pub(crate) fn new(rows: Vec<Vec<ServerClient>>) -> Self {
        ShardCopies {
            rows: rows
                .into_iter()
                .map(|copies| Row {
                    copies,
                    preferred: 0,
                })
                .collect(),
        }
    }

    /// The copies of `shard` in the order to try them, the preferred one first; `None` when
    /// the shard has a single copy (or none known), which is factor 1's path.
    pub(crate) fn order(&self, shard: u32) -> Option<Vec<ServerClient>> {
        let row = self.rows.get(shard as usize)?;
        if row.copies.len() < 2 {
            return None;
        }
        let n = row.copies.len();
        Some(
            (0..n)
                .map(|i| row.copies[(row.preferred + i) % n].clone())
                .collect(),
        )
    }

    /// Makes the copy that runs `pod` the one tried first for `shard`; false when no copy of
    /// the shard is that pod (a stale or foreign name is ignored).
    pub(crate) fn prefer_pod(&mut self, shard: u32, pod: &str) -> bool {
        let Some(row) = self.rows.get_mut(shard as usize) else {
            return false;
        };
        match position_of_pod(&row.copies, pod) {
            Some(i) => {
                row.preferred = i;
                true
            }
            None => false,
        }
    }

    /// Makes the copy at `base` the one tried first for `shard`, if it is one of its copies.
    pub(crate) fn prefer_base(&mut self, shard: u32, base: &str) {
        if let Some(row) = self.rows.get_mut(shard as usize)
            && let Some(i) = row.copies.iter().position(|c| c.base() == base)
        {
            row.preferred = i;
        }
    }

    /// Whether these are the copies of `rows`, row by row (by base URL).
    pub(crate) fn same_as(&self, rows: &[Vec<ServerClient>]) -> bool {
        self.rows.len() == rows.len()
            && self.rows.iter().zip(rows).all(|(row, want)| {
                row.copies.len() == want.len()
                    && row
                        .copies
                        .iter()
                        .zip(want)
                        .all(|(c, w)| c.base() == w.base())
            })
    }

    /// Whether the copy first tried for `shard` runs `pod`.
    pub(crate) fn prefers(&self, shard: u32, pod: &str) -> bool {
        self.rows
            .get(shard as usize)
            .and_then(|row| row.copies.get(row.preferred))
            .is_some_and(|c| runs_pod(c.base(), pod))
    }
}

/// Where in `copies` the copy that runs `pod` is.
pub(crate) fn position_of_pod(copies: &[ServerClient], pod: &str) -> Option<usize> {
    copies.iter().position(|c| runs_pod(c.base(), pod))
}

/// Whether the server at `base` (`scheme://POD.NAME.NS.svc:PORT`) is the pod `pod`: its host's
/// first DNS label, as the store's headless Service names every copy.
pub(crate) fn runs_pod(base: &str, pod: &str) -> bool {
    let host = base.split_once("://").map_or(base, |(_, rest)| rest);
    let label = host.split(['.', ':', '/']).next().unwrap_or_default();
    !pod.is_empty() && label == pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    fn client(url: &str) -> ServerClient {
        ServerClient::new(url, ClientConfig::default()).unwrap()
    }

    fn row(shard: u32, copies: u32) -> Vec<ServerClient> {
        (0..copies)
            .map(|k| client(&kvproto::copy_url_tls("kv", "ns", k, shard, 80, false)))
            .collect()
    }

    #[test]
    fn a_named_leader_is_tried_first_then_the_others_in_order() {
        let mut copies = ShardCopies::new(vec![row(0, 3), row(1, 1)]);
        let bases = |order: Vec<ServerClient>| -> Vec<String> {
            order.iter().map(|c| c.base().to_owned()).collect()
        };
        assert_eq!(
            bases(copies.order(0).unwrap()),
            [
                "http://kv-0.kv.ns.svc:80",
                "http://kv-r1-0.kv.ns.svc:80",
                "http://kv-r2-0.kv.ns.svc:80"
            ]
        );
        assert!(copies.prefer_pod(0, "kv-r2-0"));
        assert!(copies.prefers(0, "kv-r2-0"));
        assert_eq!(
            bases(copies.order(0).unwrap())[..2],
            ["http://kv-r2-0.kv.ns.svc:80", "http://kv-0.kv.ns.svc:80"]
        );
        // A pod of another shard, or one the client does not know, changes nothing.
        assert!(!copies.prefer_pod(0, "kv-r1-1"));
        assert!(!copies.prefer_pod(3, "kv-3"));
        assert!(copies.prefers(0, "kv-r2-0"));
        // One copy: factor 1's path.
        assert!(copies.order(1).is_none());
        assert!(copies.order(7).is_none());
    }

    #[test]
    fn a_pod_is_the_first_label_of_its_host() {
        assert!(runs_pod("http://kv-r1-0.kv.ns.svc:80", "kv-r1-0"));
        assert!(runs_pod("https://kv-0.kv.ns.svc:8443", "kv-0"));
        assert!(runs_pod("http://kv-0:80", "kv-0"));
        assert!(!runs_pod("http://kv-0.kv.ns.svc:80", "kv"));
        assert!(!runs_pod("http://kv-0.kv.ns.svc:80", ""));
    }
}
