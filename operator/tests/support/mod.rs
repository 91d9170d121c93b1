#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failed setup should panic

//! A scripted API server behind `tower_test::mock::pair`, as kube-rs's controller-rs does: it
//! answers the calls a reconcile makes from a small in-memory world and records every request,
//! so tests assert on what the operator asked the API server to do.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kvproto::Topology;
use kvproto::bulk::BulkRecord;
use operator::shards::{RecordStream, ShardAdmin};
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
    pub secret: Option<Value>,
    /// Refuse StatefulSet applies as invalid (an immutable field changed).
    pub reject_statefulset: bool,
    pub calls: Vec<Call>,
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
    match (&call.method, kind, last) {
        (&Method::GET, "statefulsets", _) => world
            .statefulset
            .clone()
            .map_or_else(not_found, |s| (StatusCode::OK, s)),
        (&Method::GET, "secrets", _) => world
            .secret
            .clone()
            .map_or_else(not_found, |s| (StatusCode::OK, s)),
        (&Method::POST, _, "secrets") => {
            world.secret = Some(call.body.clone());
            (StatusCode::CREATED, call.body.clone())
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
        (&Method::POST, _, "events") => (StatusCode::CREATED, call.body.clone()),
        (&Method::PATCH, "kvstores", "status") => {
            world.kvstore["status"] = call.body["status"].clone();
            (StatusCode::OK, world.kvstore.clone())
        }
        (&Method::PATCH, "kvstores", _) => (StatusCode::OK, world.kvstore.clone()),
        (&Method::PATCH, _, _) => (StatusCode::OK, call.body.clone()),
        _ => not_found(),
    }
}

/// A ShardAdmin that records pushes and refuses those to `refuse`.
#[derive(Default)]
pub struct FakeShards {
    pub pushes: Mutex<Vec<(String, String, Topology)>>,
    pub refuse: Vec<String>,
}

impl ShardAdmin for FakeShards {
    fn put_topology<'a>(
        &'a self,
        base_url: &'a str,
        token: &'a str,
        topology: &'a Topology,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.refuse.iter().any(|r| r == base_url) {
                return Err(format!("connection refused by {base_url}"));
            }
            self.pushes.lock().unwrap().push((
                base_url.to_owned(),
                token.to_owned(),
                topology.clone(),
            ));
            Ok(())
        })
    }

    // The stores these tests reconcile never move keys: empty shards.
    fn export_moving<'a>(
        &'a self,
        _base_url: &'a str,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<RecordStream, String>> {
        Box::pin(async { Ok(futures::stream::empty().boxed()) })
    }

    fn moving_count<'a>(
        &'a self,
        _base_url: &'a str,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async { Ok(0) })
    }

    fn import_if_absent<'a>(
        &'a self,
        _base_url: &'a str,
        _token: &'a str,
        records: &'a [BulkRecord],
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move { Ok(records.len() as u64) })
    }

    fn cleanup<'a>(
        &'a self,
        _base_url: &'a str,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn key_count<'a>(
        &'a self,
        _base_url: &'a str,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async { Ok(0) })
    }
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
    use base64::Engine;
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "demo-admin-token", "namespace": "default", "uid": "secret-uid-1"},
        "data": {"token": base64::engine::general_purpose::STANDARD.encode(token)}
    })
}
