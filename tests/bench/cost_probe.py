"""Measurements of tests/bench/cost_curves.sh that need the node itself (run on the cluster's
node, as root): peak resident memory while something runs, a kvserver's restart to Ready, and
the bytes a store's volumes hold.

- rss: samples VmRSS of every process of the operator's pods and of the store's pods (found by
  cgroup, as footprint.py does) every 0.5 s until STOP_FILE exists; prints the peak per pod.
- restart: kill -9 of the kvserver of POD; the time from the kill and from the new process's
  start (its /proc start time) until its /readyz answers 200 (polled every 20 ms on the pod IP),
  and until Kubernetes marks the pod Ready (the readiness probe's period adds to that one).
- disk: bytes under the host paths of the PVs bound to the store's claims, and file count.

Usage: cost_probe.py rss NAMESPACE INSTANCE STOP_FILE     -> JSON object
       cost_probe.py restart NAMESPACE POD                -> JSON object
       cost_probe.py disk NAMESPACE INSTANCE              -> JSON object
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import footprint

OPERATOR = ("kvstore-system", "app.kubernetes.io/name=kvstore-operator")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def kubectl_json(*args: str) -> dict:
    out = subprocess.run(["kubectl", *args, "-o", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def kvserver_pids(ns: str, pod: str) -> list:
    return [p["pid"] for p in footprint.pods(ns, f"statefulset.kubernetes.io/pod-name={pod}")
            if p["comm"] == "kvserver"]


def rss(ns: str, instance: str, stop_file: str) -> dict:
    operator: dict = {}
    kvservers: dict = {}
    samples = 0
    while not os.path.exists(stop_file):
        for peak, where, selector, comm in (
                (operator, *OPERATOR, "kvstore-operator"),
                (kvservers, ns, f"app.kubernetes.io/instance={instance}", "kvserver")):
            try:
                found = footprint.pods(where, selector)
            except (SystemExit, subprocess.CalledProcessError):
                continue  # a pod between processes (restarting): next sample
            for p in found:
                if p["vmrss_kib"] is not None and p["comm"] == comm:
                    peak[p["pod"]] = max(peak.get(p["pod"], 0), p["vmrss_kib"])
        samples += 1
        time.sleep(0.5)
    return {"samples": samples,
            "operator_peak_kib": max(operator.values(), default=None),
            "kvserver_peak_kib": max(kvservers.values(), default=None),
            "per_pod_peak_kib": {**operator, **kvservers}}


def start_time(pid: int) -> float:
    """The process's start, in seconds since the epoch (/proc/PID/stat field 22 + btime)."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open("/proc/stat", encoding="utf-8") as f:
        btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
    return btime + int(fields[19]) / CLK_TCK


def ready_condition(ns: str, pod: str) -> bool:
    conds = kubectl_json("-n", ns, "get", "pod", pod).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def readyz(ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:8081/readyz", timeout=0.2) as r:
            return r.status == 200
    except OSError:
        return False


def restart(ns: str, pod: str, limit_s: float = 300.0) -> dict:
    old = kvserver_pids(ns, pod)
    if len(old) != 1:
        sys.exit(f"expected one kvserver process in {pod}, found {old}")
    ip = kubectl_json("-n", ns, "get", "pod", pod)["status"]["podIP"]
    killed_at = time.time()
    os.kill(old[0], signal.SIGKILL)
    deadline = time.monotonic() + limit_s
    new = None
    while new is None:
        if time.monotonic() > deadline:
            sys.exit(f"{pod}: no new kvserver process within {limit_s:.0f} s")
        try:
            pids = [p for p in kvserver_pids(ns, pod) if p != old[0]]
        except (SystemExit, subprocess.CalledProcessError):
            pids = []
        new = pids[0] if pids else None
        time.sleep(0.02)
    started_at = start_time(new)
    while not readyz(ip):
        if time.monotonic() > deadline:
            sys.exit(f"{pod}: /readyz not 200 within {limit_s:.0f} s")
        time.sleep(0.02)
    serving_at = time.time()
    while not ready_condition(ns, pod):
        if time.monotonic() > deadline:
            sys.exit(f"{pod}: not Ready within {limit_s:.0f} s")
        time.sleep(0.1)
    pod_ready_at = time.time()
    return {"pod": pod,
            "kill_to_new_process_s": round(started_at - killed_at, 2),
            "process_start_to_readyz_s": round(serving_at - started_at, 2),
            "kill_to_readyz_s": round(serving_at - killed_at, 2),
            "kill_to_pod_ready_s": round(pod_ready_at - killed_at, 2)}


def disk(ns: str, instance: str) -> dict:
    claims = kubectl_json("-n", ns, "get", "pvc", "-l", f"app.kubernetes.io/instance={instance}")["items"]
    total = files = 0
    volumes = []
    for c in claims:
        pv_name = c.get("spec", {}).get("volumeName")
        if not pv_name:
            continue
        spec = kubectl_json("get", "pv", pv_name)["spec"]
        path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not path or not os.path.isdir(path):
            continue
        size = 0
        for root, _, names in os.walk(path):
            for n in names:
                p = os.path.join(root, n)
                if not os.path.islink(p):
                    size += os.stat(p).st_blocks * 512
                    files += 1
        volumes.append({"claim": c["metadata"]["name"], "bytes": size})
        total += size
    if not volumes:
        sys.exit(f"no host-path volume found for {ns}/{instance}")
    return {"bytes": total, "files": files, "volumes": volumes}


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    if kind == "rss" and len(sys.argv) == 5:
        print(json.dumps(rss(sys.argv[2], sys.argv[3], sys.argv[4])))
    elif kind == "restart" and len(sys.argv) == 4:
        print(json.dumps(restart(sys.argv[2], sys.argv[3])))
    elif kind == "disk" and len(sys.argv) == 4:
        print(json.dumps(disk(sys.argv[2], sys.argv[3])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
