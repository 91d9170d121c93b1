//! `https://` servers: the library and the `kvclient` binary read and write through a kvserver
//! serving TLS when they trust its CA (`ClientConfig::ca_pem`, `--ca-file`), and fail with an
//! error that says what to do when they don't. Certificates are made here with rcgen.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kvclient::{ClientConfig, Error, ServerClient};
use kvproto::Key;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use support::{KvServer, kvclient_bin};

/// A CA, a server certificate it signed for 127.0.0.1, and a data token, in one directory.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.crt", &ca.pem());
        write("tls.crt", &cert.pem());
        write("tls.key", &key.serialize_pem());
        write("data-token", "data-t\n");
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }
}

/// A kvserver serving TLS and requiring the data token on data routes.
fn tls_server(files: &Files) -> KvServer {
    KvServer::start_with(
        0,
        &[
            "--tls-cert-file",
            &files.arg("tls.crt"),
            "--tls-key-file",
            &files.arg("tls.key"),
            "--data-token-file",
            &files.arg("data-token"),
            "--require-token-for-data",
        ],
    )
}

fn https(server: &KvServer) -> String {
    format!("https://127.0.0.1:{}", server.port)
}

fn kvclient(args: &[&str]) -> Output {
    Command::new(kvclient_bin())
        .args(args)
        .env_remove("KVCLIENT_SERVERS")
        .env_remove("KVCLIENT_KVSTORE")
        .env_remove("KVCLIENT_CA_FILE")
        .env_remove("KVCLIENT_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run kvclient")
}

#[tokio::test]
async fn the_library_reads_and_writes_over_https_with_the_ca() {
    let files = Files::new();
    let server = tls_server(&files);
    let config = ClientConfig {
        ca_pem: Some(ClientConfig::read_ca_file(&files.path("ca.crt")).unwrap()),
        token: Some("data-t".to_owned()),
        ..ClientConfig::default()
    };
    let client = ServerClient::new(&https(&server), config.clone()).unwrap();
    let key = Key::new("k").unwrap();
    client.put(&key, "v").await.unwrap();
    assert_eq!(client.get(&key).await.unwrap().unwrap().value, "v");

    // Without the CA: a TLS error naming the flag, not a bare "cannot reach".
    let untrusting = ServerClient::new(
        &https(&server),
        ClientConfig {
            ca_pem: None,
            ..config
        },
    )
    .unwrap();
    let err = untrusting.get(&key).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--ca-file"), "{err}");
}

#[test]
fn the_cli_uses_https_with_ca_file_and_token_file() {
    let files = Files::new();
    let server = tls_server(&files);
    let url = https(&server);
    let (ca, token) = (files.arg("ca.crt"), files.arg("data-token"));
    let with = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.extend_from_slice(&["--server", &url, "--ca-file", &ca, "--token-file", &token]);
        kvclient(&args)
    };
    let put = with(&["put", "k", "hello"]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = with(&["get", "k"]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hello");

    // No CA: refused at the handshake, and the message says which flag is missing.
    let out = kvclient(&[
        "get",
        "k",
        "--server",
        &url,
        "--token-file",
        &token,
        "--retries",
        "0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS handshake") && stderr.contains("--ca-file"),
        "{stderr}"
    );

    // A CA file that holds no certificate is a usage error, before anything is sent.
    let out = kvclient(&["get", "k", "--server", &url, "--ca-file", &token]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn https_addresses_are_accepted() {
    assert_eq!(
        kvclient::addr::parse_server("https://127.0.0.1:8443").unwrap(),
        "https://127.0.0.1:8443"
    );
}
