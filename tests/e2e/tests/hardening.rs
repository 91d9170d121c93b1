//! Issue 13 on the real cluster: a shard pod whose volume was replaced serves nothing until the
//! operator gives it its map (item 2), a copy batch that a deposed operator sends after the
//! move went on changes nothing (item 3), and a TLS store with data auth runs end to end: https
//! only, keys moved over the operator's https admin calls, the data token required (item 14).

use std::time::Duration;

use bytes::Bytes;
use e2e::namespace::TestNamespace;
use e2e::shard_http::{self, Shard};
use e2e::{Error, Result, check, cluster, pods, stores, wait};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kvproto::bulk::BulkRecord;
use kvproto::{Fence, Key};
use operator::KVStore;
use operator::rebalance::hooks::COPY_BATCH_PAUSE;
use operator::status::Phase;

const LONG: Duration = Duration::from_secs(300);
/// Keys the TLS case's load writes.
const TLS_KEYS: u32 = 400;
const POLL: Duration = Duration::from_secs(1);

async fn shard(ns: &TestNamespace, store: &str, ordinal: u32) -> Result<Shard> {
    shard_http::shards(ns, store)
        .await?
        .into_iter()
        .find(|s| s.ordinal == ordinal)
        .ok_or_else(|| Error::Check(format!("no shard {ordinal} of {store} with an IP")))
}

async fn set_paused(ns: &TestNamespace, store: &str, paused: bool) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "paused": paused } });
    ns.api::<KVStore>()
        .patch(store, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Item 2: the pod of shard 1 comes back on an empty volume while the operator is paused. It
/// starts, answers its probes, and still serves no key and is not ready; the operator, once
/// resumed, pushes it the map and only then does it serve.
#[tokio::test]
async fn a_shard_on_a_new_volume_serves_nothing_until_it_has_its_map() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "newpod").await?;
    ns.run(|| async {
        let store = "np";
        stores::create(&ns, &stores::kvstore(store, 2, serde_json::json!({}))?).await?;
        stores::wait_phase(&ns, store, Phase::Available, 2, LONG).await?;
        let topology = shard(&ns, store, 0).await?.topology().await?;
        let key = shard_http::keys_owned_by(&topology, 1, "early-", 1)
            .pop()
            .ok_or_else(|| Error::Check("no key for shard 1".into()))?;

        set_paused(&ns, store, true).await?;
        stores::wait_until(&ns, store, "the store paused", LONG, |kvs| {
            kvs.status.as_ref().and_then(|s| s.phase) == Some(Phase::Paused)
        })
        .await?;
        // A new, empty volume for shard 1: the claim goes with its pod, both come back.
        let claim = operator::labels::pvc(store, 1);
        ns.api::<PersistentVolumeClaim>()
            .delete(&claim, &DeleteParams::default())
            .await?;
        pods::delete(&ns, &operator::labels::pod(store, 1)).await?;
        let fresh = wait::until("shard 1 started on a new volume", LONG, POLL, || async {
            let pod = ns
                .api::<Pod>()
                .get_opt(&operator::labels::pod(store, 1))
                .await
                .map_err(|e| e.to_string())?;
            let started = pod.as_ref().is_some_and(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.started == Some(true)))
            });
            if !started {
                return Ok(None);
            }
            match shard(&ns, store, 1).await {
                Ok(s) if s.readyz().await.is_ok() => Ok(Some(s)),
                Ok(_) => Err("ops port not answering yet".into()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        let (status, body) = fresh.readyz().await?;
        check(status == 503 && body.contains("no topology"), || {
            format!("a server without a map must not be ready: {status} {body}")
        })?;
        let (status, body) = fresh.put(&key, "too-early").await?;
        check(status == 503 && body.contains("misdirected"), || {
            format!("a server without a map took a write: {status} {body}")
        })?;

        set_paused(&ns, store, false).await?;
        stores::wait_phase(&ns, store, Phase::Available, 2, LONG).await?;
        let owner = shard(&ns, store, 1).await?;
        let (status, body) = owner.get(&key).await?;
        check(status == 404, || {
            format!("the refused early write landed after all: {status} {body}")
        })?;
        let (status, body) = owner.put(&key, "in-time").await?;
        check((200..300).contains(&status), || {
            format!("shard 1 does not serve with its map: {status} {body}")
        })?;
        Ok(())
    })
    .await
}

/// Item 3: a move runs to its end while the copy of epoch E is replayed afterwards, as a
/// deposed operator that kept copying would: the server refuses the batch (409 `fenced`) and
/// the key the client deleted stays deleted; an unfenced import is refused too.
#[tokio::test]
async fn a_late_copy_batch_from_a_deposed_operator_changes_nothing() -> Result<()> {
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "fence").await?;
    ns.run(|| async {
        let store = "fc";
        stores::create(&ns, &stores::kvstore(store, 2, serde_json::json!({}))?).await?;
        stores::wait_phase(&ns, store, Phase::Available, 2, LONG).await?;
        // Keys to move, so that the paced copy lasts long enough to be seen in Copy.
        let before = shard(&ns, store, 0).await?.topology().await?;
        for owner in 0..2 {
            let server = shard(&ns, store, owner).await?;
            for key in shard_http::keys_owned_by(&before, owner, "moving-", 600) {
                let (status, body) = server.put(&key, "v").await?;
                check((200..300).contains(&status), || {
                    format!("put {key}: {status} {body}")
                })?;
            }
        }
        stores::annotate(&ns, store, COPY_BATCH_PAUSE, Some("1000")).await?;
        stores::scale(&ns, store, 3).await?;
        stores::wait_rebalance_phase(&ns, store, "Copy", LONG).await?;
        let copying = shard(&ns, store, 2).await?.topology().await?;
        stores::annotate(&ns, store, COPY_BATCH_PAUSE, None).await?;
        stores::wait_phase(&ns, store, Phase::Available, 3, LONG).await?;

        // A key the client wrote and deleted at its owner once the move was over.
        let owner = shard(&ns, store, 2).await?;
        let after = owner.topology().await?;
        check(
            after.epoch == copying.epoch && after.migration.is_none(),
            || {
                format!(
                    "expected epoch {} committed, shard 2 holds {after:?}",
                    copying.epoch
                )
            },
        )?;
        let key = shard_http::keys_owned_by(&after, 2, "deleted-", 1)
            .pop()
            .ok_or_else(|| Error::Check("no key for shard 2".into()))?;
        owner.put(&key, "v1").await?;
        let (status, body) = owner.delete(&key).await?;
        check((200..300).contains(&status), || {
            format!("delete: {status} {body}")
        })?;

        let token = stores::admin_token(&ns, store).await?;
        let late = [BulkRecord {
            key: Key::new(key.clone()).map_err(|e| Error::Check(e.to_string()))?,
            version: 1,
            value: Some(Bytes::from_static(b"v1")),
        }];
        let fence = format!("&{}", Fence::copy(copying.epoch).query());
        for (what, query) in [("the copy's fence", fence.as_str()), ("no fence", "")] {
            let (status, body) = owner.import(&token, query, &late).await?;
            check(status == 409 && body.contains("fenced"), || {
                format!("a late import with {what} was not refused: {status} {body}")
            })?;
        }
        let (status, body) = owner.get(&key).await?;
        check(status == 404, || {
            format!("the deleted key came back: {status} {body}")
        })?;
        Ok(())
    })
    .await
}

/// A CA and a server certificate it signed for every host of store `store` in namespace `ns`,
/// stored as the `kubernetes.io/tls` Secret `name` (`tls.crt`, `tls.key`, `ca.crt`), as
/// cert-manager's CA issuer writes it. Answers the CA's PEM.
async fn create_tls_secret(ns: &TestNamespace, store: &str, name: &str) -> Result<String> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let pki = |e: rcgen::Error| Error::Check(format!("rcgen: {e}"));
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().map_err(pki)?;
    let ca_pem = ca_params.self_signed(&ca_key).map_err(pki)?.pem();
    // Peer URLs are https://STORE-i.STORE.NS.svc:PORT; the other spellings are for clients.
    let n = &ns.name;
    let hosts = vec![
        format!("*.{store}.{n}.svc"),
        format!("*.{store}.{n}.svc.cluster.local"),
        format!("*.{store}.{n}"),
        format!("*.{store}"),
    ];
    let params = CertificateParams::new(hosts).map_err(pki)?;
    let key = KeyPair::generate().map_err(pki)?;
    let cert = params
        .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
        .map_err(pki)?;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": { "name": name },
        "stringData": { "tls.crt": cert.pem(), "tls.key": key.serialize_pem(), "ca.crt": ca_pem },
    }))?;
    ns.api::<Secret>()
        .create(&kube::api::PostParams::default(), &secret)
        .await?;
    Ok(ca_pem)
}

/// The first line of the token Secret `name` (e.g. `NAME-data-token`).
async fn token_of(ns: &TestNamespace, name: &str) -> Result<String> {
    let secret = ns.api::<Secret>().get(name).await?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|b| b.0.clone())
        .ok_or_else(|| Error::Check(format!("Secret {name} has no `token`")))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Check(e.to_string()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// An https client of the store's shards from the test process: it trusts only `ca_pem` and
/// reaches each shard's own name (`STORE-i.STORE.NS.svc`, as its certificate says) at its pod
/// IP. Answers the client and each shard's base URL, by ordinal.
async fn https_shards(
    ns: &TestNamespace,
    store: &str,
    port: u16,
    ca_pem: &str,
) -> Result<(reqwest::Client, Vec<String>)> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| Error::Check(format!("CA: {e}")))?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10));
    let mut urls = Vec::new();
    for shard in shard_http::shards(ns, store).await? {
        let pod = ns.api::<Pod>().get(&shard.pod).await?;
        let ip = pod
            .status
            .and_then(|s| s.pod_ip)
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .ok_or_else(|| Error::Check(format!("pod {} has no IP", shard.pod)))?;
        let host = format!("{}.{store}.{}.svc", shard.pod, ns.name);
        builder = builder.resolve(&host, std::net::SocketAddr::new(ip, port));
        urls.push(format!("https://{host}:{port}"));
    }
    let client = builder
        .build()
        .map_err(|e| Error::Check(format!("https client: {e}")))?;
    Ok((client, urls))
}

/// Sends `request` once: status and body.
async fn send(what: &str, request: reqwest::RequestBuilder) -> Result<(u16, String)> {
    let resp = request
        .send()
        .await
        .map_err(|e| Error::Check(format!("{what}: {e}")))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// The load generator as a pod against the TLS store: `kvclient load --kvstore`, trusting the
/// store's `ca.crt` and sending the data token, both mounted from their Secrets.
async fn start_tls_load(
    ns: &TestNamespace,
    name: &str,
    store: &str,
    tls_secret: &str,
    account: &str,
) -> Result<pods::LogCapture> {
    let keys = TLS_KEYS.to_string();
    let args = [
        "load",
        "--kvstore",
        store,
        "--keys",
        &keys,
        "--concurrency",
        "8",
        "--write-ratio",
        "0.5",
        "--duration",
        "2h",
        "--prefix",
        e2e::load::PREFIX,
        "--prefill",
        "--json",
        "--timeout",
        "5",
    ];
    let pod = pods::client_pod(name, &e2e::cluster::image("kvclient"), &args, Some(account))?;
    let mut pod = serde_json::to_value(pod)?;
    pod["spec"]["volumes"] = serde_json::json!([
        { "name": "ca", "secret": { "secretName": tls_secret, "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
        { "name": "token", "secret": { "secretName": format!("{store}-data-token") } },
    ]);
    let container = &mut pod["spec"]["containers"][0];
    container["volumeMounts"] = serde_json::json!([
        { "name": "ca", "mountPath": "/var/run/ca", "readOnly": true },
        { "name": "token", "mountPath": "/var/run/token", "readOnly": true },
    ]);
    container["env"] = serde_json::json!([
        { "name": "KVCLIENT_CA_FILE", "value": "/var/run/ca/ca.crt" },
        { "name": "KVCLIENT_TOKEN_FILE", "value": "/var/run/token/token" },
    ]);
    let pod: Pod = serde_json::from_value(pod)?;
    pods::start(ns, &pod).await?;
    pods::LogCapture::start(ns, name).await
}

/// Item 14 end to end: a store with `spec.tls` (a Secret made here, as cert-manager would) and
/// `spec.auth.requireDataToken`. Its data port answers plain HTTP with 400 and nothing served,
/// its shard map names https peers, a data request without the data token is 401 and with it
/// is served; kvclient (`--kvstore`, https, the CA and the data token) writes and reads keys
/// while the store grows from 2 to 3 shards, which the operator moves over its https admin
/// calls trusting the Secret's ca.crt; no acknowledged write is lost and shard 2 holds keys.
#[tokio::test]
async fn a_tls_store_serves_https_only_moves_keys_over_https_and_wants_the_data_token() -> Result<()>
{
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, "tls").await?;
    ns.run(|| async {
        let store = "tl";
        let tls_secret = "tl-tls";
        let port: u16 = 8443;
        let ca_pem = create_tls_secret(&ns, store, tls_secret).await?;
        let spec = serde_json::json!({
            "port": port,
            "tls": { "secretName": tls_secret },
            "auth": { "requireDataToken": true },
        });
        stores::create(&ns, &stores::kvstore(store, 2, spec)?).await?;
        stores::wait_phase(&ns, store, Phase::Available, 2, LONG).await?;

        // Plain HTTP on the data port: told to use https, nothing served.
        let plain = shard(&ns, store, 0).await?;
        let (status, body) = plain.put("plain-key", "v").await?;
        check(status == 400 && body.contains("HTTPS only"), || {
            format!("plain http was not refused: {status} {body}")
        })?;

        let (https, urls) = https_shards(&ns, store, port, &ca_pem).await?;
        let (status, body) =
            send("topology", https.get(format!("{}/v1/topology", urls[0]))).await?;
        let topology: kvproto::Topology = serde_json::from_str(&body)
            .map_err(|e| Error::Check(format!("topology {status} {body}: {e}")))?;
        check(
            topology.peers.iter().all(|p| p.starts_with("https://")),
            || format!("the shard map names plain peers: {:?}", topology.peers),
        )?;

        // The data token is required: none or a wrong one is 401, the data token is served.
        let key = shard_http::keys_owned_by(&topology, 1, "auth-", 1)
            .pop()
            .ok_or_else(|| Error::Check("no key for shard 1".into()))?;
        let url = format!("{}/v1/keys/{key}", urls[0]);
        let data_token = token_of(&ns, &format!("{store}-data-token")).await?;
        let (status, body) = send("put without token", https.put(&url).body("v")).await?;
        check(status == 401, || {
            format!("a write without the data token: {status} {body}")
        })?;
        let wrong = https.put(&url).bearer_auth("not-the-token").body("v");
        let (status, body) = send("put with a wrong token", wrong).await?;
        check(status == 401, || {
            format!("a write with a wrong token: {status} {body}")
        })?;
        // Sent to shard 0, owned by shard 1: forwarded over https with the peer token.
        let put = https.put(&url).bearer_auth(&data_token).body("v");
        let (status, body) = send("put with the data token", put).await?;
        check((200..300).contains(&status), || {
            format!("a forwarded write with the data token: {status} {body}")
        })?;
        let owner = format!("{}/v1/keys/{key}", urls[1]);
        let (status, body) = send(
            "read at the owner",
            https.get(&owner).bearer_auth(&data_token),
        )
        .await?;
        check(status == 200 && body == "v", || {
            format!("read at the owner: {status} {body}")
        })?;
        // The data token opens no admin route.
        let admin = https
            .post(format!("{}/v1/admin/cleanup", urls[0]))
            .bearer_auth(&data_token);
        let (status, body) = send("cleanup with the data token", admin).await?;
        check(status == 401, || {
            format!("an admin route took the data token: {status} {body}")
        })?;

        // kvclient over https while the operator moves keys to a third shard.
        let account = pods::follower_account(&ns).await?;
        let load = start_tls_load(&ns, "tls-load", store, tls_secret, account).await?;
        wait::until("the load's prefill", LONG, POLL, || async {
            let (https, urls) = https_shards(&ns, store, port, &ca_pem)
                .await
                .map_err(|e| e.to_string())?;
            let mut total = 0usize;
            for url in &urls {
                let list = format!("{url}/v1/keys?prefix={}&limit=10000", e2e::load::PREFIX);
                let (status, body) = send("list", https.get(&list).bearer_auth(&data_token))
                    .await
                    .map_err(|e| e.to_string())?;
                let page: kvproto::wire::KeyPage =
                    serde_json::from_str(&body).map_err(|e| format!("{status} {body}: {e}"))?;
                total += page.keys.len();
            }
            if total >= TLS_KEYS as usize {
                Ok(Some(()))
            } else {
                Err(format!("{total} keys stored"))
            }
        })
        .await?;
        stores::scale(&ns, store, 3).await?;
        stores::wait_phase(&ns, store, Phase::Available, 3, LONG).await?;
        pods::stop(&ns, "tls-load", 300).await?;
        let log = load.finish(LONG).await?;
        let line = log
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| Error::Check(format!("the load printed no report:\n{log}")))?;
        let report: e2e::load::LoadReport = serde_json::from_str(line)?;
        e2e::load::check_nothing_lost(&report, u64::from(TLS_KEYS))?;

        let (https, urls) = https_shards(&ns, store, port, &ca_pem).await?;
        let third = urls
            .get(2)
            .ok_or_else(|| Error::Check(format!("no third shard: {urls:?}")))?;
        let list = format!("{third}/v1/keys?prefix={}&limit=10000", e2e::load::PREFIX);
        let (status, body) =
            send("list shard 2", https.get(&list).bearer_auth(&data_token)).await?;
        let page: kvproto::wire::KeyPage = serde_json::from_str(&body)
            .map_err(|e| Error::Check(format!("shard 2 list {status} {body}: {e}")))?;
        check(!page.keys.is_empty(), || {
            "shard 2 holds no key after the move".to_owned()
        })?;
        Ok(())
    })
    .await
}
