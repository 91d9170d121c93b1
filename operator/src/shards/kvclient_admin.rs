//! The real admin client: kvclient's `ServerClient` with the store's token and, for a store
//! under TLS, its CA ([`ShardAdmin::trust`]): each store's `https://` servers are trusted
//! through that store's `ca.crt` only, never built-in roots nor another store's CA.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::StreamExt;
use kvclient::{ClientConfig, ExportScope, RetryPolicy, ServerClient};
use kvproto::bulk::BulkRecord;
use kvproto::raft::{GroupId, RaftStatus};
use kvproto::wire::ImportMode;
use kvproto::{Fence, Topology};

use super::admin::{CallResult, RecordStream, ShardAdmin};
use super::raft::RaftChange;

/// Deadline of one admin call (other than bulk export and import).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Deadline of one Raft management call. A membership change answers once committed (a few
/// heartbeats); a copy that does not answer in this time is reported and asked again at the
/// next reconcile, with no retry in between: a follower's 503 `no_leader` or a change in
/// progress will not pass by asking the same copy again at once.
pub const RAFT_TIMEOUT: Duration = Duration::from_secs(10);

/// A CA trusted for a store's servers.
type Ca = Arc<[u8]>;

/// The clients by (base URL, token, Raft management or not), each with the CA it was built
/// with.
type Clients = HashMap<(String, String, bool), (Option<Ca>, ServerClient)>;

/// kvclient's `ServerClient` with the store's token, one per server and token, kept so that
/// the copy's many batches reuse their connections; rebuilt only when its store's CA changes.
#[derive(Debug, Clone, Default)]
pub struct KvClientAdmin {
    /// Timeouts and retries of the admin calls (the token and CA are set per store).
    pub config: ClientConfig,
    clients: Arc<Mutex<Clients>>,
    /// The CA of each TLS store, by the domain its servers' hosts are under.
    trusted: Arc<Mutex<HashMap<String, Ca>>>,
}

impl KvClientAdmin {
    /// An admin client with these timeouts and retries.
    pub fn new(config: ClientConfig) -> Self {
        KvClientAdmin {
            config,
            clients: Arc::default(),
            trusted: Arc::default(),
        }
    }

    /// The operator's admin client: a cleanup or a topology push to a busy shard may take
    /// longer than a data request, so calls get [`ADMIN_TIMEOUT`] (bulk transfers keep theirs).
    pub fn for_operator() -> Self {
        KvClientAdmin::new(ClientConfig {
            timeout: ADMIN_TIMEOUT,
            ..ClientConfig::default()
        })
    }

    fn client(&self, base_url: &str, token: &str) -> CallResult<ServerClient> {
        self.client_for(base_url, token, false)
    }

    /// The client of the Raft management calls: [`RAFT_TIMEOUT`], one attempt.
    fn raft_client(&self, base_url: &str, token: &str) -> CallResult<ServerClient> {
        self.client_for(base_url, token, true)
    }

    fn client_for(&self, base_url: &str, token: &str, raft: bool) -> CallResult<ServerClient> {
        let ca = self.ca_for(base_url);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (base_url.to_owned(), token.to_owned(), raft);
        if let Some((built_with, client)) = clients.get(&key)
            && same_ca(built_with.as_ref(), ca.as_ref())
        {
            return Ok(client.clone());
        }
        let mut config = ClientConfig {
            token: Some(token.to_owned()),
            ca_pem: ca.as_ref().map(|pem| pem.to_vec()),
            ..self.config.clone()
        };
        if raft {
            config.timeout = RAFT_TIMEOUT.min(config.timeout);
            config.retry = RetryPolicy::NONE;
        }
        let client = ServerClient::new(base_url, config)?;
        clients.insert(key, (ca, client.clone()));
        Ok(client)
    }

    /// The CA trusted for `base_url`: that of the domain its host is, or is under (`https://`
    /// only; a plain server needs none).
    fn ca_for(&self, base_url: &str) -> Option<Ca> {
        let rest = base_url.strip_prefix("https://")?;
        let host = rest.split([':', '/']).next().unwrap_or_default();
        let trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        trusted
            .iter()
            .find(|(domain, _)| in_domain(host, domain))
            .map(|(_, ca)| ca.clone())
    }
}

/// True when `host` is `domain` or a name under it.
fn in_domain(host: &str, domain: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    host == domain
        || host
            .strip_suffix(&domain)
            .is_some_and(|label| label.ends_with('.'))
}

fn same_ca(a: Option<&Ca>, b: Option<&Ca>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        _ => false,
    }
}

impl ShardAdmin for KvClientAdmin {
    fn trust(&self, domain: &str, ca_pem: Option<&[u8]>) {
        let mut trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        match ca_pem {
            // The same CA again (every reconcile): keep it, and the clients built with it.
            Some(pem) if trusted.get(domain).is_some_and(|ca| **ca == *pem) => {}
            Some(pem) => {
                trusted.insert(domain.to_owned(), Arc::from(pem));
            }
            None => {
                trusted.remove(domain);
            }
        }
    }

    async fn put_topology(
        &self,
        base_url: &str,
        token: &str,
        topology: &Topology,
    ) -> CallResult<()> {
        self.client(base_url, token)?.put_topology(topology).await?;
        Ok(())
    }

    async fn export_moving(&self, base_url: &str, token: &str) -> CallResult<RecordStream> {
        let stream = self
            .client(base_url, token)?
            .export(ExportScope::Moving)
            .await?;
        Ok(stream.boxed())
    }

    async fn moving_count(&self, base_url: &str, token: &str) -> CallResult<u64> {
        self.client(base_url, token)?
            .export_count(ExportScope::Moving)
            .await
    }

    async fn import_if_absent(
        &self,
        base_url: &str,
        token: &str,
        fence: Fence,
        records: &[BulkRecord],
    ) -> CallResult<u64> {
        let report = self
            .client(base_url, token)?
            .import(records, ImportMode::IfAbsent, Some(fence))
            .await?;
        Ok(report.applied)
    }

    async fn cleanup(&self, base_url: &str, token: &str, fence: Fence) -> CallResult<()> {
        self.client(base_url, token)?.cleanup(Some(fence)).await?;
        Ok(())
    }

    async fn key_count(&self, base_url: &str, token: &str) -> CallResult<u64> {
        Ok(self.client(base_url, token)?.info().await?.keys)
    }

    async fn raft_status(&self, base_url: &str, token: &str) -> CallResult<RaftStatus> {
        self.raft_client(base_url, token)?.raft_status().await
    }

    async fn raft_change(
        &self,
        base_url: &str,
        token: &str,
        group: &GroupId,
        change: &RaftChange,
    ) -> CallResult<()> {
        let client = self.raft_client(base_url, token)?;
        // The answers (the leader's status, the new leader) are not used: the next reconcile
        // reads every copy's status anyway.
        match change {
            RaftChange::Init { voters } => client.raft_init(group, voters).await.map(drop),
            RaftChange::Join { member } => client.raft_join(group, member).await.map(drop),
            RaftChange::AddLearner { member } => {
                client.raft_add_learner(group, member).await.map(drop)
            }
            RaftChange::SetVoters { voters } => {
                client.raft_set_voters(group, voters).await.map(drop)
            }
            RaftChange::TransferLeader { to } => client
                .raft_transfer_leader(group, to.as_ref())
                .await
                .map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::store_domain;

    #[test]
    fn a_store_s_ca_is_used_for_its_own_https_servers_only() {
        let admin = KvClientAdmin::default();
        let domain = store_domain("demo", "ns");
        admin.trust(&domain, Some(b"CA-1"));
        let url = |store: &str, tls| kvproto::peer_url_tls(store, "ns", 2, 443, tls);
        assert_eq!(
            admin.ca_for(&url("demo", true)).as_deref(),
            Some(&b"CA-1"[..])
        );
        assert_eq!(admin.ca_for(&url("demo", false)), None, "http needs no CA");
        assert_eq!(admin.ca_for(&url("other", true)), None);
        // `xdemo.ns.svc` is not under `demo.ns.svc`.
        assert_eq!(admin.ca_for("https://a.xdemo.ns.svc:1"), None);
        assert!(in_domain("DEMO-0.demo.ns.svc", "demo.ns.svc"));
        assert!(in_domain("localhost", "localhost"));

        // The same CA keeps its Arc (clients stay cached); a new one replaces it.
        let before = admin.ca_for(&url("demo", true)).unwrap();
        admin.trust(&domain, Some(b"CA-1"));
        assert!(Arc::ptr_eq(
            &before,
            &admin.ca_for(&url("demo", true)).unwrap()
        ));
        admin.trust(&domain, Some(b"CA-2"));
        assert_eq!(
            admin.ca_for(&url("demo", true)).as_deref(),
            Some(&b"CA-2"[..])
        );
        admin.trust(&domain, None);
        assert_eq!(admin.ca_for(&url("demo", true)), None);
    }
}
