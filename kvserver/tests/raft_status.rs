//! `GET /v1/admin/raft/status` before any group runs, through the real router with `oneshot`:
//! the node ID is born on the volume at the first call and kept, copy 0 reports no group, a
//! copy with `--raft-store-uid` its group, and a volume of another group is refused. A server
//! that is never asked creates no raft state at all.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod common;

use std::path::Path;

use axum::http::StatusCode;
use common::*;
use kvproto::raft::{RaftStatus, ServerState};
use kvproto::raft_admin::STATUS_PATH;
use kvserver::{AppState, Config};

fn copy_config(dir: &Path, uid: &str) -> Config {
    let mut c = config(dir);
    c.pod_name = Some("kv-r1-3".to_owned());
    c.raft_store_uid = Some(uid.to_owned());
    c.raft_advertise_url = Some("http://kv-r1-3.kv.ns.svc:8080".to_owned());
    c
}

async fn status(state: &AppState) -> RaftStatus {
    let router = kvserver::app(state.clone());
    let r = send(&router, admin("GET", STATUS_PATH, "")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn has_raft_meta(state: &AppState) -> bool {
    state.store.database().unwrap().keyspace_exists("raft_meta")
}

#[tokio::test]
async fn the_status_needs_the_admin_token() {
    let f = fixture();
    let r = send(&f.router, get(STATUS_PATH)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!has_raft_meta(&f.state));
}

#[tokio::test]
async fn copy_0_reports_a_node_id_born_at_the_first_call_and_no_group() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let first = {
        let state = AppState::open(&c).unwrap();
        let first = status(&state).await;
        assert_eq!(first.group, None);
        assert_ne!(first.node_id, 0);
        assert_eq!(first.state, ServerState::Learner);
        assert!(first.members.is_empty() && first.leader.is_none());
        assert_eq!(status(&state).await, first, "asked again: the same");
        // Without a group, no group storage was created.
        assert!(!has_raft_meta(&state));
        first
    };
    let state = AppState::open(&c).unwrap();
    assert_eq!(
        status(&state).await.node_id,
        first.node_id,
        "kept on the volume"
    );
    let json = serde_json::to_value(&first).unwrap();
    assert_eq!(json["nodeId"], first.node_id.to_string());
    assert!(json.get("group").is_none());
}

#[tokio::test]
async fn a_copy_reports_its_group_and_keeps_its_identity_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let c = copy_config(dir.path(), "uid-1");
    let first = {
        let state = AppState::open(&c).unwrap();
        assert!(!has_raft_meta(&state), "nothing before the first need");
        let first = status(&state).await;
        assert_eq!(first.group.as_ref().unwrap().to_string(), "uid-1/3");
        assert_ne!(first.node_id, 0);
        assert_eq!(first.state, ServerState::Learner);
        assert!(first.members.is_empty());
        assert!(has_raft_meta(&state));
        state.raft.close().unwrap();
        first
    };
    // Opened at start now (the volume holds its raft state), same identity.
    let state = AppState::open(&c).unwrap();
    assert_eq!(status(&state).await.node_id, first.node_id);
}

#[tokio::test]
async fn a_volume_of_another_group_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let state = AppState::open(&copy_config(dir.path(), "uid-1")).unwrap();
        status(&state).await;
    }
    let e = AppState::open(&copy_config(dir.path(), "uid-2")).unwrap_err();
    assert!(
        format!("{e:#}").contains("uid-1/3"),
        "the message names the volume's group: {e:#}"
    );
}

#[tokio::test]
async fn data_written_before_the_group_storage_opened_stays_served() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(&copy_config(dir.path(), "uid-1")).unwrap();
    let router = kvserver::app(state.clone());
    let r = send(&router, get("/save/k/v")).await;
    assert_eq!(r.status, StatusCode::OK);
    status(&state).await;
    assert_eq!(send(&router, get("/load/k")).await.text(), "v");
    assert_eq!(state.store.key_count(), 1);
}
