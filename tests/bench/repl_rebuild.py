"""Rebuild of a lost copy (docs/replication.md section 11): a follower of SHARD loses its volume
(`kubectl delete pvc --wait=false`, then `kubectl delete pod`, as e2e case 3 does); the operator
makes the new, empty copy a learner, its peers send it the shard, and it replaces the old
member. Timed from the deletion (polled every 250 ms): the new pod's kvserver running, the pod
Ready, and the copy in sync: a voter under its new node ID, lag 0, everything committed applied,
and the operator's status Stable with every copy in sync. Keys/s divides the shard's keys (the
leader's `GET /v1/info`) by the time from the new kvserver's start to in sync.
"""
import json
import time

from repl_lib import (COPY_LABEL, BenchError, Store, address, container_id, copy_claim,
                      current_leader, is_ready, kubectl, member, pick_follower)

POLL_S = 0.25
SETTLE_S = 600.0


def info_keys(store: Store, pod: dict):
    base = address(pod)
    code, text = store.request(base, "GET", "/v1/info") if base else (0, "")
    try:
        return json.loads(text).get("keys") if code == 200 else None
    except ValueError:
        return None


def run(ns: str, name: str, shards: int, factor: int, shard: int, limit_s: float) -> dict:
    store = Store(ns, name, shards, factor)
    leader, lstatus, statuses = store.wait_settled(shard, SETTLE_S, max_lag=0)
    follower = pick_follower(store, shard, leader)
    old_id = statuses[follower]["nodeId"]
    pods = store.pods()
    keys = info_keys(store, pods[leader])
    old_uid = pods[follower]["metadata"]["uid"]
    copy = int(pods[follower]["metadata"].get("labels", {}).get(COPY_LABEL, "0"))
    start = time.monotonic()
    kubectl("-n", ns, "delete", "pvc", copy_claim(name, copy, shard), "--wait=false")
    kubectl("-n", ns, "delete", "pod", follower, "--wait=false")
    marks: dict = {}
    new_id = rebuilt_keys = None
    while "in_sync" not in marks:
        now = time.monotonic()
        if now > start + limit_s:
            raise BenchError(f"{follower} not rebuilt within {limit_s:.0f} s (reached {sorted(marks)})")
        pod = store.pod(follower)
        if pod and pod["metadata"]["uid"] != old_uid:
            if "running" not in marks and container_id(pod):
                marks["running"] = now
            if "ready" not in marks and is_ready(pod):
                marks["ready"] = now
            if "running" in marks:
                fstatus = store.status(pod)
                new_id = (fstatus or {}).get("nodeId")
                _, lstatus = current_leader(store, shard, follower)
                m = member(lstatus or {}, follower) or {}
                if (new_id and new_id != old_id and m.get("nodeId") == new_id
                        and m.get("role") == "voter" and m.get("lag") == 0
                        and (fstatus.get("applied") or 0) >= (lstatus.get("committed") or 0)
                        and store.healthy(shard) is None):
                    marks["in_sync"] = now
                    rebuilt_keys = info_keys(store, pod)
        time.sleep(POLL_S)
    build = marks["in_sync"] - marks["running"]
    return {"store": name, "shard": shard, "copy": follower, "old_node_id": old_id,
            "new_node_id": new_id, "keys": keys, "keys_on_new_copy": rebuilt_keys,
            "delete_to_running_s": round(marks["running"] - start, 2),
            "delete_to_ready_s": round(marks["ready"] - start, 2) if "ready" in marks else None,
            "delete_to_in_sync_s": round(marks["in_sync"] - start, 2),
            "running_to_in_sync_s": round(build, 2),
            "keys_per_s": round(keys / build) if keys and build > 0 else None}
