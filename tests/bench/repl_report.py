"""The replication benchmark's result (tests/bench/replication.sh): the parts' JSON files of
WORK_DIR gathered into one object (OUT_JSON, read by tests/bench/render.py), and its figures
printed beside the targets of docs/replication.md section 11. A target missed is reported as
such, never asserted.

Usage: repl_report.py WORK_DIR OUT_JSON
"""
import json
import os
import sys

# (figure, bound, "min" if the figure must reach the bound, "max" if it must stay under it)
TARGETS = {
    "get_ratio": (0.9, "min"),
    "set_ratio": (0.5, "min"),
    "failover_median_s": (2.5, "max"),
    "failover_max_s": (4.0, "max"),
    "catchup_s": (30.0, "max"),
    "rebuild_keys_per_s": (100_000, "min"),
}


def verdict(name: str, value):
    """'met', 'missed', or None when the figure is missing."""
    if value is None:
        return None
    bound, kind = TARGETS[name]
    return "met" if (value >= bound if kind == "min" else value <= bound) else "missed"


def ratio(a, b):
    return a / b if a is not None and b else None


def rps(report):
    return (report or {}).get("requests_per_s")


def gather(work: str) -> dict:
    def load(name):
        path = os.path.join(work, name)
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    parts = {}
    if os.path.exists(os.path.join(work, "parts.tsv")):
        with open(os.path.join(work, "parts.tsv"), encoding="utf-8") as f:
            for line in f:
                name, state, secs = line.rstrip("\n").split("\t")
                parts[name] = {"state": state, "seconds": int(secs)}
    throughput = [load(f"{p}.json") for p in parts if p.startswith("throughput-")]
    return {"parts": parts, "throughput": [t for t in throughput if t],
            "failover": load("failover.json"), "catchup": load("catchup.json"),
            "rebuild": load("rebuild.json")}


def figures(result: dict) -> list:
    """(label, figure, target name or None) for every figure the result holds."""
    rows = []
    for t in result.get("throughput", []):
        d, one, rep = t["durability"], t["factor1"], t["replicated"]
        for op in ("get", "set"):
            a, b = rps(rep[op]), rps(one[op])
            rows.append((f"{op.upper()} `--sync {d}` factor {t['factor']} / factor 1 req/s "
                         f"({a:.0f} / {b:.0f}; p99 {rep[op]['p99_ms']:.2f} / {one[op]['p99_ms']:.2f} ms)",
                         ratio(a, b), f"{op}_ratio"))
    f = result.get("failover")
    if f:
        s = f["summary"]
        rows.append((f"failover median of {s['n']} leader kills, s", s["median"], "failover_median_s"))
        rows.append((f"failover max of {s['n']} leader kills, s", s["max"], "failover_max_s"))
    c = result.get("catchup")
    if c:
        rows.append((f"catch-up of {c['follower']} after {c['missed_entries']} missed entries, s",
                     c["catchup_s"], "catchup_s"))
    r = result.get("rebuild")
    if r:
        rows.append((f"rebuild of {r['copy']} ({r['keys']} keys, {r['running_to_in_sync_s']} s), keys/s",
                     r["keys_per_s"], "rebuild_keys_per_s"))
    return rows


def line(label: str, value, target) -> str:
    if value is None:
        return f"{label}: —"
    shown = f"{value:.2f}×" if target and target.endswith("ratio") else f"{value:g}"
    if not target:
        return f"{label}: {shown}"
    bound, kind = TARGETS[target]
    return f"{label}: {shown} (target {'≥' if kind == 'min' else '≤'} {bound:g}: {verdict(target, value)})"


def main() -> None:
    work, out = sys.argv[1], sys.argv[2]
    result = gather(work)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    for label, value, target in figures(result):
        print(line(label, value, target))
    for name, p in result["parts"].items():
        if p["state"] != "ok":
            print(f"part {name}: {p['state']}")


if __name__ == "__main__":
    main()
