//! The book's client against three real kvserver processes: keys a–z, server `ord(c) % 3`,
//! `GET /load/<k>`, and on `_key_not_found_` `GET /save/<k>/<v>`. One write round, then 26 hits.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_client_works_unchanged() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let servers: Vec<Proc> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            spawn_binary(
                &d.path().join("data"),
                &["--pod-name", &format!("server-{i}")],
            )
        })
        .collect();
    for s in &servers {
        wait_healthy(&s.ops_url()).await;
    }
    let client = http();
    let value_of = |c: char| format!("{}{}", c, c.to_ascii_uppercase());

    let mut saves = 0;
    let mut hits = 0;
    for round in 0..2 {
        for c in 'a'..='z' {
            let server = &servers[(c as usize) % 3];
            let body = client
                .get(format!("{}/load/{c}", server.url()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if body == "_key_not_found_" {
                assert_eq!(round, 0, "key {c} lost between rounds");
                let r = client
                    .get(format!("{}/save/{c}/{}", server.url(), value_of(c)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.text().await.unwrap(), value_of(c));
                saves += 1;
            } else {
                assert_eq!(body, value_of(c));
                hits += 1;
            }
        }
    }
    assert_eq!((saves, hits), (26, 26));

    for (i, s) in servers.iter().enumerate() {
        let all = client
            .get(format!("{}/allKeys", s.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected: Vec<String> = ('a'..='z')
            .filter(|&c| c as usize % 3 == i)
            .map(String::from)
            .collect();
        assert_eq!(all, expected.join(","), "server {i}");
    }
}
