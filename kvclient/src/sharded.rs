//! [`ShardedClient`]: routes each key to one server of a list, as the book's client does, and
//! follows the servers' topology when the operator sets one.
//!
//! Without a topology it routes with `sharding.shard_of(key, N)` over its N servers (`modulo`
//! by default: the book's `ord(c) % N`). Every answer carries `x-kv-epoch` and
//! `x-kv-routing-shards`; when they announce something newer than what the client routes by, it
//! fetches `GET /v1/topology` from that server and adopts it if it moves forward
//! (`Topology::check_transition`), then routes with `Topology::client_route`. Servers forward
//! misrouted keys anyway, so a client that learns late is slower, never wrong.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use kvproto::{Key, Sharding, Topology};

use crate::addr::parse_server;
use crate::config::ClientConfig;
use crate::copies::ShardCopies;
use crate::error::{Error, Result};
use crate::hints::RoutingHints;
use crate::retry::{FirstUnknown, Idempotency, should_retry};
use crate::server::{Condition, ServerClient, Versioned};
use crate::stats::ClientStats;

/// What a sharded client routes by right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// 0 before any topology.
    pub epoch: u64,
    pub sharding: Sharding,
    /// The shard count keys are routed over.
    pub shards: u32,
    /// `Stable`, `Handoff` or `Copy`; `None` before any topology.
    pub phase: Option<&'static str>,
}

#[derive(Debug)]
struct State {
    servers: Vec<ServerClient>,
    sharding: Sharding,
    /// Shard count to route over while no topology is known (defaults to the server count).
    fallback_shards: Option<u32>,
    topology: Option<Topology>,
    /// The hint a refresh was last attempted for, so one stale server cannot cause a refetch
    /// on every request.
    last_refresh: Option<(u64, Option<u32>)>,
    /// Whether to learn topologies at all (the book's client never does).
    follow: bool,
    /// Every copy of each shard of a replicated store; empty at factor 1.
    copies: ShardCopies,
}

impl State {
    fn routing(&self) -> Routing {
        match &self.topology {
            Some(t) => Routing {
                epoch: t.epoch,
                sharding: t.sharding,
                shards: t.routing_shards(),
                phase: Some(t.phase_name()),
            },
            None => Routing {
                epoch: 0,
                sharding: self.sharding,
                shards: self
                    .fallback_shards
                    .unwrap_or(u32::try_from(self.servers.len()).unwrap_or(u32::MAX))
                    .max(1),
                phase: None,
            },
        }
    }

    /// Adopts `next` if it moves forward; returns whether routing changed.
    fn adopt(&mut self, next: Topology) -> bool {
        if next.validate().is_err() {
            return false;
        }
        let accept = match &self.topology {
            None => true,
            Some(current) => current != &next && current.check_transition(&next).is_ok(),
        };
        if accept {
            self.sharding = next.sharding;
            self.topology = Some(next);
        }
        accept
    }
}

/// A client over a list of servers indexed by shard ordinal. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ShardedClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    hints: Arc<RoutingHints>,
    stats: Arc<ClientStats>,
    state: RwLock<State>,
}

impl ShardedClient {
    /// A client over `servers` (each `host[:port]` or a URL), ordinal = position in the list,
    /// routing with `modulo` until a server announces a topology.
    pub fn new(servers: &[String], config: ClientConfig) -> Result<Self> {
        let http = config.http_client()?;
        let config = Arc::new(config);
        let hints = Arc::new(RoutingHints::default());
        let stats = Arc::new(ClientStats::default());
        let servers = Self::clients(&http, &config, &hints, &stats, servers)?;
        Ok(ShardedClient {
            http,
            config,
            hints,
            stats,
            state: RwLock::new(State {
                servers,
                sharding: Sharding::Modulo,
                fallback_shards: None,
                topology: None,
                last_refresh: None,
                follow: true,
                copies: ShardCopies::default(),
            }),
        })
    }

    /// Routes with `sharding` until a topology says otherwise.
    pub fn with_sharding(self, sharding: Sharding) -> Self {
        self.write().sharding = sharding;
        self
    }

    fn clients(
        http: &reqwest::Client,
        config: &Arc<ClientConfig>,
        hints: &Arc<RoutingHints>,
        stats: &Arc<ClientStats>,
        servers: &[String],
    ) -> Result<Vec<ServerClient>> {
        servers
            .iter()
            .map(|addr| {
                Ok(ServerClient::from_parts(
                    http.clone(),
                    parse_server(addr)?,
                    config.clone(),
                    hints.clone(),
                    stats.clone(),
                ))
            })
            .collect()
    }

    /// Whether to learn topologies from the servers (default true). The book's client routes
    /// by its fixed list forever; the servers forward what it misroutes.
    pub fn with_follow_topology(self, follow: bool) -> Self {
        self.write().follow = follow;
        self
    }

    /// Replaces the server list (e.g. when a KVStore's replica count changes).
    pub fn set_servers(&self, servers: &[String]) -> Result<()> {
        let clients = Self::clients(&self.http, &self.config, &self.hints, &self.stats, servers)?;
        self.write().servers = clients;
        Ok(())
    }

    /// The copies of each shard of a replicated store (`copies[shard]`, copy 0 first). A
    /// request for a shard with several copies tries the one last named leader first and moves
    /// on to the others when one refuses or cannot be reached, within the retry policy
    /// ([`crate::RetryPolicy::within`] rides over a failover). Rows of one copy, or no rows,
    /// keep factor 1's path: the shard's server, retried in place.
    /// Setting the same copies again keeps which copy each shard tries first.
    pub fn set_copies(&self, copies: &[Vec<String>]) -> Result<()> {
        // Each copy is sent a request once: the loop over the copies retries.
        let single_attempt = Arc::new(ClientConfig {
            retry: crate::retry::RetryPolicy::NONE,
            ..(*self.config).clone()
        });
        let rows = copies
            .iter()
            .map(|row| Self::clients(&self.http, &single_attempt, &self.hints, &self.stats, row))
            .collect::<Result<Vec<_>>>()?;
        if self.read().copies.same_as(&rows) {
            return Ok(());
        }
        self.write().copies = ShardCopies::new(rows);
        Ok(())
    }

    /// What this client counted about its requests (retries).
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// The shard count to route over while no server has a topology (e.g. the KVStore's
    /// serving replicas, which may be fewer than the listed servers).
    pub fn set_fallback_shards(&self, shards: Option<u32>) {
        self.write().fallback_shards = shards;
    }

    /// What the client routes by now.
    pub fn routing(&self) -> Routing {
        self.read().routing()
    }

    /// The topology the client follows, if any server announced one.
    pub fn topology(&self) -> Option<Topology> {
        self.read().topology.clone()
    }

    /// The shard `key` is sent to now.
    pub fn shard_of(&self, key: &Key) -> u32 {
        let state = self.read();
        match &state.topology {
            Some(t) => t.client_route(key.as_bytes()),
            None => {
                let r = state.routing();
                r.sharding.shard_of(key.as_bytes(), r.shards)
            }
        }
    }

    /// The client for shard `ordinal`: the listed server, else the topology's peer address.
    pub fn server(&self, ordinal: u32) -> Result<ServerClient> {
        let state = self.read();
        if let Some(s) = state.servers.get(ordinal as usize) {
            return Ok(s.clone());
        }
        let peer = state
            .topology
            .as_ref()
            .and_then(|t| t.peers.get(ordinal as usize))
            .ok_or(Error::NoServerForShard(ordinal))?;
        Ok(ServerClient::from_parts(
            self.http.clone(),
            parse_server(peer)?,
            self.config.clone(),
            self.hints.clone(),
            self.stats.clone(),
        ))
    }

    /// Every server the client knows: the listed ones, and topology peers beyond them.
    pub fn servers(&self) -> Vec<ServerClient> {
        let span = {
            let state = self.read();
            let peers = state.topology.as_ref().map_or(0, |t| t.span() as usize);
            state.servers.len().max(peers)
        };
        (0..span)
            .filter_map(|i| u32::try_from(i).ok())
            .filter_map(|i| self.server(i).ok())
            .collect()
    }

    /// The server `key` is sent to now.
    pub fn server_for(&self, key: &Key) -> Result<ServerClient> {
        self.server(self.shard_of(key))
    }

    /// Asks every server for its topology and adopts the newest; returns whether routing
    /// changed. Unreachable servers are skipped; an error only if none answered.
    pub async fn refresh_topology(&self) -> Result<bool> {
        let servers = self.servers();
        let answers =
            futures::future::join_all(servers.iter().map(|server| server.topology())).await;
        let mut changed = false;
        let mut last_error = None;
        let mut answered = false;
        for answer in answers {
            match answer {
                Ok(Some(t)) => {
                    answered = true;
                    let mut state = self.write();
                    if state.follow {
                        changed |= state.adopt(t);
                    }
                }
                Ok(None) => answered = true,
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) if !answered => Err(e),
            _ => Ok(changed),
        }
    }

    /// Fetches the topology from the server that announced something newer, if any did.
    async fn learn(&self) {
        let Some(hint) = self.hints.newest() else {
            return;
        };
        let key = (hint.epoch, hint.routing_shards);
        let wanted = |state: &State| {
            let routing = state.routing();
            let newer = hint.epoch > routing.epoch
                || (hint.epoch == routing.epoch
                    && hint.epoch > 0
                    && hint.routing_shards.is_some_and(|s| s != routing.shards));
            state.follow && newer && state.last_refresh != Some(key)
        };
        // The common case (nothing new) only takes the read lock.
        if !wanted(&self.read()) {
            return;
        }
        {
            let mut state = self.write();
            if !wanted(&state) {
                return;
            }
            state.last_refresh = Some(key);
        }
        let server = ServerClient::from_parts(
            self.http.clone(),
            hint.server.clone(),
            self.config.clone(),
            self.hints.clone(),
            self.stats.clone(),
        );
        match server.topology().await {
            Ok(Some(t)) => {
                let epoch = t.epoch;
                if self.write().adopt(t) {
                    tracing::info!(epoch, "adopted a newer topology");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "could not fetch the announced topology"),
        }
    }

    /// Runs `call` on the server that owns `key` now (on a replicated store, on its copies in
    /// turn), then learns any newer topology its answer announced.
    async fn through_owner<T, Fut>(
        &self,
        key: &Key,
        idempotency: Idempotency,
        call: impl Fn(ServerClient) -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let shard = self.shard_of(key);
        let copies = self.read().copies.order(shard);
        let result = match copies {
            Some(order) => self.across_copies(shard, &order, idempotency, call).await,
            None => call(self.server(shard)?).await,
        };
        self.learn().await;
        result
    }

    /// `call` on the copies of `shard` in `order`: after a retryable failure the next attempt
    /// goes to the leader the failing copy named, else to the next copy; the first pass over
    /// the copies does not pause, later attempts back off per the retry policy.
    async fn across_copies<T, Fut>(
        &self,
        shard: u32,
        order: &[ServerClient],
        idempotency: Idempotency,
        call: impl Fn(ServerClient) -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let policy = self.config.retry;
        let started = Instant::now();
        let mut at = 0;
        let mut retry: u32 = 0;
        let mut unknown = FirstUnknown::default();
        loop {
            let server = &order[at % order.len()];
            let result = call(server.clone()).await;
            let answered = !matches!(&result, Err(e) if e.is_unreachable());
            let named = answered
                .then(|| self.hints.leader_named_by(server.base()))
                .flatten();
            match &named {
                Some(pod) if !self.read().copies.prefers(shard, pod) => {
                    self.write().copies.prefer_pod(shard, pod);
                }
                None if result.is_ok() && at % order.len() != 0 => {
                    self.write().copies.prefer_base(shard, server.base());
                }
                _ => {}
            }
            match result {
                Err(e) if should_retry(&e, idempotency) => {
                    let Some(delay) = policy.next_delay(retry, started) else {
                        return Err(unknown.settle(e));
                    };
                    tracing::debug!(server = %server.base(), error = %e, retry, "trying another copy");
                    self.stats.retried();
                    retry = retry.saturating_add(1);
                    let leader = named
                        .as_deref()
                        .and_then(|pod| crate::copies::position_of_pod(order, pod));
                    at = match leader {
                        Some(i) if i != at % order.len() => i,
                        _ => at + 1,
                    };
                    unknown.note(e);
                    if retry as usize >= order.len() {
                        tokio::time::sleep(delay).await;
                    }
                }
                other => return other.map_err(|e| unknown.settle(e)),
            }
        }
    }

    /// `GET` through the owner of `key`.
    pub async fn get(&self, key: &Key) -> Result<Option<Versioned>> {
        self.through_owner(
            key,
            Idempotency::Idempotent,
            |s| async move { s.get(key).await },
        )
        .await
    }

    /// Overwriting `PUT` through the owner of `key`.
    pub async fn put(&self, key: &Key, value: impl Into<Bytes>) -> Result<Option<u64>> {
        let value: Bytes = value.into();
        self.through_owner(key, Idempotency::Idempotent, |s| {
            let value = value.clone();
            async move { s.put(key, value).await }
        })
        .await
    }

    /// Conditional `PUT` through the owner of `key`: moved to another copy only when a copy
    /// said it applied nothing.
    pub async fn put_if(
        &self,
        key: &Key,
        value: impl Into<Bytes>,
        condition: Condition,
    ) -> Result<Option<u64>> {
        let value: Bytes = value.into();
        self.through_owner(key, Idempotency::Conditional, |s| {
            let value = value.clone();
            async move { s.put_if(key, value, condition).await }
        })
        .await
    }

    /// `DELETE` through the owner of `key`.
    pub async fn delete(&self, key: &Key) -> Result<bool> {
        self.through_owner(key, Idempotency::Idempotent, |s| async move {
            s.delete(key).await
        })
        .await
    }

    /// The book's `/load/<key>` on the owner of `key`.
    pub async fn book_load(&self, key: &Key) -> Result<Option<String>> {
        self.through_owner(key, Idempotency::Idempotent, |s| async move {
            s.book_load(key).await
        })
        .await
    }

    /// The book's `/save/<key>/<value>` on the owner of `key`.
    pub async fn book_save(&self, key: &Key, value: &str) -> Result<String> {
        self.through_owner(key, Idempotency::Idempotent, |s| async move {
            s.book_save(key, value).await
        })
        .await
    }

    /// Every key on every server with `prefix`, sorted and without duplicates (a key may sit
    /// on two servers while it moves).
    pub async fn list_all(&self, prefix: Option<&str>) -> Result<Vec<String>> {
        let servers = self.servers();
        let pages =
            futures::future::try_join_all(servers.iter().map(|s| s.list_all(prefix))).await?;
        let keys: BTreeSet<String> = pages.into_iter().flatten().collect();
        Ok(keys.into_iter().collect())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: usize) -> ShardedClient {
        let servers: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", 1 + i)).collect();
        ShardedClient::new(&servers, ClientConfig::default()).unwrap()
    }

    #[test]
    fn without_topology_routes_like_the_book() {
        let c = client(3);
        for ch in 'a'..='z' {
            let key = Key::new(ch.to_string()).unwrap();
            assert_eq!(c.shard_of(&key), u32::from(ch) % 3);
        }
        c.set_fallback_shards(Some(2));
        assert_eq!(c.shard_of(&Key::new("a").unwrap()), 97 % 2);
        assert_eq!(c.routing().phase, None);
    }

    #[test]
    fn adopts_only_forward_topologies_and_routes_by_them() {
        use kvproto::topology::{Migration, MigrationPhase};
        let c = client(3);
        let peers: Vec<String> = (0..5)
            .map(|i| format!("http://127.0.0.1:{}", 10 + i))
            .collect();
        let stable = Topology::stable(1, Sharding::Modulo, peers[..3].to_vec());
        let handoff = Topology {
            epoch: 2,
            sharding: Sharding::Modulo,
            shards: 5,
            peers: peers.clone(),
            migration: Some(Migration {
                from_shards: 3,
                phase: MigrationPhase::Handoff,
            }),
        };
        let copy = Topology {
            migration: Some(Migration {
                from_shards: 3,
                phase: MigrationPhase::Copy,
            }),
            ..handoff.clone()
        };
        assert!(c.write().adopt(stable.clone()));
        assert!(c.write().adopt(handoff.clone()));
        assert_eq!(c.routing().shards, 3);
        assert!(c.write().adopt(copy));
        assert!(!c.write().adopt(handoff));
        assert!(!c.write().adopt(stable));
        let r = c.routing();
        assert_eq!((r.epoch, r.shards, r.phase), (2, 5, Some("Copy")));
        assert_eq!(c.shard_of(&Key::new("x").unwrap()), 120 % 5);
        assert_eq!(c.server(4).unwrap().base(), "http://127.0.0.1:14");
        assert_eq!(c.server(0).unwrap().base(), "http://127.0.0.1:1");
        assert_eq!(c.servers().len(), 5);
        assert!(matches!(c.server(5), Err(Error::NoServerForShard(5))));
    }
}
