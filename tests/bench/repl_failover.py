"""Failover time of a replicated store (docs/replication.md section 11): ROUNDS times, a shard's
leader is killed (kill -9 of its kvserver, found by its container's cgroup on the node) while a
probe writes one of that shard's keys every 20 ms through each of the shard's other copies (one
thread per copy, so a request held by one does not delay the other; a follower forwards to the
leader it knows); the figure is the time from the kill to the first write that was sent after it
and acknowledged. Writes sent before the kill do not count, even if answered
after it: the old leader may have committed them.

Rounds go over the shards in turn (round r kills shard r mod SHARDS), so no pod reaches a long
crash back-off; before each kill the shard has one leader, every copy in sync and the operator's
status Stable. The store is otherwise idle.
"""
import os
import signal
import sys
import threading
import time

from repl_lib import BenchError, Store, address, current_leader, key_of_shard, kvserver_pids, summary

INTERVAL_S = 0.02
PROBE_TIMEOUT_S = 1.0  # per request; each copy has its own probe thread
# A round with no acknowledged write this long after the kill is reported as failed.
GIVE_UP_S = 60.0
SETTLE_S = 600.0


class Probe(threading.Thread):
    """Writes `key` every 20 ms through `target`; appends (sent, returned, status) of every
    request to `log` (shared by the probes of a round: list.append is atomic)."""

    def __init__(self, store: Store, key: str, target: str, log: list, stop: threading.Event):
        super().__init__(daemon=True)
        self.store, self.key, self.target, self.log, self.stop = store, key, target, log, stop

    def run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            sent = time.monotonic()
            seq += 1
            code, _ = self.store.request(self.target, "PUT", f"/v1/keys/{self.key}",
                                         f"{self.target}-{seq}".encode(), PROBE_TIMEOUT_S)
            self.log.append((sent, time.monotonic(), code))
            time.sleep(max(0.0, sent + INTERVAL_S - time.monotonic()))


def first_ack_after(log: list, killed_at: float):
    """Seconds from the kill to the return of the first acknowledged write sent after it."""
    acks = [ret for sent, ret, code in log if sent >= killed_at and 200 <= code < 300]
    return round(min(acks) - killed_at, 3) if acks else None


def answers_between(log: list, start: float, end: float) -> dict:
    """How the probe's requests sent in [start, end) were answered, by status (0: no answer)."""
    counts: dict = {}
    for sent, _, code in log:
        if start <= sent < end:
            counts[str(code)] = counts.get(str(code), 0) + 1
    return counts


def one_round(store: Store, shard: int):
    """One kill and its figures, or None if the leader changed before the kill."""
    leader, lstatus, _ = store.wait_settled(shard, SETTLE_S, max_lag=0)
    time.sleep(1.0)  # past any leadership transfer the operator had just finished
    pods = store.pods()
    survivors = [address(pods[c]) for c in store.copies(shard) if c != leader and c in pods]
    targets = [t for t in survivors if t]
    if not targets:
        raise BenchError(f"shard {shard}: no other copy with an address than {leader}")
    pids = kvserver_pids(pods[leader])
    key = key_of_shard("failover-", shard, store.shards)
    log: list = []
    stop = threading.Event()
    probes = [Probe(store, key, t, log, stop) for t in targets]
    for p in probes:
        p.start()
    time.sleep(1.0)
    if not any(200 <= e[2] < 300 for e in log):
        stop.set()
        raise BenchError(f"shard {shard}: the probe's writes are not acknowledged before the kill: {log[-3:]}")
    if (store.status(pods[leader]) or {}).get("state") != "leader":
        stop.set()
        return None  # leadership moved meanwhile: the caller settles and tries again
    killed_at = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    while time.monotonic() < killed_at + GIVE_UP_S and first_ack_after(log, killed_at) is None:
        time.sleep(0.05)
    stop.set()
    for p in probes:
        p.join(PROBE_TIMEOUT_S * 2)
    took = first_ack_after(log, killed_at)
    new_leader, new_status = current_leader(store, shard, leader)
    return {"shard": shard, "killed": leader, "term": lstatus.get("term"), "pids": pids,
            "failover_s": took, "new_leader": new_leader,
            "new_term": (new_status or {}).get("term"),
            "answers_until_ack": answers_between(log, killed_at,
                                                 killed_at + (took if took is not None else GIVE_UP_S))}


def run(ns: str, name: str, shards: int, factor: int, rounds: int) -> dict:
    store = Store(ns, name, shards, factor)
    done = []
    for r in range(rounds):
        result = None
        for _ in range(5):
            result = one_round(store, r % shards)
            if result is not None:
                break
        if result is None:
            raise BenchError(f"shard {r % shards}: its leader kept changing before the kill")
        done.append(result)
        print(f"failover round {r + 1}/{rounds}: shard {result['shard']} leader {result['killed']} "
              f"killed, first acknowledged write after {result['failover_s']} s "
              f"(new leader {result['new_leader']})", flush=True, file=sys.stderr)
    for s in range(shards):
        store.wait_settled(s, SETTLE_S, max_lag=0)
    times = [r["failover_s"] for r in done if r["failover_s"] is not None]
    return {"store": name, "rounds": done, "failed_rounds": len(done) - len(times),
            "interval_ms": INTERVAL_S * 1000, "summary": summary(times)}
