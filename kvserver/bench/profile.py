"""Sorts a flat `perf report` of kvserver into where the time goes, for BENCHMARKS.md.

Reads `perf report --no-children --sort dso,sym -g none --stdio` on stdin and prints one JSON
object: the share of samples per layer (kernel, allocator, hyper, tokio, axum/tower/http, the
storage engine, the read cache, metrics, our code, ...) and the top frames. A frame counts for
the crate named first in its symbol, so a generic of another crate instantiated with ours (an
axum handler wrapping our handler, say) counts for that crate: our code is a lower bound.

Usage: perf report ... | profile.py LABEL
"""
import json
import re
import sys

# (substring of a symbol, layer); the one found earliest in the symbol wins.
CRATES = [
    ("hyper_util::", "hyper"), ("hyper::", "hyper"), ("httparse::", "hyper"),
    ("tokio_io_timeout::", "tokio"), ("tokio_util::", "tokio"), ("tokio::", "tokio"), ("mio::", "tokio"),
    ("axum_core::", "axum/tower/http"), ("axum::", "axum/tower/http"), ("tower::", "axum/tower/http"),
    ("tower_service::", "axum/tower/http"), ("http::", "axum/tower/http"), ("matchit::", "axum/tower/http"),
    ("http_body", "axum/tower/http"), ("futures_util::", "axum/tower/http"),
    ("fjall::", "storage engine (fjall, lsm-tree)"), ("lsm_tree::", "storage engine (fjall, lsm-tree)"),
    ("crossbeam_skiplist::", "storage engine (fjall, lsm-tree)"), ("xxhash_rust::", "storage engine (fjall, lsm-tree)"),
    ("quick_cache::", "read cache (quick_cache)"),
    ("prometheus_client::", "metrics (prometheus-client)"),
    ("kvserver::", "our code (kvserver, kvproto)"), ("kvproto::", "our code (kvserver, kvproto)"),
    ("percent_encoding::", "our code (kvserver, kvproto)"),
    ("tracing", "tracing"),
    ("hashbrown::", "std (collections, strings, fmt)"), ("alloc::", "std (collections, strings, fmt)"),
    ("core::", "std (collections, strings, fmt)"), ("std::", "std (collections, strings, fmt)"),
    ("bytes::", "std (collections, strings, fmt)"),
]
ALLOC = re.compile(r"^(mi_|_mi_|__rust_alloc|__rust_dealloc|__rust_realloc|__rustc::__rust_|malloc|_int_malloc|"
                   r"_int_free|cfree|free|realloc|malloc_consolidate|tcache|calloc|__libc_malloc|__libc_free)")


def layer(dso: str, sym: str) -> str:
    if dso.startswith("[kernel"):
        return "kernel (syscalls, TCP over loopback, scheduler)"
    if ALLOC.match(sym):
        return "allocator"
    if dso.startswith("libc") or dso.startswith("ld-") or dso == "[vdso]":
        return "libc (memcpy, syscall stubs, clock)"
    found = [(sym.find(pat), name) for pat, name in CRATES if pat in sym]
    if found:
        return min(found)[1]
    return "other"


def main() -> None:
    rows = []
    for line in sys.stdin:
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(4).strip()))
    layers: dict = {}
    for pct, dso, sym in rows:
        k = layer(dso, sym)
        layers[k] = layers.get(k, 0.0) + pct
    top = [{"pct": p, "dso": d, "sym": s[:160], "layer": layer(d, s)} for p, d, s in rows[:15]]
    print(json.dumps({"label": sys.argv[1],
                      "layers": dict(sorted(layers.items(), key=lambda kv: -kv[1])),
                      "top": top}))


if __name__ == "__main__":
    main()
