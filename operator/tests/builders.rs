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
fn a_tls_store_mounts_its_certificate_and_every_token() {
    let inst = validate(&load("kvstore-tls.yaml")).unwrap();
    check(&build::statefulset(&inst, 3, None), "tls-statefulset.yaml");
    check(
        &build::credential_secret(&inst, build::Credential::Peer, "peer-token"),
        "tls-peer-secret.yaml",
    );
    check(
        &build::credential_secret(&inst, build::Credential::Data, "data-token"),
        "tls-data-secret.yaml",
    );
}

#[test]
fn a_replicated_store_adds_copy_statefulsets_and_per_shard_budgets_copy_0_unchanged() {
    let inst = validate(&load("kvstore-replicated.yaml")).unwrap();
    let uid = Some("5e0c7e7a-0000-4000-8000-00000000000a");
    // Copy 0's pods and the Service are factor 1's, byte for byte: no book pod restarts. Its
    // StatefulSet only rolls OnDelete (the operator's roller).
    let copy0 = build::statefulset(&inst, 3, uid);
    check(&copy0, "replicated-statefulset.yaml");
    let one = validate(&load("kvstore-demo.yaml")).unwrap();
    let template = |s: &k8s_openapi::api::apps::v1::StatefulSet| {
        serde_json::to_value(&s.spec.as_ref().unwrap().template).unwrap()
    };
    assert_eq!(
        template(&copy0),
        template(&build::statefulset(&one, 3, uid))
    );
    check(&build::service(&inst), "demo-service.yaml");
    check(
        &build::copy_statefulset(&inst, 1, 3, uid),
        "replicated-r1-statefulset.yaml",
    );
    check(
        &build::copy_statefulset(&inst, 2, 3, uid),
        "replicated-r2-statefulset.yaml",
    );
    check(
        &build::shard_pod_disruption_budget(&inst, 1),
        "replicated-s1-pdb.yaml",
    );
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

/// The container's environment as name → value (variables with a literal value only).
fn env_of(
    sts: &k8s_openapi::api::apps::v1::StatefulSet,
) -> std::collections::BTreeMap<String, String> {
    let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

fn container_of(
    sts: &k8s_openapi::api::apps::v1::StatefulSet,
) -> k8s_openapi::api::core::v1::Container {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .clone()
}

#[test]
fn durability_reaches_the_servers_as_kv_sync() {
    let demo = validate(&load("kvstore-demo.yaml")).unwrap();
    assert_eq!(
        env_of(&build::statefulset(&demo, 3, None))["KV_SYNC"],
        "batch"
    );
    let big = validate(&load("kvstore-custom.yaml")).unwrap();
    assert_eq!(
        env_of(&build::statefulset(&big, 5, None))["KV_SYNC"],
        "always"
    );
}

#[test]
fn every_shard_waits_for_its_shard_map_before_serving() {
    let inst = validate(&load("kvstore-demo.yaml")).unwrap();
    assert_eq!(
        env_of(&build::statefulset(&inst, 3, None))["KV_REQUIRE_TOPOLOGY"],
        "true"
    );
}

/// preStop sleep + drain + in-flight requests + the final sync fill the grace period, and the
/// server is told the same numbers the validation checked.
#[test]
fn the_stop_fits_inside_the_grace_period() {
    for (fixture, grace, shutdown) in [
        ("kvstore-demo.yaml", 10, "4s"),
        ("kvstore-custom.yaml", 30, "24s"),
    ] {
        let inst = validate(&load(fixture)).unwrap();
        let sts = build::statefulset(&inst, 3, None);
        let pod = sts.spec.as_ref().unwrap().template.spec.clone().unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(grace));
        let env = env_of(&sts);
        assert_eq!(env["KV_DRAIN_DELAY"], "2s", "{fixture}");
        assert_eq!(env["KV_SHUTDOWN_TIMEOUT"], shutdown, "{fixture}");
        let pre_stop = container_of(&sts).lifecycle.unwrap().pre_stop.unwrap();
        let sleep = pre_stop.sleep.expect("a preStop sleep").seconds;
        let secs = |v: &str| v.trim_end_matches('s').parse::<i64>().unwrap();
        let used = sleep + secs(&env["KV_DRAIN_DELAY"]) + secs(&env["KV_SHUTDOWN_TIMEOUT"]);
        assert!(
            used + operator::grace::FINAL_SYNC_SECONDS <= grace,
            "{fixture}: {used} s of {grace} s leave no time for the final sync"
        );
    }
}

/// No hook calls a route of the server: a route that drains could be called by anyone.
#[test]
fn the_pre_stop_hook_is_the_kubelets_sleep_not_a_server_route() {
    let inst = validate(&load("kvstore-demo.yaml")).unwrap();
    let pre_stop = container_of(&build::statefulset(&inst, 3, None))
        .lifecycle
        .unwrap()
        .pre_stop
        .unwrap();
    assert!(
        pre_stop.http_get.is_none() && pre_stop.exec.is_none(),
        "{pre_stop:?}"
    );
    assert!(pre_stop.sleep.is_some());
}

/// Liveness does not count while a large shard opens its store: the startup probe gives it
/// minutes first.
#[test]
fn a_shard_opening_a_large_store_is_not_killed_by_liveness() {
    let inst = validate(&load("kvstore-demo.yaml")).unwrap();
    let c = container_of(&build::statefulset(&inst, 3, None));
    let startup = c.startup_probe.expect("a startup probe");
    let get = startup.http_get.as_ref().unwrap();
    assert_eq!(get.path.as_deref(), Some("/healthz"));
    assert_eq!(
        get.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("ops".into())
    );
    let allowed = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
    assert!(allowed >= 600, "only {allowed} s to open the store");
    let liveness = c.liveness_probe.unwrap();
    assert!(allowed > liveness.period_seconds.unwrap() * liveness.failure_threshold.unwrap());
}

#[test]
fn a_grace_period_too_short_for_the_stop_is_refused() {
    let mut kvs = load("kvstore-demo.yaml");
    kvs.spec.termination_grace_period_seconds = 5;
    let err = validate(&kvs).unwrap_err();
    assert!(
        err.to_string()
            .contains("terminationGracePeriodSeconds 5 is too short"),
        "{err}"
    );
}
