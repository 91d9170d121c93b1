//! TLS on the data port and separate admin, peer and data credentials, on real kvserver
//! processes with certificates made here (rcgen): HTTPS served and plain HTTP told so, the
//! certificate renewed in place without a restart, two TLS servers forwarding to each other
//! through the CA, and tokens that open only their own routes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Proc, spawn_binary, wait_healthy};
use kvproto::{Sharding, Topology};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;

/// A CA and the files of one server certificate it signed (for 127.0.0.1 and localhost).
struct Pki {
    dir: tempfile::TempDir,
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), &ca_pem).unwrap();
        Pki {
            dir,
            ca_params,
            ca_key,
            ca_pem,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Writes a fresh server certificate and key as `name.crt`/`name.key`; returns its DER.
    fn issue(&self, name: &str) -> Vec<u8> {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(self.cert(name), cert.pem()).unwrap();
        std::fs::write(self.key(name), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.crt"))
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }

    /// A client trusting this CA only, one connection per request (so each sees the certificate
    /// in force), reporting the certificate it was served.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .tls_info(true)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

fn token_file(dir: &Path, name: &str, token: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

fn https(p: &Proc) -> String {
    format!("https://{}", p.data)
}

/// Waits until each of `servers` is healthy, then gives each the stable map naming them all in
/// that order (epoch 1, modulo), with the admin token.
async fn push_stable_map(client: &reqwest::Client, servers: &[&Proc]) {
    let map = Topology::stable(
        1,
        Sharding::Modulo,
        servers.iter().map(|s| https(s)).collect(),
    );
    for s in servers {
        wait_healthy(&s.ops_url()).await;
        let r = client
            .put(format!("{}/v1/admin/topology", https(s)))
            .bearer_auth("admin-t")
            .json(&map)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// A TLS server with its own admin, peer and data tokens ("admin-t", "peer-t", "data-t").
fn tls_server(pki: &Pki, name: &str, data_dir: &Path, extra: &[&str]) -> Proc {
    tls_server_trusting(pki, name, data_dir, extra, true)
}

/// Like [`tls_server`]; `trust_ca`: whether its peer client trusts the CA (`--tls-ca-file`).
fn tls_server_trusting(
    pki: &Pki,
    name: &str,
    data_dir: &Path,
    extra: &[&str],
    trust_ca: bool,
) -> Proc {
    pki.issue(name);
    let (cert, key, ca) = (pki.cert(name), pki.key(name), pki.ca_file());
    let admin = token_file(pki.dir.path(), "admin", "admin-t");
    let peer = token_file(pki.dir.path(), "peer", "peer-t");
    let data = token_file(pki.dir.path(), "data", "data-t");
    let mut args = vec![
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-file",
        ca.to_str().unwrap(),
        "--admin-token-file",
        &admin,
        "--peer-token-file",
        &peer,
        "--data-token-file",
        &data,
    ];
    if !trust_ca {
        args.drain(4..6);
    }
    args.extend_from_slice(extra);
    spawn_binary(data_dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_port_serves_https_and_tells_plain_http_clients_so() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let server = tls_server(&pki, "s0", data.path(), &[]);
    // The ops port stays plain HTTP, for the kubelet's probes.
    wait_healthy(&server.ops_url()).await;

    let client = pki.client();
    let r = client
        .put(format!("{}/v1/keys/k", https(&server)))
        .body("v1")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = client
        .get(format!("{}/load/k", https(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "v1");

    // Plain HTTP on the TLS port: a 400 that says why, and nothing served.
    let r = reqwest::Client::new()
        .get(format!("{}/load/k", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("HTTPS"));

    // A client that does not trust the CA is refused at the handshake.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let err = untrusting
        .get(format!("{}/load/k", https(&server)))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let server = tls_server(&pki, "s0", data.path(), &[]);
    wait_healthy(&server.ops_url()).await;
    // A new client each time: a resumed TLS session would show the certificate it began with.
    let served = || async {
        let r = pki
            .client()
            .get(format!("{}/v1/info", https(&server)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
        info.peer_certificate().unwrap().to_vec()
    };
    let first = std::fs::read_to_string(pki.cert("s0")).unwrap();
    let first_der = rustls::pki_types::CertificateDer::from_pem_slice(first.as_bytes());
    assert_eq!(served().await, first_der.unwrap().to_vec());

    // Renewed in place, as cert-manager does to the Secret's files.
    let renewed = pki.issue("s0");
    for _ in 0..200 {
        if served().await == renewed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the renewed certificate was never served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tls_servers_forward_to_each_other_with_the_peer_token() {
    let pki = Pki::new();
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s0 = tls_server(&pki, "s0", d0.path(), &["--shard", "0"]);
    let s1 = tls_server(&pki, "s1", d1.path(), &["--shard", "1"]);
    let client = pki.client();
    push_stable_map(&client, &[&s0, &s1]).await;
    // 'c' = 99 is shard 1's, 'b' = 98 shard 0's: each write goes through the other server.
    for (via, key, owner) in [(&s0, "c", "1"), (&s1, "b", "0")] {
        let r = client
            .put(format!("{}/v1/keys/{key}", https(via)))
            .body(format!("v-{key}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["x-kv-served-by"], owner);
        let r = client
            .get(format!("{}/load/{key}", https(via)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), format!("v-{key}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_certificate_is_not_trusted_is_unavailable() {
    let pki = Pki::new();
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s0 = tls_server_trusting(&pki, "s0", d0.path(), &["--shard", "0"], false);
    let s1 = tls_server(&pki, "s1", d1.path(), &["--shard", "1"]);
    let client = pki.client();
    push_stable_map(&client, &[&s0, &s1]).await;
    // s0 does not trust the CA that signed s1's certificate: the forward fails, nothing lands.
    let r = client
        .put(format!("{}/v1/keys/c", https(&s0)))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "peer_unavailable");
    let r = client
        .get(format!("{}/v1/keys/c", https(&s1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_peer_ca_file_is_trusted_without_a_restart() {
    let (pki, other) = (Pki::new(), Pki::new());
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    // s0 trusts another CA at first: s1's certificate is not trusted.
    std::fs::write(ca_file.path(), &other.ca_pem).unwrap();
    let ca_arg = ca_file.path().to_str().unwrap();
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s0 = tls_server_trusting(
        &pki,
        "s0",
        d0.path(),
        &["--shard", "0", "--tls-ca-file", ca_arg],
        false,
    );
    let s1 = tls_server(&pki, "s1", d1.path(), &["--shard", "1"]);
    let client = pki.client();
    push_stable_map(&client, &[&s0, &s1]).await;
    let forward = || async {
        client
            .put(format!("{}/v1/keys/c", https(&s0)))
            .body("v")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(forward().await, 503);
    // The CA is rotated in the Secret: the old one and the new one, as cert-manager bundles them.
    std::fs::write(ca_file.path(), format!("{}{}", other.ca_pem, pki.ca_pem)).unwrap();
    for _ in 0..200 {
        if forward().await == 204 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rotated CA file was never trusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_peer_and_data_tokens_each_open_only_their_routes() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let server = tls_server(&pki, "s0", data.path(), &["--require-token-for-data"]);
    wait_healthy(&server.ops_url()).await;
    let client = pki.client();
    let base = https(&server);
    let status = |path: &'static str, token: Option<&'static str>, forwarded: bool| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut req = client.get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if forwarded {
                req = req.header("x-kv-hops", "1");
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    // Admin routes: the admin token only.
    assert_eq!(
        status("/v1/admin/export/count", Some("admin-t"), false).await,
        200
    );
    assert_eq!(
        status("/v1/admin/export/count", Some("peer-t"), false).await,
        401
    );
    assert_eq!(
        status("/v1/admin/export/count", Some("data-t"), false).await,
        401
    );
    // Forwarding headers: the peer token only.
    assert_eq!(status("/v1/keys/k", Some("peer-t"), true).await, 404);
    assert_eq!(status("/v1/keys/k", Some("admin-t"), true).await, 401);
    assert_eq!(status("/v1/keys/k", Some("data-t"), true).await, 401);
    // The internal read: the peer (or admin) token, never the data token.
    assert_eq!(
        status("/v1/internal/keys/k", Some("peer-t"), false).await,
        404
    );
    assert_eq!(
        status("/v1/internal/keys/k", Some("data-t"), false).await,
        401
    );
    // Data routes under --require-token-for-data: a token is required; the data token does.
    assert_eq!(status("/v1/keys/k", None, false).await, 401);
    assert_eq!(status("/v1/keys/k", Some("wrong"), false).await, 401);
    assert_eq!(status("/v1/keys/k", Some("data-t"), false).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed_at_the_header_deadline_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let server = tls_server(&pki, "s0", data.path(), &["--header-read-timeout", "1s"]);
    wait_healthy(&server.ops_url()).await;
    // The first byte of a handshake record, then nothing.
    let mut stalled = tokio::net::TcpStream::connect(server.data).await.unwrap();
    stalled.write_all(&[0x16]).await.unwrap();
    // Meanwhile a real client is served.
    let r = pki
        .client()
        .get(format!("{}/v1/info", https(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The stalled one is closed by the server (bounded wait, far beyond the 1 s deadline).
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), stalled.read(&mut buf))
        .await
        .expect("the server never closed a stalled TLS handshake");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[test]
fn a_key_that_does_not_fit_the_certificate_refuses_to_start() {
    let pki = Pki::new();
    pki.issue("a");
    pki.issue("b");
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvserver"))
        .args(["--port", "0", "--ops-port", "0", "--bind", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--tls-cert-file")
        .arg(pki.cert("a"))
        .arg("--tls-key-file")
        .arg(pki.key("b"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not fit the certificate"), "{stderr}");
}
