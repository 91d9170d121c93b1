//! The operator's shard map push (`shards::push` through kvclient's `ServerClient`) against
//! real kvservers running in this process on 127.0.0.1.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use kvproto::{Sharding, Topology};
use operator::shards::{self, KvClientAdmin, ShardError};
use support::kvservers::{TOKEN, client, start};

/// Pushes `map` to every server it lists.
async fn push_all(admin: &KvClientAdmin, token: &str, map: &Topology) -> Result<(), ShardError> {
    shards::push(admin, token, map, &map.peers, 0..map.shards).await
}

async fn served_topology(url: &str) -> Option<Topology> {
    // The server opens its storage before it answers; the client retries connection errors.
    client(url).topology().await.unwrap()
}

#[tokio::test]
async fn every_server_takes_the_map_and_a_repeat_is_harmless() {
    let shards = [start(0).await, start(1).await, start(2).await];
    let peers: Vec<String> = shards.iter().map(|s| s.url.clone()).collect();
    let map = Topology::stable(1, Sharding::Modulo, peers);
    let admin = KvClientAdmin::default();

    push_all(&admin, TOKEN, &map).await.unwrap();
    for shard in &shards {
        assert_eq!(served_topology(&shard.url).await.as_ref(), Some(&map));
    }
    // Every reconcile re-pushes the acknowledged map: servers accept the same map again.
    push_all(&admin, TOKEN, &map).await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_or_a_conflicting_map_is_refused_and_names_the_shard() {
    let shards = [start(0).await, start(1).await];
    let peers: Vec<String> = shards.iter().map(|s| s.url.clone()).collect();
    let map = Topology::stable(1, Sharding::Modulo, peers.clone());
    let admin = KvClientAdmin::default();

    let err = push_all(&admin, "not-the-token", &map).await.unwrap_err();
    assert!(
        matches!(err, ShardError::Unreachable { shard: 0, .. }),
        "{err}"
    );
    assert_eq!(served_topology(&shards[0].url).await, None);

    push_all(&admin, TOKEN, &map).await.unwrap();
    // The same epoch with another shard count conflicts with what the servers hold.
    let other = Topology::stable(1, Sharding::Modulo, vec![peers[0].clone()]);
    let err = push_all(&admin, TOKEN, &other).await.unwrap_err();
    assert!(
        matches!(err, ShardError::Unreachable { shard: 0, .. }),
        "{err}"
    );
    assert_eq!(served_topology(&shards[0].url).await.as_ref(), Some(&map));
}

/// A CA and a server certificate it signed for `localhost`, as files.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let dir = tempfile::tempdir().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.crt"), &ca_pem).unwrap();
        Pki { dir, ca_pem }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// The operator's admin client reaches a TLS server only through the CA it was told to trust
/// for that server's domain, and rebuilds its client when that CA changes.
#[tokio::test]
async fn the_admin_client_speaks_https_through_the_trusted_ca_only() {
    let pki = Pki::new();
    let (cert, key, ca) = (pki.file("tls.crt"), pki.file("tls.key"), pki.file("ca.crt"));
    let flags = [
        "--tls-cert-file",
        cert.as_str(),
        "--tls-key-file",
        key.as_str(),
        "--tls-ca-file",
        ca.as_str(),
    ];
    let server = support::kvservers::start_with(0, &flags).await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}");
    let map = Topology::stable(1, Sharding::Modulo, vec![url.clone()]);
    let admin = KvClientAdmin::new(kvclient::ClientConfig {
        retry: kvclient::RetryPolicy::NONE,
        ..kvclient::ClientConfig::default()
    });

    // Nothing trusted yet: the handshake fails (no built-in roots), nothing is pushed.
    let err = push_all(&admin, TOKEN, &map).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // Another store's CA does not open this server either.
    let other = Pki::new();
    operator::shards::ShardAdmin::trust(&admin, "localhost", Some(other.ca_pem.as_bytes()));
    let err = push_all(&admin, TOKEN, &map).await.unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );

    operator::shards::ShardAdmin::trust(&admin, "localhost", Some(pki.ca_pem.as_bytes()));
    push_all(&admin, TOKEN, &map).await.unwrap();
    let keys = operator::shards::ShardAdmin::key_count(&admin, &url, TOKEN).await;
    assert_eq!(keys.unwrap(), 0);

    // Plain http to the TLS port gets nothing from it.
    let plain = Topology::stable(1, Sharding::Modulo, vec![server.url.clone()]);
    assert!(push_all(&admin, TOKEN, &plain).await.is_err());
}
