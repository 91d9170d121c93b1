//! The one fake of [`ShardAdmin`]: in-memory servers addressed by URL. Each keeps its records
//! and the last map pushed to it (which says what it owns and what is moving); every push is
//! recorded, and the servers listed in `refuse` refuse every call. The Raft management calls
//! go to the fake groups of `groups` ([`FakeGroups`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::StreamExt;
use kvproto::bulk::BulkRecord;
use kvproto::raft::{GroupId, RaftStatus};
use kvproto::{Fence, Key, Topology};
use operator::shards::{CallResult, RaftChange, RecordStream, ShardAdmin};

use super::groups::FakeGroups;

/// One server: its map and its records.
#[derive(Debug, Default)]
struct Server {
    map: Option<Topology>,
    records: BTreeMap<Key, BulkRecord>,
}

impl Server {
    /// The real server's fence check, answered as the real server does (409 `fenced`).
    fn admit(&self, url: &str, fence: Fence) -> CallResult<()> {
        Fence::admits(Some(&fence), self.map.as_ref()).map_err(|e| kvclient::Error::Status {
            server: url.to_owned(),
            status: 409,
            code: Some(kvproto::wire::ErrorCode::Fenced),
            message: e.to_string(),
        })
    }

    /// True when the record belongs to another shard under this server's map.
    fn is_moving(&self, url: &str, record: &BulkRecord) -> bool {
        self.map.as_ref().is_some_and(|map| {
            let me = map.peers.iter().position(|p| p == url);
            me != Some(map.owner(record.key.as_bytes()) as usize)
        })
    }
}

#[derive(Debug, Default)]
pub struct FakeShards {
    /// Every acknowledged push, in order: URL, token, map.
    pub pushes: Mutex<Vec<(String, String, Topology)>>,
    /// Base URLs that refuse every call.
    pub refuse: Vec<String>,
    /// Every CA handed to [`ShardAdmin::trust`], in order: domain, CA.
    pub trusted: Mutex<Vec<(String, Option<Vec<u8>>)>>,
    /// The copies' Raft groups.
    pub groups: FakeGroups,
    servers: Mutex<BTreeMap<String, Server>>,
}

impl FakeShards {
    /// Servers at `refuse` refuse every call.
    pub fn refusing(refuse: &[&str]) -> Self {
        FakeShards {
            refuse: refuse.iter().map(|u| (*u).to_owned()).collect(),
            ..FakeShards::default()
        }
    }

    /// The servers at `urls` hold `map` already (a move resumed after its Commit).
    pub fn holding(urls: &[String], map: &Topology) -> Self {
        let shards = FakeShards::default();
        {
            let mut servers = shards.servers.lock().unwrap();
            for url in urls {
                servers.entry(url.clone()).or_default().map = Some(map.clone());
            }
        }
        shards
    }

    /// Stores `record` on the server at `url`.
    pub fn insert(&self, url: &str, record: BulkRecord) {
        let mut servers = self.servers.lock().unwrap();
        let server = servers.entry(url.to_owned()).or_default();
        server.records.insert(record.key.clone(), record);
    }

    /// The keys the server at `url` holds.
    pub fn keys(&self, url: &str) -> Vec<Key> {
        let servers = self.servers.lock().unwrap();
        servers
            .get(url)
            .map(|s| s.records.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs `f` on the server at `url`, unless it refuses.
    fn on<T>(&self, url: &str, f: impl FnOnce(&mut Server) -> T) -> CallResult<T> {
        if self.refuse.iter().any(|r| r == url) {
            return Err(kvclient::Error::Status {
                server: url.to_owned(),
                status: 503,
                code: None,
                message: format!("connection refused by {url}"),
            });
        }
        let mut servers = self.servers.lock().unwrap();
        Ok(f(servers.entry(url.to_owned()).or_default()))
    }
}

impl ShardAdmin for FakeShards {
    fn trust(&self, domain: &str, ca_pem: Option<&[u8]>) {
        let ca = ca_pem.map(<[u8]>::to_vec);
        self.trusted.lock().unwrap().push((domain.to_owned(), ca));
    }

    async fn put_topology(&self, url: &str, token: &str, topology: &Topology) -> CallResult<()> {
        self.on(url, |s| s.map = Some(topology.clone()))?;
        let push = (url.to_owned(), token.to_owned(), topology.clone());
        self.pushes.lock().unwrap().push(push);
        Ok(())
    }

    async fn export_moving(&self, url: &str, _token: &str) -> CallResult<RecordStream> {
        let moving: Vec<CallResult<BulkRecord>> = self.on(url, |s| {
            let records = s.records.values();
            records
                .filter(|r| s.is_moving(url, r))
                .cloned()
                .map(Ok)
                .collect()
        })?;
        Ok(futures::stream::iter(moving).boxed())
    }

    async fn moving_count(&self, url: &str, _token: &str) -> CallResult<u64> {
        self.on(url, |s| {
            s.records.values().filter(|r| s.is_moving(url, r)).count() as u64
        })
    }

    async fn import_if_absent(
        &self,
        url: &str,
        _token: &str,
        fence: Fence,
        records: &[BulkRecord],
    ) -> CallResult<u64> {
        self.on(url, |s| {
            s.admit(url, fence)?;
            let mut applied = 0;
            for r in records {
                if !s.records.contains_key(&r.key) {
                    s.records.insert(r.key.clone(), r.clone());
                    applied += 1;
                }
            }
            Ok(applied)
        })?
    }

    async fn cleanup(&self, url: &str, _token: &str, fence: Fence) -> CallResult<()> {
        self.on(url, |s| {
            s.admit(url, fence)?;
            let keep: BTreeMap<Key, BulkRecord> = std::mem::take(&mut s.records)
                .into_iter()
                .filter(|(_, r)| r.value.is_some() && !s.is_moving(url, r))
                .collect();
            s.records = keep;
            Ok(())
        })?
    }

    async fn key_count(&self, url: &str, _token: &str) -> CallResult<u64> {
        self.on(url, |s| s.records.len() as u64)
    }

    async fn raft_status(&self, url: &str, _token: &str) -> CallResult<RaftStatus> {
        self.groups.status(url)
    }

    async fn raft_change(
        &self,
        url: &str,
        _token: &str,
        group: &GroupId,
        change: &RaftChange,
    ) -> CallResult<()> {
        self.groups.change(url, group, change)
    }
}
