//! Real kvservers in this process on 127.0.0.1, for the tests that call them through kvclient.

use kvclient::{ClientConfig, ServerClient};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The admin token every test server requires.
pub const TOKEN: &str = "operator-test-token";

/// One kvserver on ephemeral ports; stopped when dropped (or when `stop` is taken).
pub struct Server {
    pub url: String,
    pub stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// Starts shard `shard`'s server with [`TOKEN`] and an empty data directory.
pub async fn start(shard: u32) -> Server {
    start_with(shard, &[]).await
}

/// [`start`] with more kvserver flags (`["--max-import-bytes", "1048576"]`).
pub async fn start_with(shard: u32, flags: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut args = vec![
        "kvserver".to_owned(),
        "--data-dir".to_owned(),
        dir.path().join("data").display().to_string(),
        "--admin-token-file".to_owned(),
        token_file.display().to_string(),
        "--shard".to_owned(),
        shard.to_string(),
        "--drain-delay".to_owned(),
        "0s".to_owned(),
    ];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    let config = <kvserver::Config as clap::Parser>::parse_from(args);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        kvserver::run(config, listener, ops, shutdown)
            .await
            .unwrap_or_else(|err| panic!("kvserver {shard} failed: {err}"));
    });
    Server {
        url,
        stop: Some(stop),
        _dir: dir,
    }
}

/// A data client of the server at `url` (no token).
pub fn client(url: &str) -> ServerClient {
    ServerClient::new(url, ClientConfig::default()).unwrap()
}
