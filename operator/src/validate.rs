//! The pure first step of a reconcile: turn a `KVStore` into an [`Instance`] the builders can
//! trust, or say precisely what is wrong with its spec.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use kvproto::wire::DEFAULT_OPS_PORT;

use crate::crd::{KVStore, KVStoreSpec};
use crate::error::{Error, Result};
use crate::{grace, labels};

/// A KVStore whose spec passed validation, with what every child needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: KVStoreSpec,
    /// How its pods spend their grace period.
    pub stop: grace::Budget,
}

/// The replication factors offered (odd quorums, plus 2 for a cheap second copy).
pub const FACTORS: [i32; 4] = [1, 2, 3, 5];

/// Checks what the schema cannot (or what a schema-less apply may have skipped).
pub fn validate(kvs: &KVStore) -> Result<Instance> {
    let name = kvs
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let namespace = kvs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let owner = kvs
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    let spec = &kvs.spec;
    let mut problems = Vec::new();
    if spec.replicas < 0 {
        problems.push(format!("replicas must be >= 0, got {}", spec.replicas));
    }
    if !(1..=65535).contains(&spec.port) {
        problems.push(format!("port must be in 1..65535, got {}", spec.port));
    }
    // The kvserver's ops port (probes, metrics): the data port may not take it.
    if spec.port == i32::from(DEFAULT_OPS_PORT) {
        problems.push(format!("port {DEFAULT_OPS_PORT} is the kvserver ops port"));
    }
    if spec.image.trim().is_empty() {
        problems.push("image must not be empty".to_owned());
    }
    // The schema refuses these too, but a store stored before the minimum existed is not.
    let stop = grace::budget(spec.termination_grace_period_seconds);
    if let Err(why) = &stop {
        problems.push(why.clone());
    }
    if let Err(why) = check_quantity(&spec.storage.size.0) {
        problems.push(format!("storage.size {:?}: {why}", spec.storage.size.0));
    }
    for key in spec.pod_overrides.labels.keys() {
        if labels::selector(&name).contains_key(key) {
            problems.push(format!(
                "podOverrides.labels may not set {key}: the operator selects its pods by it"
            ));
        }
    }
    if let Some(tls) = &spec.tls
        && let Err(why) = check_dns_subdomain(&tls.secret_name)
    {
        problems.push(format!("tls.secretName {:?}: {why}", tls.secret_name));
    }
    if !FACTORS.contains(&spec.replication.factor) {
        problems.push(format!(
            "replication.factor must be 1, 2, 3 or 5, got {}",
            spec.replication.factor
        ));
    }
    if let Some(topology) = kvs.status.as_ref().and_then(|s| s.topology)
        && topology.sharding != spec.sharding
    {
        problems.push(format!(
            "sharding cannot change from {} to {} after creation",
            topology.sharding, spec.sharding
        ));
    }
    match stop {
        Ok(stop) if problems.is_empty() => Ok(Instance {
            name,
            namespace,
            owner,
            spec: spec.clone(),
            stop,
        }),
        _ => Err(Error::InvalidSpec(problems.join("; "))),
    }
}

impl Instance {
    /// The data port, as the shard map names it (validated to fit).
    pub fn port(&self) -> u16 {
        u16::try_from(self.spec.port).unwrap_or_default()
    }

    /// True when the servers serve HTTPS (`spec.tls`): peers are `https://` URLs.
    pub fn tls(&self) -> bool {
        self.spec.tls.is_some()
    }

    /// Copies per shard (`spec.replication.factor`, validated to be one of [`FACTORS`]).
    pub fn factor(&self) -> u32 {
        u32::try_from(self.spec.replication.factor)
            .unwrap_or(1)
            .max(1)
    }

    /// The store's `metadata.uid`: with the shard, the identity of each shard's Raft group.
    pub fn uid(&self) -> &str {
        &self.owner.uid
    }
}

/// Keys a TLS Secret must hold, as cert-manager writes them.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
pub const TLS_CA_KEY: &str = "ca.crt";

/// Checks the Secret `spec.tls.secretName` names (`None`: it does not exist) and answers its
/// `ca.crt`, the CA the operator trusts for this store. The error names the Secret and every
/// key that is missing, empty or not PEM, so the condition says what to fix.
pub fn tls_secret_ca(inst: &Instance, secret: Option<&Secret>) -> Result<Vec<u8>, String> {
    let Some(tls) = &inst.spec.tls else {
        return Err("spec.tls is not set".to_owned());
    };
    let name = format!("{}/{}", inst.namespace, tls.secret_name);
    let needs = "a Secret with tls.crt, tls.key and ca.crt (PEM), e.g. from a cert-manager \
                 Certificate whose issuer is a CA";
    let Some(secret) = secret else {
        return Err(format!(
            "spec.tls.secretName: Secret {name} not found; create {needs}"
        ));
    };
    let data = secret.data.clone().unwrap_or_default();
    let pem = |key: &str, marker: &str| {
        data.get(key)
            .map(|b| b.0.clone())
            .filter(|b| String::from_utf8_lossy(b).contains(marker))
    };
    let mut missing = Vec::new();
    for (key, marker) in [
        (TLS_CERT_KEY, "-----BEGIN CERTIFICATE-----"),
        (TLS_KEY_KEY, "PRIVATE KEY-----"),
        (TLS_CA_KEY, "-----BEGIN CERTIFICATE-----"),
    ] {
        if pem(key, marker).is_none() {
            missing.push(key);
        }
    }
    match pem(TLS_CA_KEY, "-----BEGIN CERTIFICATE-----") {
        Some(ca) if missing.is_empty() => Ok(ca),
        _ => Err(format!(
            "spec.tls.secretName: Secret {name} lacks {} (missing, empty or not PEM); it must be {needs}",
            missing.join(", ")
        )),
    }
}

/// A Kubernetes object name (DNS-1123 subdomain): at most 253 lowercase alphanumerics, `-`
/// and `.`, starting and ending alphanumeric.
pub fn check_dns_subdomain(s: &str) -> std::result::Result<(), &'static str> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    if !s.chars().all(|c| alnum(c) || c == '-' || c == '.') {
        return Err("may hold only lowercase letters, digits, '-' and '.'");
    }
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// Accepts a positive Kubernetes quantity: digits with an optional fraction, then an optional
/// binary-SI, decimal-SI or exponent suffix.
pub fn check_quantity(s: &str) -> std::result::Result<(), &'static str> {
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err("not a quantity: expected a number such as 1Gi");
    }
    if number.chars().all(|c| c == '0' || c == '.') {
        return Err("must be greater than zero");
    }
    const SUFFIXES: [&str; 13] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let exponent = suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        !e.is_empty()
            && e.trim_start_matches(['+', '-'])
                .chars()
                .all(|c| c.is_ascii_digit())
    });
    if SUFFIXES.contains(&suffix) || exponent {
        Ok(())
    } else {
        Err("unknown suffix: expected one of Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::kvstore;

    #[test]
    fn accepts_the_defaults() {
        let inst = validate(&kvstore("demo", 3)).unwrap();
        assert_eq!(inst.name, "demo");
        assert_eq!(inst.namespace, "default");
        assert_eq!(inst.owner.kind, "KVStore");
        assert_eq!(inst.owner.controller, Some(true));
    }

    #[test]
    fn names_every_problem() {
        let mut kvs = kvstore("demo", 3);
        kvs.spec.port = 8081;
        kvs.spec.storage.size.0 = "lots".into();
        kvs.spec
            .pod_overrides
            .labels
            .insert(labels::INSTANCE.into(), "other".into());
        let Err(Error::InvalidSpec(msg)) = validate(&kvs) else {
            panic!("expected InvalidSpec");
        };
        assert!(msg.contains("8081"), "{msg}");
        assert!(msg.contains("storage.size"), "{msg}");
        assert!(msg.contains("app.kubernetes.io/instance"), "{msg}");
    }

    #[test]
    fn a_grace_period_too_short_to_drain_and_sync_is_refused() {
        let mut kvs = kvstore("demo", 3);
        kvs.spec.termination_grace_period_seconds = grace::MIN_GRACE_SECONDS - 1;
        let Err(Error::InvalidSpec(msg)) = validate(&kvs) else {
            panic!("expected InvalidSpec");
        };
        assert!(
            msg.contains("terminationGracePeriodSeconds 6 is too short"),
            "{msg}"
        );
        assert!(msg.contains("preStop sleep"), "{msg}");
        assert!(msg.contains("final sync"), "{msg}");
        kvs.spec.termination_grace_period_seconds = grace::MIN_GRACE_SECONDS;
        assert!(validate(&kvs).is_ok());
    }

    fn tls_instance() -> Instance {
        let mut kvs = kvstore("demo", 3);
        kvs.spec.tls = Some(crate::crd::TlsSpec {
            secret_name: "demo-tls".into(),
        });
        validate(&kvs).unwrap()
    }

    fn secret(entries: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_owned(),
                            k8s_openapi::ByteString(v.as_bytes().to_vec()),
                        )
                    })
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_tls_secret_that_is_missing_or_incomplete_is_named_with_what_it_lacks() {
        let inst = tls_instance();
        assert!(inst.tls());
        let msg = tls_secret_ca(&inst, None).unwrap_err();
        assert!(msg.contains("Secret default/demo-tls not found"), "{msg}");
        assert!(msg.contains("cert-manager"), "{msg}");

        let no_ca = secret(&[("tls.crt", CERT), ("tls.key", KEY)]);
        let msg = tls_secret_ca(&inst, Some(&no_ca)).unwrap_err();
        assert!(msg.contains("lacks ca.crt "), "{msg}");

        let garbage = secret(&[("tls.crt", "hello"), ("tls.key", ""), ("ca.crt", CERT)]);
        let msg = tls_secret_ca(&inst, Some(&garbage)).unwrap_err();
        assert!(msg.contains("lacks tls.crt, tls.key "), "{msg}");

        let msg = tls_secret_ca(&inst, Some(&Secret::default())).unwrap_err();
        assert!(msg.contains("lacks tls.crt, tls.key, ca.crt "), "{msg}");

        let whole = secret(&[("tls.crt", CERT), ("tls.key", KEY), ("ca.crt", CERT)]);
        assert_eq!(tls_secret_ca(&inst, Some(&whole)).unwrap(), CERT.as_bytes());
        assert!(tls_secret_ca(&instance_plain(), Some(&whole)).is_err());
    }

    fn instance_plain() -> Instance {
        validate(&kvstore("demo", 3)).unwrap()
    }

    #[test]
    fn a_tls_secret_name_that_is_no_object_name_is_refused() {
        let mut kvs = kvstore("demo", 3);
        for bad in ["", "Demo-TLS", "-tls", "tls/other", "tls_1"] {
            kvs.spec.tls = Some(crate::crd::TlsSpec {
                secret_name: bad.into(),
            });
            let Err(Error::InvalidSpec(msg)) = validate(&kvs) else {
                panic!("{bad:?} accepted");
            };
            assert!(msg.contains("tls.secretName"), "{msg}");
        }
        kvs.spec.tls = Some(crate::crd::TlsSpec {
            secret_name: "demo-tls.v2".into(),
        });
        assert!(validate(&kvs).unwrap().tls());
    }

    #[test]
    fn only_the_offered_replication_factors_are_accepted() {
        let mut kvs = kvstore("demo", 3);
        for ok in FACTORS {
            kvs.spec.replication.factor = ok;
            assert_eq!(validate(&kvs).unwrap().factor(), u32::try_from(ok).unwrap());
        }
        for bad in [0, 4, 6, -1] {
            kvs.spec.replication.factor = bad;
            let Err(Error::InvalidSpec(msg)) = validate(&kvs) else {
                panic!("factor {bad} accepted");
            };
            assert!(
                msg.contains("replication.factor must be 1, 2, 3 or 5"),
                "{msg}"
            );
        }
    }

    #[test]
    fn quantities() {
        for ok in ["1Gi", "500Mi", "1", "1.5G", "2e3", "10k"] {
            assert_eq!(check_quantity(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Gi", "0", "0Gi", "1GB", "1.2.3Gi", "-1Gi", "1e"] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
    }
}
