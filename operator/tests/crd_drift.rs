//! Fails when the committed CRD differs from what the code generates. To refresh it, run
//! `cargo run -p operator -- crd > crds/kvstore.dev_kvstores.yaml` (or set `UPDATE_CRD=1`).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

use std::path::PathBuf;

use operator::crdgen::{CRD_FILE, crd_yaml};

#[test]
fn committed_crd_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_FILE);
    let generated = crd_yaml().unwrap();
    if std::env::var_os("UPDATE_CRD").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{CRD_FILE} is stale: run `cargo run -p operator -- crd > {CRD_FILE}` and commit it"
    );
}

#[test]
fn crd_has_the_scale_subresource_and_printer_columns() {
    let crd: serde_yaml::Value = serde_yaml::from_str(&crd_yaml().unwrap()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["metadata"]["name"], "kvstores.kvstore.dev");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "kvs");
    let scale = &version["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");
    assert_eq!(scale["statusReplicasPath"], ".status.replicas");
    assert_eq!(scale["labelSelectorPath"], ".status.selector");
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Desired",
            "Ready",
            "Serving",
            "Phase",
            "Rebalance",
            "Moved",
            "Total",
            "Age"
        ]
    );
}

/// Every property of the spec has a description, so `kubectl explain kvstore.spec` helps.
#[test]
fn every_spec_field_is_documented() {
    let crd: serde_yaml::Value = serde_yaml::from_str(&crd_yaml().unwrap()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    fn walk(path: &str, schema: &serde_yaml::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_mapping() {
            for (name, sub) in props {
                let p = format!("{path}.{}", name.as_str().unwrap_or("?"));
                if sub["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(p.clone());
                }
                walk(&p, sub, missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk("spec", spec, &mut missing);
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}

/// The CEL rule that reserves the ops port is literal text in the schema: it names the same port
/// as the wire contract, and so does the description `kubectl explain` shows.
#[test]
fn the_port_rule_reserves_the_kvserver_ops_port_of_the_wire_contract() {
    let crd: serde_yaml::Value = serde_yaml::from_str(&crd_yaml().unwrap()).unwrap();
    let port = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["port"];
    let ops_port = kvproto::wire::DEFAULT_OPS_PORT;
    let reserve = &port["x-kubernetes-validations"][0];
    assert_eq!(
        reserve["rule"].as_str(),
        Some(&*format!("self != {ops_port}"))
    );
    assert_eq!(
        reserve["message"].as_str(),
        Some(&*format!("port {ops_port} is the kvserver ops port"))
    );
    let description = port["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("ops port {ops_port}")),
        "{description}"
    );
}

fn spec_property(name: &str) -> serde_yaml::Value {
    let crd: serde_yaml::Value = serde_yaml::from_str(&crd_yaml().unwrap()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        [name]
        .clone()
}

/// The API server refuses a grace period the shard pods could not stop in, with the same
/// minimum the operator's validation uses, and `kubectl explain` says why.
#[test]
fn the_grace_period_minimum_is_the_stop_budget() {
    let grace = spec_property("terminationGracePeriodSeconds");
    let min = operator::grace::MIN_GRACE_SECONDS;
    // schemars writes the bound as a float (`7.0`).
    assert_eq!(grace["minimum"].as_f64(), Some(min as f64));
    assert_eq!(grace["default"].as_i64(), Some(10));
    let description = grace["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("at least {min}")),
        "{description}"
    );
}

/// Durability is `always` or `batch` (never `never`: the operator does not offer losing
/// acknowledged writes on a process crash), `batch` by default, and its description says what
/// each loses.
#[test]
fn durability_offers_always_and_batch_and_says_what_each_loses() {
    let durability = spec_property("durability");
    let values: Vec<&str> = durability["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(values, ["always", "batch"]);
    assert_eq!(durability["default"].as_str(), Some("batch"));
    let description = durability["description"].as_str().unwrap();
    for says in ["power loss", "50 ms", "process", "KV_SYNC"] {
        assert!(description.contains(says), "{says}: {description}");
    }
}

/// TLS cannot be turned on or off on a live store (its shard map names the peers' scheme, and
/// a map of the same epoch with other peers is refused), and its Secret name is bounded.
#[test]
fn tls_is_fixed_at_creation_and_data_auth_is_a_switch() {
    let crd: serde_yaml::Value = serde_yaml::from_str(&crd_yaml().unwrap()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules: Vec<&str> = spec["x-kubernetes-validations"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"has(self.tls) == has(oldSelf.tls)"),
        "{rules:?}"
    );
    let secret_name = &spec["properties"]["tls"]["properties"]["secretName"];
    assert_eq!(secret_name["type"], "string");
    assert_eq!(secret_name["minLength"].as_u64(), Some(1));
    assert_eq!(secret_name["maxLength"].as_u64(), Some(253));
    let require = &spec["properties"]["auth"]["properties"]["requireDataToken"];
    assert_eq!(require["type"], "boolean");
    assert_eq!(require["default"], false);
}
