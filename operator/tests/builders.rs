//! The pure builders against reviewed YAML fixtures: a KVStore in, each child out.
//! Set `UPDATE_FIXTURES=1` to rewrite the expected files after an intended change (then review
//! the diff).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

use std::path::PathBuf;

use operator::KVStore;
use operator::build;
use operator::validate::validate;
use serde::Serialize;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> KVStore {
    let text = std::fs::read_to_string(fixture_path(name)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Compares `obj` with the fixture as JSON values, so key order and formatting don't matter.
fn check<T: Serialize>(obj: &T, expected: &str) {
    let actual = serde_json::to_value(obj).unwrap();
    let path = fixture_path(expected);
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, serde_yaml::to_string(&actual).unwrap()).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let wanted: serde_json::Value = serde_yaml::from_str(&text).unwrap_or_default();
    assert!(
        actual == wanted,
        "{expected} differs; got:\n{}",
        serde_yaml::to_string(&actual).unwrap()
    );
}

#[test]
fn default_store_children() {
    let inst = validate(&load("kvstore-demo.yaml")).unwrap();
    check(&build::service(&inst), "demo-service.yaml");
    check(
        &build::statefulset(&inst, 3, Some("5e0c7e7a-0000-4000-8000-00000000000a")),
        "demo-statefulset.yaml",
    );
    check(&build::pod_disruption_budget(&inst), "demo-pdb.yaml");
    check(
        &build::token_secret(&inst, "test-token"),
        "demo-secret.yaml",
    );
}

#[test]
fn customised_store_statefulset_merges_the_overrides() {
    let inst = validate(&load("kvstore-custom.yaml")).unwrap();
    check(&build::statefulset(&inst, 5, None), "big-statefulset.yaml");
    check(&build::service(&inst), "big-service.yaml");
}

#[test]
fn random_tokens_are_long_and_differ() {
    let a = build::random_token();
    let b = build::random_token();
    assert_eq!(a.len(), 48);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

#[test]
fn an_override_of_a_selector_label_is_refused() {
    let mut kvs = load("kvstore-custom.yaml");
    kvs.spec
        .pod_overrides
        .labels
        .insert("app.kubernetes.io/name".into(), "other".into());
    let err = validate(&kvs).unwrap_err();
    assert!(err.to_string().contains("app.kubernetes.io/name"), "{err}");
}
