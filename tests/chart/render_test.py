#!/usr/bin/env python3
"""What each value set of the chart must render: the behaviour the templates promise.

check.sh renders the chart once per value set into DIR/chart-<set>.yaml; this script checks
those files. It prints one line per check and exits 1 when any fails.

Usage: render_test.py DIR
"""

import copy
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

import api_calls

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "operator/src"
BUILT = ROOT / "operator/tests/fixtures"  # the builders' output, reviewed (operator/tests/builders.rs)
LEASES = ("coordination.k8s.io", "leases")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def kinds(docs):
    return sorted(d["kind"] for d in docs)


def container(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def grants(role):
    """(group, resource, verb) of every rule of a Role or ClusterRole."""
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule.get("apiGroups", [])
        for r in rule.get("resources", [])
        for v in rule.get("verbs", [])
    }


def store_calls():
    """What the code calls on the stores' namespaces: everything but its Lease and the
    cluster-scoped reads."""
    return {
        c for c in api_calls.required(SRC) if c[:2] != LEASES and c[:2] not in api_calls.CLUSTER_SCOPED
    }


def cluster_scoped_calls():
    """The reads of nodes and volumes (whether a shard's only volume is on a node that is gone)."""
    return {c for c in api_calls.required(SRC) if c[:2] in api_calls.CLUSTER_SCOPED}


def check_node_reads(docs):
    role = one(docs, "ClusterRole", "kvstore-operator-nodes")
    same_grants(role, cluster_scoped_calls())
    assert not {v for _, _, v in grants(role)} - {"get", "list"}, "reads only"
    binding = one(docs, "ClusterRoleBinding", "kvstore-operator-nodes")
    assert binding["roleRef"]["name"] == "kvstore-operator-nodes"


def lease_calls():
    return {c for c in api_calls.required(SRC) if c[:2] == LEASES}


def same_grants(role, wanted):
    granted = grants(role)
    assert "*" not in {v for _, _, v in granted}, "no wildcard verbs"
    missing, extra = sorted(wanted - granted), sorted(granted - wanted)
    assert not missing and not extra, (
        f"{role['kind']} {role['metadata']['name']} differs from the calls in operator/src "
        f"(tests/chart/api_calls.py): not granted {missing}; granted, never called {extra}"
    )


def built(name):
    with open(BUILT / name, encoding="utf-8") as f:
        return yaml.safe_load(f)


def shard_pod_template():
    return built("demo-statefulset.yaml")["spec"]["template"]


def check_default(docs):
    args = container(docs)["args"]
    assert args[0] == "run", args
    assert "--leader-election" not in args, "one replica must not need a Lease"
    assert not any(a.startswith("--namespace") for a in args), "default watches all namespaces"
    dep = one(docs, "Deployment")
    assert dep["spec"]["strategy"]["type"] == "Recreate", "two unelected operators must never overlap"
    assert "ClusterRole" in kinds(docs) and "ClusterRoleBinding" in kinds(docs)
    assert "Role" not in kinds(docs), "no Lease Role without leader election"
    assert "PodDisruptionBudget" not in kinds(docs)
    assert "CustomResourceDefinition" in kinds(docs), "the chart ships the CRD"
    env = {e["name"] for e in container(docs)["env"]}
    assert {"POD_NAME", "POD_NAMESPACE"} <= env, env
    sc = container(docs)["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and sc["capabilities"]["drop"] == ["ALL"]
    probes = container(docs)
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    role = one(docs, "ClusterRole", "kvstore-operator")
    same_grants(role, store_calls())
    check_node_reads(docs)
    rules = role["rules"]
    assert not any("create" in r["verbs"] and "pods" in r["resources"] for r in rules), "never creates Pods"
    secrets = {v for g, r, v in grants(role) if r == "secrets"}
    assert not secrets & {"update", "patch", "delete", "deletecollection"}, "changes no Secret"
    check_admission_policies(docs, "system:serviceaccount:kvstore-system:kvstore-operator")
    assert "NetworkPolicy" not in kinds(docs), "the NetworkPolicy is off by default"
    svc = one(docs, "Service")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selects the pods"


def check_ha(docs):
    args = container(docs)["args"]
    assert "--leader-election" in args, "replicaCount > 1 turns leader election on"
    assert "--lease-name=kvstore-operator" in args, args
    assert "--lease-namespace=kvstore-system" in args, args
    assert one(docs, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == "kvstore-system", "the Lease Role lives with the operator"
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named and named[0]["resourceNames"] == ["kvstore-operator"], "only its own Lease"
    same_grants(role, lease_calls())
    unnamed = {v for r in role["rules"] if not r.get("resourceNames") for v in r["verbs"]}
    assert unnamed == {"create"}, f"only create (which cannot name it) is unnamed: {unnamed}"
    same_grants(one(docs, "ClusterRole", "kvstore-operator"), store_calls())
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def check_namespaced(docs):
    args = container(docs)["args"]
    assert "--namespace=kvstore-demo" in args, args
    # The only cluster-wide grant: reading nodes and volumes (no namespace holds them).
    check_node_reads(docs)
    assert kinds(docs).count("ClusterRole") == 1, kinds(docs)
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == "kvstore-demo", "the Role is in the watched namespace"
    binding = one(docs, "RoleBinding")
    assert binding["subjects"][0]["namespace"] == "kvstore-system", "bound to the operator's SA"
    same_grants(role, store_calls())


def check_monitoring(docs):
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == one(docs, "Service")["spec"]["ports"][0]["name"]
    assert "--log-format=text" in container(docs)["args"]


def check_external_sa(docs):
    policies = ["ValidatingAdmissionPolicy"] * 2 + ["ValidatingAdmissionPolicyBinding"] * 2
    assert kinds(docs) == sorted(["CustomResourceDefinition", "Deployment"] + policies), kinds(docs)
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    # RBAC granted elsewhere is still held to the admission policies, for the SA it names.
    check_admission_policies(docs, "system:serviceaccount:kvstore-system:existing")


def check_netpol(docs):
    assert "ValidatingAdmissionPolicy" not in kinds(docs), "admissionPolicy.enabled=false"
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["kvstore-demo", "shop"]
    template = shard_pod_template()
    pod_labels = template["metadata"]["labels"]
    ports = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    operator_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for p in policies:
        spec = p["spec"]
        selector = spec["podSelector"]["matchLabels"]
        assert all(pod_labels.get(k) == v for k, v in selector.items()), "selects the shard pods"
        assert spec["policyTypes"] == ["Ingress"]
        by_port = {r["ports"][0]["port"]: r for r in spec["ingress"]}
        assert set(by_port) == {"http", "ops"} <= ports, (by_port.keys(), ports)
        ops = by_port["ops"]["from"]
        assert {"ipBlock": {"cidr": "10.0.0.0/16"}} in ops, ops
        assert all("ipBlock" in peer for peer in ops), f"ops port only from the nodes: {ops}"
        data = by_port["http"]["from"]
        assert {"podSelector": {"matchLabels": {"app": "client"}}} in data, data
        op = [peer for peer in data if "namespaceSelector" in peer]
        assert op and op[0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "kvstore-system"
        }, "the operator, in the release namespace"
        assert all(operator_labels.get(k) == v for k, v in op[0]["podSelector"]["matchLabels"].items())
        assert {"podSelector": {"matchLabels": selector}} in data, "shards forward to each other"


def check_netpol_open(docs):
    p = one(docs, "NetworkPolicy")
    assert p["metadata"]["namespace"] == "kvstore-demo", "watchNamespace is the default namespace"
    by_port = {r["ports"][0]["port"]: r for r in p["spec"]["ingress"]}
    assert "from" not in by_port["http"], "no clients listed: the data port is open to any source"
    assert [peer for peer in by_port["ops"]["from"]] == [{"ipBlock": {"cidr": "10.0.0.0/16"}}]


def check_admission_policies(docs, user):
    """The policies refuse what the operator must not do, and admit what its builders make."""
    import celpy  # cel-python: check.sh installs it (the CEL of the API server, in Python)

    env = celpy.Environment()

    def admits(policy, request, obj=None, old=None):
        activation = {
            "request": celpy.json_to_cel(request),
            "object": celpy.json_to_cel(obj),
            "oldObject": celpy.json_to_cel(old),
        }
        for cond in policy["spec"]["matchConditions"]:
            if not env.program(env.compile(cond["expression"])).evaluate(activation):
                return True  # not the operator: the policy does not apply
        for v in policy["spec"]["validations"]:
            result = env.program(env.compile(v["expression"])).evaluate(activation)
            if isinstance(result, celpy.CELEvalError):
                raise AssertionError(f"{v['expression']}: {result}")
            if not result:
                return False
        return True

    by_name = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
    bindings = {d["spec"]["policyName"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"}
    assert set(by_name) == set(bindings), (by_name.keys(), bindings.keys())
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings.values())
    secrets = next(p for p in by_name.values() if p["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["secrets"])
    volumes = next(p for p in by_name.values() if p["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["persistentvolumeclaims"])
    assert secrets["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]
    assert volumes["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["DELETE"]
    assert all(p["spec"]["failurePolicy"] == "Fail" for p in by_name.values())

    def req(resource, operation, who=user):
        return {"userInfo": {"username": who}, "operation": operation,
                "resource": {"group": "", "version": "v1", "resource": resource}}

    token = built("demo-secret.yaml")
    assert admits(secrets, req("secrets", "CREATE"), obj=token), "the admin token the builder makes"
    for fixture in ["tls-peer-secret.yaml", "tls-data-secret.yaml"]:
        assert admits(secrets, req("secrets", "CREATE"), obj=built(fixture)), f"{fixture}: the peer and data tokens"
    tls = copy.deepcopy(built("tls-peer-secret.yaml"))
    tls["metadata"]["name"] = "secure-tls"
    assert not admits(secrets, req("secrets", "CREATE"), obj=tls), "the operator never creates a TLS Secret"
    for what, change in [
        ("another name", lambda s: s["metadata"].update(name="db-password")),
        ("no owner", lambda s: s["metadata"].pop("ownerReferences")),
        ("another owner's name", lambda s: s["metadata"]["ownerReferences"][0].update(name="other")),
        ("an owner that is no KVStore", lambda s: s["metadata"]["ownerReferences"][0].update(kind="Deployment", apiVersion="apps/v1")),
        ("no labels", lambda s: s["metadata"].pop("labels")),
    ]:
        bad = copy.deepcopy(token)
        change(bad)
        assert not admits(secrets, req("secrets", "CREATE"), obj=bad), f"a Secret with {what} is refused"
    stolen = dict(token, metadata=dict(token["metadata"], name="db-password"))
    assert admits(secrets, req("secrets", "CREATE", "system:serviceaccount:x:y"), obj=stolen), "others are not limited"

    # A claim as the StatefulSet controller makes it from the template: data-NAME-i.
    template = built("demo-statefulset.yaml")["spec"]["volumeClaimTemplates"][0]
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": dict(template["metadata"], name="data-demo-0", namespace="default"),
             "spec": template["spec"]}
    assert admits(volumes, req("persistentvolumeclaims", "DELETE"), old=claim), "a shard volume"
    claim12 = copy.deepcopy(claim)
    claim12["metadata"]["name"] = "data-demo-12"
    assert admits(volumes, req("persistentvolumeclaims", "DELETE"), old=claim12)
    for what, change in [
        ("another store's name", lambda c: c["metadata"].update(name="data-other-0")),
        ("a name that is no shard volume", lambda c: c["metadata"].update(name="postgres-data")),
        ("no ordinal", lambda c: c["metadata"].update(name="data-demo-x")),
        ("another manager", lambda c: c["metadata"]["labels"].update({"app.kubernetes.io/managed-by": "Helm"})),
        ("no labels", lambda c: c["metadata"].pop("labels")),
    ]:
        bad = copy.deepcopy(claim)
        change(bad)
        assert not admits(volumes, req("persistentvolumeclaims", "DELETE"), old=bad), f"a claim with {what} is refused"


def check_derivation():
    """api_calls.py must see a call planted in the code, or an equal comparison proves nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(SRC, src)
        volumes = src / "controller/volumes.rs"
        text = volumes.read_text(encoding="utf-8")
        planted = text.replace(
            "if pods.get_opt(&name).await?.is_some() {",
            "if pods.delete_collection(&DeleteParams::default(), &ListParams::default()).await?.is_left() { continue; }\n"
            "        if pods.get_opt(&name).await?.is_some() {",
        )
        assert planted != text, "could not plant a pods deletecollection call in controller/volumes.rs"
        volumes.write_text(planted, encoding="utf-8")
        assert ("", "pods", "deletecollection") in api_calls.required(src) - api_calls.required(SRC), "planted deletecollection"
        volumes.write_text(text.replace("claims.delete(name,", "claims.evict(name,"), encoding="utf-8")
        try:
            api_calls.required(src)
        except api_calls.Unreadable:
            pass
        else:
            raise AssertionError("an unknown Api method went unnoticed")


CHECKS = {
    "default": check_default,
    "ha": check_ha,
    "namespaced": check_namespaced,
    "monitoring": check_monitoring,
    "external-sa": check_external_sa,
    "netpol": check_netpol,
    "netpol-open": check_netpol_open,
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    failed = 0
    try:
        check_derivation()
        print("ok: api_calls.py sees a call planted in the operator's code")
    except (AssertionError, OSError, api_calls.Unreadable) as e:
        failed += 1
        print(f"FAIL: api_calls.py self-test: {type(e).__name__}: {e}")
    for name, check in CHECKS.items():
        try:
            check(load(f"{sys.argv[1]}/chart-{name}.yaml"))
            print(f"ok: renders as promised with {name} values")
        except (AssertionError, KeyError, OSError, ImportError, api_calls.Unreadable) as e:
            failed += 1
            print(f"FAIL: {name} values: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
