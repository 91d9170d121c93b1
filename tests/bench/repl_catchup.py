"""Catch-up of a follower that missed many writes (docs/replication.md section 11): one follower
of SHARD is cut off its peers (tests/bench/repl_netcut.py), READY_FILE is written (the caller
then writes its keys through the store), and once STOP_FILE exists the cut is healed and the
time until the follower is in sync is measured: the leader's lag for it is 0 and the follower
has applied everything the leader has committed (polled every 100 ms).

Missed entries: the leader's last log index minus what it knows the follower holds, at the heal.
"""
import json
import os
import time

from repl_lib import BenchError, Store, current_leader, kvserver_pids, member, pick_follower
from repl_netcut import NetCut

POLL_S = 0.1
SETTLE_S = 600.0


def restarts(pod: dict) -> int:
    return sum(c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses", []) or [])


def in_sync(leader_status: dict, follower: str, follower_status) -> bool:
    m = member(leader_status, follower)
    return (m is not None and m.get("lag") == 0 and follower_status is not None
            and (follower_status.get("applied") or 0) >= (leader_status.get("committed") or 0))


def run(ns: str, name: str, shards: int, factor: int, shard: int, ready_file: str,
        stop_file: str, limit_s: float) -> dict:
    store = Store(ns, name, shards, factor)
    leader, _, _ = store.wait_settled(shard, SETTLE_S, max_lag=0)
    follower = pick_follower(store, shard, leader)
    pod = store.pod(follower)
    if pod is None:
        raise BenchError(f"pod {follower} is gone")
    before = restarts(pod)
    cut = NetCut(kvserver_pids(pod)[0], follower)
    cut.cut()
    cut_at = time.monotonic()
    healed = False
    try:
        with open(ready_file, "w", encoding="utf-8") as f:
            json.dump({"follower": follower, "leader": leader}, f)
        deadline = cut_at + limit_s
        while not os.path.exists(stop_file):
            if time.monotonic() > deadline:
                raise BenchError(f"{stop_file} did not appear within {limit_s:.0f} s")
            time.sleep(0.5)
        lead_at_heal, lstatus = current_leader(store, shard, follower)
        if lstatus is None:
            raise BenchError(f"shard {shard} has no leader at the heal")
        m = member(lstatus, follower) or {}
        missed = (lstatus.get("lastLogIndex") or 0) - (m.get("matched") or 0)
        pod = store.pod(follower) or {}
        cut.heal()
        healed = True
        healed_at = time.monotonic()
    finally:
        if not healed:
            cut.heal()
    synced_at = None
    pods = store.pods()  # pod IPs stay as they are: nothing here deletes a pod
    while time.monotonic() < healed_at + limit_s:
        _, lstatus = current_leader(store, shard, follower, pods)
        fstatus = store.status(pods[follower]) if follower in pods else None
        if lstatus and in_sync(lstatus, follower, fstatus):
            synced_at = time.monotonic()
            break
        time.sleep(POLL_S)
    if synced_at is None:
        raise BenchError(f"{follower} not in sync {limit_s:.0f} s after the heal")
    took = synced_at - healed_at
    return {"store": name, "shard": shard, "follower": follower, "leader_at_cut": leader,
            "leader_at_heal": lead_at_heal, "cut_s": round(healed_at - cut_at, 1),
            "missed_entries": missed, "catchup_s": round(took, 2),
            "entries_per_s": round(missed / took) if took > 0 else None,
            "restarts_during_cut": restarts(pod) - before}
