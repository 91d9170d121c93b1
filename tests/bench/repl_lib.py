"""What the replication benchmark's node-side probes share (tests/bench/replication.sh): the
copies of a replicated store and their Raft status, read from the cluster's node as root (pod
IPs are reachable from it, as tests/e2e reaches them), the kvserver processes of a copy found by
its container's cgroup (as tests/e2e/src/host.rs does), and the keys a shard owns.

Copy 0 of shard i is pod `NAME-i`; copy k >= 1 is pod `NAME-r<k>-i` (label kvstore.dev/copy=k),
its claim `data-NAME-r<k>-i` (docs/replication.md section 3). A copy's view of its group comes
from `GET /v1/admin/raft/status` with the store's admin token (Secret `NAME-admin-token`).
"""
import base64
import json
import os
import statistics
import subprocess
import time
import urllib.error
import urllib.request

COPY_LABEL = "kvstore.dev/copy"
KVSERVER = "kvserver"
STATUS_PATH = "/v1/admin/raft/status"
HTTP_TIMEOUT_S = 2.0


class BenchError(Exception):
    """A probe that cannot measure what it was asked to: the message says why."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise BenchError("the replication probes run as root on the local cluster's node: they "
                         "kill container processes and enter pods' network namespaces")


def kubectl(*args: str) -> str:
    out = subprocess.run(["kubectl", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json"))


def copy_pod(store: str, copy: int, shard: int) -> str:
    return f"{store}-{shard}" if copy == 0 else f"{store}-r{copy}-{shard}"


def copy_claim(store: str, copy: int, shard: int) -> str:
    return f"data-{copy_pod(store, copy, shard)}"


def modulo_owner(key: str, shards: int) -> int:
    """The shard of `key` under modulo sharding: its bytes as a big-endian integer mod N
    (kvproto/src/shard.rs `modulo`)."""
    return int.from_bytes(key.encode(), "big") % max(shards, 1)


def key_of_shard(prefix: str, shard: int, shards: int) -> str:
    """The first key `PREFIX<n>` that shard `shard` owns."""
    for n in range(10_000):
        key = f"{prefix}{n}"
        if modulo_owner(key, shards) == shard:
            return key
    raise BenchError(f"no key {prefix}<n> lands on shard {shard} of {shards}")


def keys_of_shard(prefix: str, count: int, shard: int, shards: int) -> int:
    """How many of kvclient load's keys `PREFIX0..PREFIX{count-1}` shard `shard` owns."""
    return sum(1 for i in range(count) if modulo_owner(f"{prefix}{i}", shards) == shard)


def summary(values: list) -> dict:
    return {"n": len(values), "median": round(statistics.median(values), 3) if values else None,
            "max": round(max(values), 3) if values else None,
            "min": round(min(values), 3) if values else None}


def admin_token(ns: str, store: str) -> str:
    data = kubectl("-n", ns, "get", "secret", f"{store}-admin-token", "-o", "jsonpath={.data.token}")
    text = base64.b64decode(data).decode()
    return text.splitlines()[0].strip() if text else ""


def address(pod: dict):
    """`http://IP:PORT` of a running kvserver pod (its container port named http), or None."""
    ip = pod.get("status", {}).get("podIP")
    for c in pod.get("spec", {}).get("containers", []):
        for p in c.get("ports", []) or []:
            if p.get("name") == "http" and ip:
                return f"http://{ip}:{p['containerPort']}"
    return None


def container_id(pod: dict, container: str = KVSERVER):
    """The running container's ID without its scheme, or None."""
    for c in pod.get("status", {}).get("containerStatuses", []) or []:
        if c.get("name") == container and c.get("state", {}).get("running"):
            cid = (c.get("containerID") or "").rsplit("://", 1)[-1]
            return cid or None
    return None


def is_ready(pod: dict) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conds = pod.get("status", {}).get("conditions", []) or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def pids_in_cgroup(needle: str) -> list:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
                if needle in f.read():
                    pids.append(int(pid))
        except OSError:
            continue  # exited between listing and reading
    return sorted(pids)


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def kvserver_pids(pod: dict) -> list:
    """The processes of the pod's kvserver container; fails unless they are all kvserver."""
    cid = container_id(pod)
    name = pod["metadata"]["name"]
    if not cid:
        raise BenchError(f"pod {name} has no running kvserver container")
    pids = pids_in_cgroup(cid)
    if not pids:
        raise BenchError(f"no process of container {cid} ({name}) in /proc/*/cgroup: is this the "
                         "cluster's node?")
    comms = {comm(p) for p in pids} - {""}
    if comms != {KVSERVER}:
        raise BenchError(f"the kvserver container of {name} runs {sorted(comms)}, not only kvserver")
    return pids


class Store:
    """One replicated store, read from the node."""

    def __init__(self, ns: str, name: str, shards: int, factor: int):
        self.ns, self.name, self.shards, self.factor = ns, name, shards, factor
        self.token = admin_token(ns, name)

    def pods(self) -> dict:
        """Every kvserver pod of the store by name."""
        items = kubectl_json("-n", self.ns, "get", "pods", "-l",
                             f"app.kubernetes.io/instance={self.name}")["items"]
        return {p["metadata"]["name"]: p for p in items}

    def pod(self, name: str):
        try:
            return kubectl_json("-n", self.ns, "get", "pod", name)
        except BenchError:
            return None

    def copies(self, shard: int) -> list:
        return [copy_pod(self.name, k, shard) for k in range(self.factor)]

    def request(self, base: str, method: str, path: str, body: bytes = None,
                timeout: float = HTTP_TIMEOUT_S):
        """(status, body text) of one request with the admin token; status 0 if none came."""
        req = urllib.request.Request(base + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (OSError, ValueError) as e:
            return 0, str(e)

    def status(self, pod: dict):
        """The copy's Raft status, or None when it does not answer."""
        base = address(pod)
        if not base:
            return None
        code, text = self.request(base, "GET", STATUS_PATH)
        if code != 200:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    def statuses(self, shard: int, pods: dict = None) -> dict:
        pods = self.pods() if pods is None else pods
        return {n: (self.status(pods[n]) if n in pods else None) for n in self.copies(shard)}

    def view(self, shard: int, pods: dict = None):
        """(leader pod, its status, statuses) when the shard agrees ([`agreed`]), else a reason."""
        statuses = self.statuses(shard, pods)
        return agreed(self.copies(shard), statuses)

    def replication(self) -> dict:
        obj = kubectl_json("-n", self.ns, "get", "kvs", self.name)
        return obj.get("status", {}).get("replication") or {}

    def healthy(self, shard: int):
        """None when status.replication shows the shard Stable with every copy in sync."""
        for s in self.replication().get("shards", []):
            if s.get("shard") == shard:
                if s.get("phase") == "Stable" and s.get("inSync") == self.factor and s.get("leader"):
                    return None
                return f"status.replication shard {shard}: {s}"
        return f"status.replication has no shard {shard}"

    def wait_settled(self, shard: int, limit_s: float, max_lag: int = 0):
        """Waits until the shard agrees on one leader with every copy in sync (lag <= max_lag)
        and the operator says so too; answers (leader pod, leader status, statuses)."""
        deadline = time.monotonic() + limit_s
        why = "not polled"
        while time.monotonic() < deadline:
            v = self.view(shard)
            if isinstance(v, str):
                why = v
            else:
                lags = [m.get("lag") for m in v[1].get("members", []) if m.get("pod") != v[0]]
                why = self.healthy(shard)
                if why is None and all(lag is not None and lag <= max_lag for lag in lags):
                    return v
                why = why or f"follower lags {lags}"
            time.sleep(0.5)
        raise BenchError(f"{self.ns}/{self.name} shard {shard} did not settle in {limit_s:.0f} s: {why}")


def agreed(copies: list, statuses: dict):
    """(leader pod, leader status, statuses) if every copy answers, one leads, the others follow
    it in its term and its membership has them all as voters; otherwise what is not so."""
    missing = [c for c in copies if not statuses.get(c)]
    if missing:
        return f"no answer from {missing}"
    leaders = [c for c in copies if statuses[c].get("state") == "leader"]
    if len(leaders) != 1:
        return f"leaders {leaders}"
    lead = leaders[0]
    term = statuses[lead].get("term")
    for c in copies:
        s = statuses[c]
        if s.get("term") != term or (s.get("leader") or {}).get("pod") != lead:
            return f"{c} is {s.get('state')} in term {s.get('term')} following {(s.get('leader') or {}).get('pod')}"
    voters = {(m.get("nodeId"), m.get("pod")) for m in statuses[lead].get("members", [])
              if m.get("role") == "voter"}
    ids = {(statuses[c].get("nodeId"), c) for c in copies}
    if voters != ids:
        return f"the leader's voters {sorted(voters)}, the copies {sorted(ids)}"
    return lead, statuses[lead], statuses


def member(leader_status: dict, pod: str):
    """The leader's entry for `pod` (its node ID, role, matched, lag), or None."""
    return next((m for m in leader_status.get("members", []) if m.get("pod") == pod), None)


def current_leader(store: Store, shard: int, exclude: str, pods: dict = None):
    """(pod, status) of the copy other than `exclude` that leads with the highest term."""
    statuses = store.statuses(shard, pods)
    leading = [(s["term"], c, s) for c, s in statuses.items()
               if c != exclude and s and s.get("state") == "leader"]
    if not leading:
        return None, None
    _, pod, status = max(leading, key=lambda t: t[0])
    return pod, status


def pick_follower(store: Store, shard: int, leader: str) -> str:
    """A follower other than copy 0 if there is one (copy 0 leads a Stable shard anyway)."""
    others = [c for c in store.copies(shard) if c != leader]
    return next((c for c in others if c != store.copies(shard)[0]), others[0])
