#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failed setup should panic
#![allow(dead_code)] // each test binary uses part of the support

//! What the operator's tests share:
//! - this file: a scripted API server behind `tower_test::mock::pair`, as kube-rs's
//!   controller-rs does: it answers the calls a reconcile makes from a small in-memory world and
//!   records every request, so tests assert on what the operator asked the API server to do;
//! - `harness`: the one reconcile harness over that API server and the fake shards;
//! - `shards`: the one fake of the shards' admin API, with `groups`, its fake Raft groups;
//! - `kvservers`: real kvservers in this process.

pub mod groups;
pub mod harness;
pub mod kvservers;
pub mod shards;

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request the operator sent.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    /// True for a server-side apply by the operator's field manager.
    pub fn is_operator_apply(&self) -> bool {
        self.method == Method::PATCH
            && self.query.contains("fieldManager=kvstore-operator")
            && self.query.contains("force=true")
    }
}

/// What the fake API server holds.
#[derive(Debug, Default)]
pub struct World {
    /// The store being reconciled, answered to its patches.
    pub kvstore: Value,
    pub statefulset: Option<Value>,
    /// The admin token Secret (`demo-admin-token`).
    pub secret: Option<Value>,
    /// Every other Secret, by name (the peer and data tokens, a TLS Secret).
    pub secrets: std::collections::BTreeMap<String, Value>,
    /// Refuse StatefulSet applies as invalid (an immutable field changed).
    pub reject_statefulset: bool,
    /// Pods whose kvserver has started; `None`: as many as are ready.
    pub started: Option<i32>,
    /// Claims and PersistentVolumes by name; the cluster's node names.
    pub claims: std::collections::BTreeMap<String, Value>,
    pub volumes: std::collections::BTreeMap<String, Value>,
    pub nodes: Vec<String>,
    /// The copy StatefulSets (`demo-rK`) by name, as applied; every other StatefulSet GET or
    /// PATCH is the store's own (`demo`, [`World::statefulset`]).
    pub copies: std::collections::BTreeMap<String, Value>,
    /// Pods each copy StatefulSet reports (`status.replicas`); `None`: as many as it asks for.
    pub copy_pods: Option<i32>,
    /// PodDisruptionBudgets by name, as applied.
    pub pdbs: std::collections::BTreeMap<String, Value>,
    /// The pods of every copy, when a test lists them itself ([`pod`]); a DELETE removes one.
    /// Empty: pods are made up from the StatefulSets' counts.
    pub pods: Vec<Value>,
    /// `status.updateRevision` of StatefulSets by name (copies; copy 0 keeps its own status).
    pub revisions: std::collections::BTreeMap<String, String>,
    pub calls: Vec<Call>,
}

impl World {
    /// A store whose StatefulSet reports `desired`, `current` and `ready` pods and whose token
    /// Secret exists.
    pub fn running(desired: i32, current: i32, ready: i32) -> Self {
        World {
            statefulset: Some(statefulset(desired, current, ready)),
            secret: Some(secret("s3cret")),
            ..World::default()
        }
    }
}

/// A client whose API server is `world`.
pub fn client(world: Arc<Mutex<World>>) -> (Client, tokio::task::JoinHandle<()>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = Call {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                body,
            };
            let (status, answer) = answer(&mut world.lock().unwrap(), &call);
            world.lock().unwrap().calls.push(call);
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            send.send_response(response);
        }
    });
    (Client::new(service, "default"), task)
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": "not found", "reason": "NotFound", "code": 404}),
    )
}

fn answer(world: &mut World, call: &Call) -> (StatusCode, Value) {
    let segments: Vec<&str> = call.path.rsplit('/').collect();
    let last = segments.first().copied().unwrap_or_default();
    // `.../kvstores/demo/status` is the status of the `kvstores` collection.
    let kind = match last {
        "status" => segments.get(2),
        _ => segments.get(1),
    }
    .copied()
    .unwrap_or_default();
    if let Some(answer) = replicated(world, call, kind, last) {
        return answer;
    }
    match (&call.method, kind, last) {
        (&Method::GET, "statefulsets", _) => world
            .statefulset
            .clone()
            .map_or_else(not_found, |s| (StatusCode::OK, s)),
        (&Method::GET, "secrets", name) => {
            let secret = if name == "demo-admin-token" {
                world.secret.clone()
            } else {
                world.secrets.get(name).cloned()
            };
            secret.map_or_else(not_found, |s| (StatusCode::OK, s))
        }
        (&Method::POST, _, "secrets") => {
            // As the API server stores it: `stringData` becomes base64 `data`.
            let mut stored = call.body.clone();
            if let Some(text) = stored["stringData"]["token"].as_str() {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(text);
                stored["data"] = json!({ "token": b64 });
            }
            match call.body["metadata"]["name"].as_str() {
                Some("demo-admin-token") => world.secret = Some(stored.clone()),
                Some(name) => {
                    world.secrets.insert(name.to_owned(), stored.clone());
                }
                None => {}
            }
            (StatusCode::CREATED, stored)
        }
        (&Method::PATCH, "statefulsets", _) if world.reject_statefulset => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
                   "reason": "Invalid",
                   "message": "StatefulSet.apps \"demo\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"}),
        ),
        (&Method::PATCH, "statefulsets", _) => {
            let mut sts = call.body.clone();
            if let Some(status) = world.statefulset.as_ref().map(|s| s["status"].clone()) {
                sts["status"] = status;
            }
            (StatusCode::OK, sts)
        }
        (&Method::DELETE, _, "persistentvolumeclaims") => (
            StatusCode::OK,
            json!({"kind": "PersistentVolumeClaimList", "apiVersion": "v1", "items": []}),
        ),
        (&Method::GET, "persistentvolumeclaims", name) => world
            .claims
            .get(name)
            .cloned()
            .map_or_else(not_found, |c| (StatusCode::OK, c)),
        (&Method::GET, "persistentvolumes", name) => world
            .volumes
            .get(name)
            .cloned()
            .map_or_else(not_found, |v| (StatusCode::OK, v)),
        (&Method::GET, _, "nodes") => {
            let items: Vec<Value> = world
                .nodes
                .iter()
                .map(|n| {
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                "metadata": {"name": n}})
                })
                .collect();
            (
                StatusCode::OK,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                       "metadata": {}, "items": items}),
            )
        }
        (&Method::POST, _, "events") => (StatusCode::CREATED, call.body.clone()),
        (&Method::GET, _, "pods") => (StatusCode::OK, pods(world, &call.query)),
        (&Method::GET, "kvstores", "status") => (StatusCode::OK, world.kvstore.clone()),
        (&Method::PATCH, "kvstores", "status") => {
            // A write conditional on an older resourceVersion is refused, as the API server does.
            let current = world.kvstore["metadata"]["resourceVersion"].clone();
            let sent = &call.body["metadata"]["resourceVersion"];
            if !sent.is_null() && *sent != current {
                return (
                    StatusCode::CONFLICT,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
                           "reason": "Conflict",
                           "message": "the object has been modified; please apply your changes to the latest version and try again"}),
                );
            }
            world.kvstore["status"] = call.body["status"].clone();
            let next = current
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(1, |v| v + 1);
            world.kvstore["metadata"]["resourceVersion"] = json!(next.to_string());
            (StatusCode::OK, world.kvstore.clone())
        }
        (&Method::PATCH, "kvstores", _) => (StatusCode::OK, world.kvstore.clone()),
        (&Method::PATCH, _, _) => (StatusCode::OK, call.body.clone()),
        _ => not_found(),
    }
}

/// The calls of a replicated store's objects: the copy StatefulSets and the disruption budgets
/// (lists, gets, applies, deletes); None for every other call.
fn replicated(
    world: &mut World,
    call: &Call,
    kind: &str,
    last: &str,
) -> Option<(StatusCode, Value)> {
    let list = |kind: &str, items: Vec<Value>| {
        (
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items}),
        )
    };
    let deleted = || {
        (
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        )
    };
    let copy_pods = world.copy_pods;
    let revisions = world.revisions.clone();
    let with_status = |mut sts: Value| {
        let want = sts["spec"]["replicas"].as_i64().unwrap_or(0);
        let have = copy_pods.map_or(want, |n| want.min(i64::from(n)));
        sts["status"] = json!({"replicas": have, "readyReplicas": have});
        if let Some(r) = sts["metadata"]["name"]
            .as_str()
            .and_then(|n| revisions.get(n))
        {
            sts["status"]["updateRevision"] = json!(r);
        }
        sts
    };
    Some(match (&call.method, kind, last) {
        (&Method::GET, _, "statefulsets") => {
            let copies = world.copies.values().cloned().map(with_status);
            let items = world.statefulset.iter().cloned().chain(copies).collect();
            list("StatefulSetList", items)
        }
        (&Method::DELETE, "pods", name) => {
            let before = world.pods.len();
            world.pods.retain(|p| p["metadata"]["name"] != name);
            if world.pods.len() < before {
                deleted()
            } else {
                not_found()
            }
        }
        (&Method::GET, "statefulsets", name) if name != "demo" => world
            .copies
            .get(name)
            .cloned()
            .map_or_else(not_found, |s| (StatusCode::OK, with_status(s))),
        (&Method::PATCH, "statefulsets", name) if name != "demo" && !world.reject_statefulset => {
            let mut sts = call.body.clone();
            sts["metadata"]["uid"] = json!(format!("{name}-uid"));
            world.copies.insert(name.to_owned(), sts.clone());
            (StatusCode::OK, with_status(sts))
        }
        (&Method::DELETE, "statefulsets", name) => match world.copies.remove(name) {
            Some(_) => deleted(),
            None => not_found(),
        },
        (&Method::GET, _, "poddisruptionbudgets") => list(
            "PodDisruptionBudgetList",
            world.pdbs.values().cloned().collect(),
        ),
        (&Method::GET, "poddisruptionbudgets", name) => world
            .pdbs
            .get(name)
            .cloned()
            .map_or_else(not_found, |p| (StatusCode::OK, p)),
        (&Method::PATCH, "poddisruptionbudgets", name) => {
            world.pdbs.insert(name.to_owned(), call.body.clone());
            (StatusCode::OK, call.body.clone())
        }
        (&Method::DELETE, "poddisruptionbudgets", name) => match world.pdbs.remove(name) {
            Some(_) => deleted(),
            None => not_found(),
        },
        _ => return None,
    })
}

/// The `labelSelector` of a query, decoded.
pub fn label_selector(query: &str) -> String {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .unwrap_or_default();
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pods a list asks for: a copy's (`kvstore.dev/copy=K`: as many as its StatefulSet
/// reports, all started), else copy 0's ([`copy0_pods`]).
fn pods(world: &World, query: &str) -> Value {
    let selector = label_selector(query);
    if !world.pods.is_empty() {
        let copy = |p: &Value| {
            p["metadata"]["labels"]["kvstore.dev/copy"]
                .as_str()
                .map(str::to_owned)
        };
        let items: Vec<Value> = world
            .pods
            .iter()
            .filter(|p| {
                selector
                    .split(',')
                    .all(|term| match term.strip_prefix("kvstore.dev/copy=") {
                        Some(k) => copy(p).as_deref() == Some(k),
                        None if term == "!kvstore.dev/copy" => copy(p).is_none(),
                        None => true,
                    })
            })
            .cloned()
            .collect();
        return json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items});
    }
    let Some(copy) = selector
        .split(',')
        .find_map(|term| term.strip_prefix("kvstore.dev/copy="))
    else {
        return copy0_pods(world);
    };
    let name = format!("demo-r{copy}");
    let count = world.copies.get(&name).map_or(0, |sts| {
        let want = sts["spec"]["replicas"].as_i64().unwrap_or(0);
        world.copy_pods.map_or(want, |n| want.min(i64::from(n)))
    });
    let items: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{name}-{i}"), "namespace": "default"},
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

/// The store's pods as the API server lists them: as many as the StatefulSet reports, the first
/// `started` (else `readyReplicas`) of them with their kvserver started.
fn copy0_pods(world: &World) -> Value {
    let status = world.statefulset.as_ref().map(|s| s["status"].clone());
    let count = |field: &str| status.as_ref().and_then(|s| s[field].as_i64()).unwrap_or(0);
    let started = world
        .started
        .map_or_else(|| count("readyReplicas"), i64::from);
    let items: Vec<Value> = (0..count("replicas"))
        .map(|i| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("demo-{i}"), "namespace": "default"},
                "status": {"containerStatuses": [{
                    "name": "kvserver", "image": "kvserver", "imageID": "", "ready": false,
                    "restartCount": 0, "started": i < started
                }]}
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

/// Pod `name` (copy `copy`) made from `revision`, started, Ready when `ready`.
pub fn pod(name: &str, copy: u32, revision: &str, ready: bool) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/name": "kvstore", "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/component": "server", "controller-revision-hash": revision,
    });
    if copy > 0 {
        labels["kvstore.dev/copy"] = json!(copy.to_string());
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-{revision}"),
                     "labels": labels},
        "status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{
                "name": "kvserver", "image": "kvserver", "imageID": "", "ready": ready,
                "restartCount": 0, "started": true
            }]
        }
    })
}

/// A StatefulSet as the API server reports it.
pub fn statefulset(desired: i32, current: i32, ready: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"replicas": desired, "serviceName": "demo",
                 "selector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}},
                 "template": {}},
        "status": {"replicas": current, "readyReplicas": ready}
    })
}

/// The admin token Secret as the API server reports it (`data` is base64).
pub fn secret(token: &str) -> Value {
    named_secret("demo-admin-token", &[("token", token)])
}

/// A Secret `name` with these entries, as the API server reports it (`data` is base64).
pub fn named_secret(name: &str, entries: &[(&str, &str)]) -> Value {
    use base64::Engine;
    let data: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(k, v)| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            ((*k).to_owned(), Value::from(b64))
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid")},
        "data": data
    })
}
