#!/usr/bin/env python3
"""What each value set of the chart must render: the behaviour the templates promise.

check.sh renders the chart once per value set into DIR/chart-<set>.yaml; this script checks
those files. It prints one line per check and exits 1 when any fails.

Usage: render_test.py DIR
"""

import sys

import yaml


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
    rules = one(docs, "ClusterRole")["rules"]
    pvc = [r for r in rules if "persistentvolumeclaims" in r["resources"]]
    assert pvc and "deletecollection" in pvc[0]["verbs"], "PVCs are deleted by label selector"
    assert not any("create" in r["verbs"] and "pods" in r["resources"] for r in rules), "never creates Pods"
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
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def check_namespaced(docs):
    args = container(docs)["args"]
    assert "--namespace=kvstore-demo" in args, args
    assert "ClusterRole" not in kinds(docs) and "ClusterRoleBinding" not in kinds(docs), kinds(docs)
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == "kvstore-demo", "the Role is in the watched namespace"
    binding = one(docs, "RoleBinding")
    assert binding["subjects"][0]["namespace"] == "kvstore-system", "bound to the operator's SA"


def check_monitoring(docs):
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == one(docs, "Service")["spec"]["ports"][0]["name"]
    assert "--log-format=text" in container(docs)["args"]


def check_external_sa(docs):
    assert kinds(docs) == ["CustomResourceDefinition", "Deployment"], kinds(docs)
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


CHECKS = {
    "default": check_default,
    "ha": check_ha,
    "namespaced": check_namespaced,
    "monitoring": check_monitoring,
    "external-sa": check_external_sa,
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    failed = 0
    for name, check in CHECKS.items():
        try:
            check(load(f"{sys.argv[1]}/chart-{name}.yaml"))
            print(f"ok: renders as promised with {name} values")
        except (AssertionError, KeyError, OSError) as e:
            failed += 1
            print(f"FAIL: {name} values: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
