"""Times one `kubectl scale kvstore/NAME --replicas=TO`: from the moment the command is run
until the KVStore is Available again with TO shards, its new generation observed and no move in
flight (the condition tests/demo.sh waits for). The status is followed with `kubectl get -w`, so
each rebalance phase (status.rebalance.phase) is timestamped as the operator persists it.

Keys moved: the largest status.rebalance.keysMoved seen, and the operator's `Rebalanced` event
("... N records copied ...") when there is one. Keys/s is given over the Copy phase and over the
whole scale.

Usage: scale_timer.py NAMESPACE NAME TO [TIMEOUT_S]   Prints one JSON object on stdout.
"""
import json
import queue
import re
import subprocess
import sys
import threading
import time

FIELDS = ("{.metadata.generation}|{.status.observedGeneration}|{.status.phase}|{.status.replicas}"
          "|{.status.rebalance.phase}|{.status.rebalance.keysMoved}{\"\\n\"}")


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def watch(ns: str, name: str, out: "queue.Queue") -> None:
    """Feeds (time, fields) from `kubectl get -w`; restarts the watch if it ends."""
    while True:
        proc = subprocess.Popen(["kubectl", "-n", ns, "get", "kvs", name, "-w", "-o",
                                 f"jsonpath={FIELDS}"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put((time.monotonic(), line.rstrip("\n").split("|")))
        proc.wait()
        time.sleep(0.5)


def rebalanced_events(ns: str, name: str) -> list:
    """The store's `Rebalanced` events (core/v1 view)."""
    raw = kubectl("-n", ns, "get", "events", "--field-selector",
                  f"involvedObject.name={name},reason=Rebalanced", "-o", "json")
    return json.loads(raw).get("items", [])


def uid(event: dict) -> str:
    return event.get("metadata", {}).get("uid", "")


def main() -> None:
    ns, name, to = sys.argv[1], sys.argv[2], int(sys.argv[3])
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 900.0
    before = json.loads(kubectl("-n", ns, "get", "kvs", name, "-o", "json"))
    gen0 = int(before["metadata"]["generation"])
    frm = int(before.get("status", {}).get("replicas") or 0)
    seen_events = {uid(e) for e in rebalanced_events(ns, name)}

    lines: "queue.Queue" = queue.Queue()
    threading.Thread(target=watch, args=(ns, name, lines), daemon=True).start()
    time.sleep(1.0)  # let the watch deliver the current state first
    while not lines.empty():
        lines.get()
    t0 = time.monotonic()
    kubectl("-n", ns, "scale", f"kvstore/{name}", f"--replicas={to}")

    phases: list = []  # [phase, seconds after t0 when first seen]
    moved = 0
    done_at = None
    last = []
    while done_at is None:
        remaining = limit - (time.monotonic() - t0)
        if remaining <= 0:
            sys.exit(f"scale {frm}->{to}: not Available within {limit:.0f} s; last status {last}")
        try:
            t, f = lines.get(timeout=min(remaining, 5.0))
        except queue.Empty:
            continue
        last = f
        f += [""] * (6 - len(f))
        gen, obs, phase, replicas, rb, keys = f[:6]
        if rb and (not phases or phases[-1][0] != rb):
            phases.append([rb, round(t - t0, 2)])
        if keys.isdigit():
            moved = max(moved, int(keys))
        if (gen.isdigit() and int(gen) > gen0 and obs == gen and phase == "Available"
                and replicas == str(to) and not rb):
            done_at = t
    seconds = done_at - t0

    # The Rebalanced event's count (written once the copy finished) wins over the polled status.
    # The operator publishes it just after writing the Available status: allow it a moment.
    event_keys = None
    for _ in range(20):
        for e in rebalanced_events(ns, name):
            if uid(e) in seen_events:
                continue
            m = re.search(r"from (\d+) to (\d+) shards: (\d+) records", e.get("message") or e.get("note") or "")
            if m and int(m.group(1)) == frm and int(m.group(2)) == to:
                event_keys = int(m.group(3))
        if event_keys is not None:
            break
        time.sleep(0.5)
    if event_keys is not None:
        moved = event_keys

    copy_s = None
    for i, (p, at) in enumerate(phases):
        if p == "Copy":
            end = phases[i + 1][1] if i + 1 < len(phases) else seconds
            copy_s = round(end - at, 2)
    print(json.dumps({
        "from": frm, "to": to, "seconds": round(seconds, 2), "keys_moved": moved,
        "keys_moved_source": "Rebalanced event" if event_keys is not None else "status.rebalance.keysMoved",
        "copy_seconds": copy_s,
        "keys_per_s_copy": round(moved / copy_s, 1) if copy_s else None,
        "keys_per_s_total": round(moved / seconds, 1) if seconds > 0 else None,
        "phases": phases,
    }))


if __name__ == "__main__":
    main()
