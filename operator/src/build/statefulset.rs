//! The StatefulSets of kvserver shards: stable names, one volume per shard, probes on the ops
//! port (plain HTTP also under `spec.tls`), a preStop sleep and a stop that fits the grace
//! period ([`crate::grace`]), a restricted security context, the three token files and, with
//! `spec.tls`, the certificate files.
//!
//! Copy 0 of every shard is the StatefulSet `NAME` ([`statefulset`]), with the same pod template
//! at every replication factor: it has no Raft settings (a copy 0 learns its group from the
//! operator's `init`), so turning replication on or off never restarts the book's pods. Only
//! its update strategy changes: `OnDelete` when replicated, as for every copy (the operator
//! rolls the pods, [`crate::roll`]). Copy k ≥ 1 is
//! `NAME-rK` ([`copy_statefulset`]): the same pod template plus the `kvstore.dev/copy` label,
//! its group (`KV_RAFT_STORE_UID`), its own URL (`KV_RAFT_ADVERTISE_URL`) and the spread of a
//! shard's copies over nodes ([`super::spread`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, SeccompProfile, SecretProjection,
    SecretVolumeSource, SecurityContext, SleepAction, Sysctl, Volume, VolumeMount,
    VolumeProjection, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kvproto::wire::DEFAULT_OPS_PORT;

use super::meta::meta;
use super::secret::{Credential, TOKEN_KEY};
use super::spread;
use crate::crd::PodManagementPolicy;
use crate::labels;
use crate::validate::{Instance, TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY};

/// Where the kvserver keeps its data (the PVC's mount point).
pub const DATA_DIR: &str = "/data";
/// Where the token Secrets are mounted (one projected volume: `token` is the admin token,
/// `peer-token` and `data-token` the others).
pub const ADMIN_TOKEN_DIR: &str = "/var/run/kvstore";
/// Where the TLS Secret of `spec.tls` is mounted (`tls.crt`, `tls.key`, `ca.crt`).
pub const TLS_DIR: &str = "/var/run/kvstore-tls";
/// Startup probe: every 5 s for up to 15 minutes, so a large shard can open its store before
/// liveness starts counting.
const STARTUP_PERIOD_SECONDS: i32 = 5;
const STARTUP_FAILURES: i32 = 180;
/// The distroless "nonroot" user and group.
const NONROOT: i64 = 65532;
const TOKEN_VOLUME: &str = "tokens";
const TLS_VOLUME: &str = "tls";

/// Pod annotation naming the admin token Secret's uid: servers read the token once at start, so
/// a recreated Secret (new token) must restart them.
pub const TOKEN_SECRET_UID_ANNOTATION: &str = "kvstore.dev/admin-token-secret-uid";

/// The StatefulSet running `replicas` shards. The replica count is the reconcile's decision, not
/// necessarily `spec.replicas` (e.g. while a rebalance is pending). `token_secret_uid` is the uid
/// of the Secret the pods read their admin token from.
pub fn statefulset(inst: &Instance, replicas: i32, token_secret_uid: Option<&str>) -> StatefulSet {
    build(inst, 0, replicas, token_secret_uid)
}

/// The StatefulSet `NAME-rK` of copy `copy` (≥ 1; 0 is [`statefulset`]) of every shard, with
/// `replicas` pods `NAME-rK-i`, one per shard, each with its own claim `data-NAME-rK-i`.
pub fn copy_statefulset(
    inst: &Instance,
    copy: u32,
    replicas: i32,
    token_secret_uid: Option<&str>,
) -> StatefulSet {
    build(inst, copy.max(1), replicas, token_secret_uid)
}

/// The value of `KV_RAFT_ADVERTISE_URL` in copy k ≥ 1's pods: the pod's own base URL through
/// the headless Service. The pod template is shared by every shard, so the ordinal comes from
/// the pod name: the kubelet expands `$(POD_NAME)` (defined before it) into `NAME-rK-i`, which
/// gives `kvproto::copy_url_tls(NAME, NS, k, i, PORT, TLS)`.
pub fn advertise_url(inst: &Instance) -> String {
    let scheme = if inst.tls() { "https" } else { "http" };
    format!(
        "{scheme}://$({POD_NAME_ENV}).{}.{}.svc:{}",
        inst.name, inst.namespace, inst.spec.port
    )
}

/// The env variable holding the pod's name (downward API), from which the server takes its
/// shard ordinal.
const POD_NAME_ENV: &str = "POD_NAME";

/// Copy `copy`'s labels: the common ones, plus `kvstore.dev/copy` for k ≥ 1.
fn copy_labels(inst: &Instance, copy: u32) -> BTreeMap<String, String> {
    let mut labels = labels::common(&inst.name);
    if copy > 0 {
        labels.insert(labels::COPY.to_owned(), copy.to_string());
    }
    labels
}

fn build(inst: &Instance, copy: u32, replicas: i32, token_secret_uid: Option<&str>) -> StatefulSet {
    let spec = &inst.spec;
    let mut pod_labels = spec.pod_overrides.labels.clone();
    // Selector labels win over overrides (validation also refuses such overrides).
    pod_labels.extend(copy_labels(inst, copy));
    let mut pod_annotations = spec.pod_overrides.annotations.clone();
    if let Some(uid) = token_secret_uid {
        pod_annotations.insert(TOKEN_SECRET_UID_ANNOTATION.to_owned(), uid.to_owned());
    }
    let annotations = (!pod_annotations.is_empty()).then_some(pod_annotations);
    let mut selector = labels::selector(&inst.name);
    // Copy 0's selector stays as it always was (it is immutable); a copy's selects only it.
    if copy > 0 {
        selector.insert(labels::COPY.to_owned(), copy.to_string());
    }
    let mut metadata = meta(inst, labels::copy_statefulset(&inst.name, copy));
    metadata.labels = Some(copy_labels(inst, copy));
    // A copy holds no book pod: its pods start together, whatever the spec says for copy 0.
    let policy = match copy {
        0 => spec.pod_management_policy.as_str(),
        _ => PodManagementPolicy::Parallel.as_str(),
    };
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(inst.name.clone()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            pod_management_policy: Some(policy.to_owned()),
            update_strategy: update_strategy(inst),
            // The operator deletes PVCs itself, only once a shard is proven drained.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_owned()),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(inst, copy)),
            },
            volume_claim_templates: Some(vec![volume_claim(inst, copy)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// `OnDelete` for every StatefulSet of a replicated store: a changed template only marks its
/// pods outdated, and the operator's roller replaces them one copy of a shard at a time, each
/// only while its shard keeps a quorum without it (docs/replication.md section 9). Factor 1
/// leaves the field to the API server's default (RollingUpdate), as it always did.
fn update_strategy(inst: &Instance) -> Option<StatefulSetUpdateStrategy> {
    (inst.factor() > 1).then(|| StatefulSetUpdateStrategy {
        type_: Some(ON_DELETE.to_owned()),
        ..StatefulSetUpdateStrategy::default()
    })
}

/// The update strategy of a replicated store's StatefulSets.
pub const ON_DELETE: &str = "OnDelete";

fn pod_spec(inst: &Instance, copy: u32) -> PodSpec {
    let spec = &inst.spec;
    let overrides = &spec.pod_overrides;
    PodSpec {
        containers: vec![container(inst, copy)],
        termination_grace_period_seconds: Some(spec.termination_grace_period_seconds),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NONROOT),
            run_as_group: Some(NONROOT),
            fs_group: Some(NONROOT),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            sysctls: unprivileged_port(spec.port),
            ..PodSecurityContext::default()
        }),
        // The kvserver needs no Kubernetes API access and no service env variables.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        affinity: Some(affinity(inst)),
        node_selector: (!overrides.node_selector.is_empty())
            .then(|| overrides.node_selector.clone()),
        tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
        volumes: Some(volumes(inst)),
        topology_spread_constraints: (copy > 0).then(|| spread::constraints(inst)),
        ..PodSpec::default()
    }
}

/// The tokens (one projected volume of the three Secrets, mounted as a directory so that the
/// kubelet updates it in place) and, with `spec.tls`, the certificate Secret.
fn volumes(inst: &Instance) -> Vec<Volume> {
    let items = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(key, path)| KeyToPath {
                key: (*key).to_owned(),
                path: (*path).to_owned(),
                ..KeyToPath::default()
            })
            .collect::<Vec<_>>()
    };
    let tokens = Credential::ALL
        .iter()
        .map(|c| VolumeProjection {
            secret: Some(SecretProjection {
                name: c.secret_name(&inst.name),
                items: Some(items(&[(TOKEN_KEY, c.file_name())])),
                ..SecretProjection::default()
            }),
            ..VolumeProjection::default()
        })
        .collect();
    let mut volumes = vec![Volume {
        name: TOKEN_VOLUME.to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(tokens),
            default_mode: Some(0o440),
        }),
        ..Volume::default()
    }];
    if let Some(tls) = &inst.spec.tls {
        let keys = [TLS_CERT_KEY, TLS_KEY_KEY, TLS_CA_KEY].map(|k| (k, k));
        volumes.push(Volume {
            name: TLS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                items: Some(items(&keys)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

/// The kvserver's flags: its ports and files (data, tokens, certificates).
fn args(inst: &Instance) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_owned(),
        DATA_DIR.to_owned(),
        "--port".to_owned(),
        inst.spec.port.to_string(),
        "--ops-port".to_owned(),
        DEFAULT_OPS_PORT.to_string(),
    ];
    for c in Credential::ALL {
        args.push(c.flag().to_owned());
        args.push(format!("{ADMIN_TOKEN_DIR}/{}", c.file_name()));
    }
    if inst.spec.tls.is_some() {
        for (flag, key) in [
            ("--tls-cert-file", TLS_CERT_KEY),
            ("--tls-key-file", TLS_KEY_KEY),
            ("--tls-ca-file", TLS_CA_KEY),
        ] {
            args.push(flag.to_owned());
            args.push(format!("{TLS_DIR}/{key}"));
        }
    }
    if inst.spec.auth.require_data_token {
        args.push("--require-token-for-data".to_owned());
    }
    args
}

/// A non-root process with no capabilities may bind a port below 1024 (the book's 80) only
/// if the pod lowers this namespaced, "safe" sysctl (allowed by the restricted policy).
fn unprivileged_port(port: i32) -> Option<Vec<Sysctl>> {
    (port < 1024).then(|| {
        vec![Sysctl {
            name: "net.ipv4.ip_unprivileged_port_start".to_owned(),
            value: port.to_string(),
        }]
    })
}

fn container(inst: &Instance, copy: u32) -> Container {
    let spec = &inst.spec;
    let ops_get = |path: &str| HTTPGetAction {
        path: Some(path.to_owned()),
        port: IntOrString::String("ops".to_owned()),
        ..HTTPGetAction::default()
    };
    Container {
        name: labels::KVSERVER_CONTAINER.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().to_owned()),
        args: Some(args(inst)),
        env: Some(env(inst, copy)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: spec.port,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("ops".to_owned()),
                container_port: i32::from(DEFAULT_OPS_PORT),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(ops_get("/readyz")),
            period_seconds: Some(2),
            failure_threshold: Some(2),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(ops_get("/healthz")),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        // Liveness waits until the store is open: a large shard replays its journal first.
        startup_probe: Some(Probe {
            http_get: Some(ops_get("/healthz")),
            period_seconds: Some(STARTUP_PERIOD_SECONDS),
            failure_threshold: Some(STARTUP_FAILURES),
            ..Probe::default()
        }),
        // The pod keeps serving while the endpoints drop it; SIGTERM then starts the drain.
        // The kubelet's own sleep: the image has no shell, and no route of the server can be
        // used to take it down.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: inst.stop.pre_stop_sleep,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(
            vec![
                VolumeMount {
                    name: labels::DATA_VOLUME.to_owned(),
                    mount_path: DATA_DIR.to_owned(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: TOKEN_VOLUME.to_owned(),
                    mount_path: ADMIN_TOKEN_DIR.to_owned(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(spec.tls.is_some().then(|| VolumeMount {
                name: TLS_VOLUME.to_owned(),
                mount_path: TLS_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .collect(),
        ),
        ..Container::default()
    }
}

/// The server's settings that are not flags of the book's server: its pod name, durability,
/// topology requirement and the stop timing of [`crate::grace`] (drain, in-flight requests);
/// for a copy k ≥ 1, its Raft group and advertised URL.
fn env(inst: &Instance, copy: u32) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    };
    let stop = &inst.stop;
    let mut env = vec![
        EnvVar {
            // The server takes its shard ordinal from its pod name.
            name: POD_NAME_ENV.to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        value("KV_SYNC", inst.spec.durability.as_str().to_owned()),
        // A shard serves no key and is not Ready until the operator gave it a shard map: a
        // fresh pod must not take writes that a newer copy elsewhere would later lose to.
        value("KV_REQUIRE_TOPOLOGY", "true".to_owned()),
        value("KV_DRAIN_DELAY", format!("{}s", stop.drain_delay)),
        value("KV_SHUTDOWN_TIMEOUT", format!("{}s", stop.shutdown_timeout)),
    ];
    if copy > 0 {
        // With the shard from the pod name, the group `<uid>/<shard>` this copy may join.
        env.push(value("KV_RAFT_STORE_UID", inst.uid().to_owned()));
        env.push(value("KV_RAFT_ADVERTISE_URL", advertise_url(inst)));
    }
    env
}

/// The user's affinity, plus a preferred spread of shards over nodes and, more weakly, over
/// zones (`topology.kubernetes.io/zone`), unless they set their own podAntiAffinity: losing a
/// node or a zone then takes as few shards as the cluster allows.
fn affinity(inst: &Instance) -> Affinity {
    let mut affinity = inst.spec.pod_overrides.affinity.clone().unwrap_or_default();
    if affinity.pod_anti_affinity.is_none() {
        let apart_by = |topology_key: &str, weight: i32| WeightedPodAffinityTerm {
            weight,
            pod_affinity_term: PodAffinityTerm {
                topology_key: topology_key.to_owned(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(labels::selector(&inst.name)),
                    ..LabelSelector::default()
                }),
                ..PodAffinityTerm::default()
            },
        };
        affinity.pod_anti_affinity = Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                apart_by("kubernetes.io/hostname", 100),
                apart_by("topology.kubernetes.io/zone", 50),
            ]),
            ..PodAntiAffinity::default()
        });
    }
    affinity
}

fn volume_claim(inst: &Instance, copy: u32) -> PersistentVolumeClaim {
    let storage = &inst.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(labels::DATA_VOLUME.to_owned()),
            labels: Some(copy_labels(inst, copy)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    storage.size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::kvstore;
    use crate::validate::validate;

    #[test]
    fn the_advertised_url_is_the_copy_url_once_the_kubelet_names_the_pod() {
        for tls in [false, true] {
            let mut kvs = kvstore("kv", 3);
            kvs.spec.port = 8080;
            if tls {
                kvs.spec.tls = Some(crate::crd::TlsSpec {
                    secret_name: "kv-tls".into(),
                });
            }
            let inst = validate(&kvs).unwrap();
            let template = advertise_url(&inst);
            for (copy, ordinal) in [(1, 0), (2, 7), (4, 12)] {
                let pod = kvproto::copy_pod("kv", copy, ordinal);
                assert_eq!(
                    template.replace("$(POD_NAME)", &pod),
                    kvproto::copy_url_tls("kv", "default", copy, ordinal, 8080, tls)
                );
            }
        }
    }

    #[test]
    fn copy_0_keeps_its_pods_at_every_factor_and_only_replicated_stores_roll_on_delete() {
        let one = validate(&kvstore("kv", 3)).unwrap();
        let mut kvs = kvstore("kv", 3);
        kvs.spec.replication.factor = 3;
        let three = validate(&kvs).unwrap();
        let (a, b) = (
            statefulset(&one, 3, Some("uid")).spec.unwrap(),
            statefulset(&three, 3, Some("uid")).spec.unwrap(),
        );
        // The same pods (a factor change restarts none); only the update strategy differs.
        assert_eq!(a.template, b.template);
        assert_eq!(
            StatefulSetSpec {
                update_strategy: None,
                ..b.clone()
            },
            a
        );
        assert_eq!(
            a.update_strategy, None,
            "factor 1: the API server's RollingUpdate"
        );
        let strategy = |s: StatefulSetSpec| s.update_strategy.and_then(|u| u.type_);
        assert_eq!(strategy(b).as_deref(), Some(ON_DELETE));
        let copy = copy_statefulset(&three, 1, 3, None).spec.unwrap();
        assert_eq!(strategy(copy).as_deref(), Some(ON_DELETE));
    }
}
