//! The reconcile of item 14 (TLS and split credentials) against the scripted API server and the
//! fake shard admin: the peer and data token Secrets, a TLS Secret that is missing or incomplete,
//! and a TLS store's https shard maps and trusted CA.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use operator::KVStore;
use operator::controller::error_policy;
use operator::crd::TlsSpec;
use operator::error::Category;
use operator::status::Phase;
use support::harness::{Harness, condition, kvstore};
use support::shards::FakeShards;
use support::{Call, World, named_secret};

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEtest\n-----END PRIVATE KEY-----\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n";

fn tls_store(replicas: i32) -> KVStore {
    let mut kvs = kvstore(replicas);
    kvs.spec.tls = Some(TlsSpec {
        secret_name: "demo-tls".into(),
    });
    kvs.spec.auth.require_data_token = true;
    kvs
}

fn created_secrets(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .filter(|c| c.method == Method::POST && c.path.ends_with("/secrets"))
        .map(|c| {
            let name = c.body["metadata"]["name"].as_str().unwrap().to_owned();
            let token = c.body["stringData"]["token"].as_str().unwrap().to_owned();
            (name, token)
        })
        .collect()
}

#[tokio::test]
async fn a_store_from_before_the_split_gets_a_peer_token_that_sends_the_admin_token_first() {
    // The admin Secret exists (the servers run and send it to each other): a peer token that
    // sent something else first would be refused by the running servers.
    let h = Harness::new(World::running(3, 3, 3), FakeShards::default());
    h.reconcile(kvstore(3)).await.unwrap();
    let created = created_secrets(&h.calls());
    let names: Vec<&str> = created.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["demo-peer-token", "demo-data-token"]);
    let peer: Vec<&str> = created[0].1.lines().collect();
    assert_eq!(peer.len(), 2, "{peer:?}");
    assert_eq!(peer[0], "s3cret", "the admin token is sent first");
    assert_eq!(peer[1].len(), 48);
    assert_eq!(created[1].1.lines().count(), 1, "the data token is new");

    // A second reconcile finds them and creates nothing.
    let before = created.len();
    h.reconcile(kvstore(3)).await.unwrap();
    assert_eq!(created_secrets(&h.calls()).len(), before);

    // Every server reads all three files, from one volume of the three Secrets.
    let sts = &h.applies_to("statefulsets")[0].body;
    let args: Vec<&str> = sts["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for pair in [
        ["--admin-token-file", "/var/run/kvstore/token"],
        ["--peer-token-file", "/var/run/kvstore/peer-token"],
        ["--data-token-file", "/var/run/kvstore/data-token"],
    ] {
        assert!(args.windows(2).any(|w| w == pair), "{args:?}");
    }
    assert!(!args.contains(&"--require-token-for-data"));
    assert!(!args.iter().any(|a| a.starts_with("--tls")));
}

#[tokio::test]
async fn a_missing_tls_secret_is_named_in_the_status_and_nothing_is_applied() {
    let h = Harness::new(World::running(3, 3, 3), FakeShards::default());
    let err = h.reconcile(tls_store(3)).await.unwrap_err();
    assert_eq!(err.category(), Category::TlsSecret);
    let status = h.status();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let (state, reason, message) = condition(&status, "Degraded");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "TlsSecretNotReady")
    );
    assert!(
        message.contains("Secret default/demo-tls not found"),
        "{message}"
    );
    assert!(h.applies_to("statefulsets").is_empty());
    assert!(h.shards.pushes.lock().unwrap().is_empty());
    // Retried with backoff, not after the long requeue: cert-manager may issue it any moment.
    let action = error_policy(Arc::new(tls_store(3)), &err, h.ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
}

#[tokio::test]
async fn a_tls_secret_without_its_ca_is_named_with_the_key_it_lacks() {
    let mut world = World::running(3, 3, 3);
    world.secrets.insert(
        "demo-tls".into(),
        named_secret("demo-tls", &[("tls.crt", CERT), ("tls.key", KEY)]),
    );
    let h = Harness::new(world, FakeShards::default());
    h.reconcile(tls_store(3)).await.unwrap_err();
    let (_, reason, message) = condition(&h.status(), "Degraded");
    assert_eq!(reason, "TlsSecretNotReady");
    assert!(message.contains("lacks ca.crt"), "{message}");
    assert!(h.applies_to("statefulsets").is_empty());
}

#[tokio::test]
async fn a_tls_store_gets_https_maps_and_its_ca_is_trusted_for_its_servers() {
    let mut world = World::running(3, 3, 3);
    world.secrets.insert(
        "demo-tls".into(),
        named_secret(
            "demo-tls",
            &[("tls.crt", CERT), ("tls.key", KEY), ("ca.crt", CA)],
        ),
    );
    let h = Harness::new(world, FakeShards::default());
    h.reconcile(tls_store(3)).await.unwrap();

    let trusted = h.shards.trusted.lock().unwrap().clone();
    assert_eq!(
        trusted,
        [("demo.default.svc".to_owned(), Some(CA.as_bytes().to_vec()))]
    );
    let pushes = h.shards.pushes.lock().unwrap().clone();
    let urls: Vec<&str> = pushes.iter().map(|(u, _, _)| u.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://demo-0.demo.default.svc:80",
            "https://demo-1.demo.default.svc:80",
            "https://demo-2.demo.default.svc:80"
        ]
    );
    assert!(pushes[0].2.peers.iter().all(|p| p.starts_with("https://")));
    assert_eq!(h.status().phase, Some(Phase::Available));

    let sts = &h.applies_to("statefulsets")[0].body;
    let pod = &sts["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for pair in [
        ["--tls-cert-file", "/var/run/kvstore-tls/tls.crt"],
        ["--tls-key-file", "/var/run/kvstore-tls/tls.key"],
        ["--tls-ca-file", "/var/run/kvstore-tls/ca.crt"],
    ] {
        assert!(args.windows(2).any(|w| w == pair), "{args:?}");
    }
    assert!(args.contains(&"--require-token-for-data"));
    let tls_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(tls_volume["secret"]["secretName"], "demo-tls");
    // Probes stay on the plain ops port.
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["port"],
        "ops"
    );
    assert!(pod["containers"][0]["readinessProbe"]["httpGet"]["scheme"].is_null());
}
