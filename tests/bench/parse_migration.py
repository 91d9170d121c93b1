"""Turns what the migration bench printed into JSON for tests/bench/render.py.

The bench client (operator/examples/migrate_bench.rs) prints a markdown table; its rows are
read back as printed (by column name, not position) so that a change to the engine or to the
table's wording does not silently change the figures. The book script's row (Python urllib)
comes from tests/bench/migration.sh as arguments.

Usage: parse_migration.py BENCH_OUTPUT FROM TO KEYS PROFILE SHARDING BOOK_COPIED BOOK_SECONDS
"""
import json
import re
import sys


def number(text: str):
    """The first number in a cell ("0.123 s", "12 345", "4×"), or None."""
    m = re.search(r"[-+]?\d[\d_]*(?:\.\d+)?", text.replace(",", ""))
    return float(m.group(0).replace("_", "")) if m else None


def table_rows(lines):
    header = None
    for line in lines:
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(set(c) <= set("-: ") for c in cells) or "method" not in header:
            continue
        yield dict(zip(header, cells))


def kind(method: str) -> str:
    m = method.lower()
    if "engine" in m:
        return "engine"
    if "per request" in m or "per key" in m:
        return "per-key"
    return "other"


def main() -> None:
    out, frm, to, keys, profile, sharding, book_copied, book_secs = sys.argv[1:9]
    lines = open(out, encoding="utf-8").read().splitlines()
    rows = []
    for row in table_rows(lines):
        method = row.get("method", "")
        rows.append({
            "kind": kind(method),
            "method": method,
            "keys": number(row.get("keys copied", "")),
            "seconds": number(row.get("time", "")),
            "keys_per_s": number(row.get("keys/s", "")),
        })
    whole = next((number(l.split(":")[-1]) for l in lines if l.startswith("Whole rebalance")), None)
    moving = next((l.strip() for l in lines if l.startswith("Migration ")), "")
    result = {
        "from": int(frm), "to": int(to), "keys": int(keys), "profile": profile,
        "sharding": sharding, "summary": moving, "whole_rebalance_s": whole, "rows": rows,
    }
    if book_copied and book_secs:
        c, s = float(book_copied), float(book_secs)
        result["rows"].append({
            "kind": "book-python",
            "method": "the book's rebalance script (Python urllib, one request per key, new connection each)",
            "keys": c, "seconds": s, "keys_per_s": c / s if s > 0 else None,
        })
    if not any(r["kind"] == "engine" for r in result["rows"]):
        sys.exit(f"no copy engine row in {out}: the bench's output changed?")
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
