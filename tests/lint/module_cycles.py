#!/usr/bin/env python3
"""Fails when a module of a crate uses a module that uses it back (directly or through others).

Each source file is one module (`a.rs` or `a/mod.rs` is `a`, `a/b.rs` is `a::b`). An edge runs from
a file to every module it names through `crate::...`, `super::...` or `self::...` paths (in `use`
items and inline paths alike), resolved to the deepest module file that exists. The crate root
(lib.rs, main.rs) is left out: it only declares and re-exports. Any strongly connected set of more
than one module is a circle, printed with the lines that close it. Test modules inside a file and
files under tests/, examples/ and benches/ are not library modules and are skipped.

usage: module_cycles.py CRATE_DIR...      exit 0 = no circle, 1 = circles found, 2 = usage error
"""
import re
import sys
from pathlib import Path

PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
# A path that starts at a child module's name (`use child::X`, `child::f()`), as 2018 paths may.
CHILD_PATH_RE = re.compile(r"(?<![A-Za-z0-9_:])([a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super|self)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{([^;]*)\};", re.S)


def module_of(src: Path, file: Path) -> tuple[str, ...]:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    return tuple(parts)


def strip_tests_and_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    # Drop `#[cfg(test)] mod NAME { ... }` blocks: unit tests may use anything.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def resolve(modules: set, base: tuple, segments: list) -> tuple | None:
    """Deepest existing module named by base + segments (the rest are items)."""
    best = None
    for n in range(len(segments) + 1):
        cand = base + tuple(segments[:n])
        if cand in modules:
            best = cand
    return best


def edges_of(modules: set, me: tuple, text: str) -> dict:
    """Module -> first line that names it, for every module `me` names (itself excluded)."""
    # `self::` is the module itself; `super::` of a/b.rs and of a/b/mod.rs alike is `a`.
    bases = {"crate": (), "self": me, "super": me[:-1]}
    found = {}
    for m in USE_GROUP_RE.finditer(text):
        prefix = [s for s in m.group(2).split("::") if s]
        for item in re.split(r"[,{}\s]+", m.group(3)):
            segs = [s for s in item.split("::") if s and s not in ("self", "*")]
            target = resolve(modules, bases[m.group(1)], prefix + segs)
            if target is not None:
                found.setdefault(target, text[: m.start()].count("\n") + 1)
    for m in PATH_RE.finditer(text):
        segs = [s for s in m.group(2).split("::") if s and s != "{"]
        target = resolve(modules, bases[m.group(1)], segs)
        if target is not None:
            found.setdefault(target, text[: m.start()].count("\n") + 1)
    for m in CHILD_PATH_RE.finditer(text):
        if me + (m.group(1),) not in modules:
            continue
        segs = [m.group(1)] + [s for s in m.group(2).split("::") if s]
        target = resolve(modules, me, segs)
        if target is not None:
            found.setdefault(target, text[: m.start()].count("\n") + 1)
    found.pop(me, None)
    found.pop((), None)
    return found


def sccs(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def check(crate: Path) -> list[str]:
    src = crate / "src"
    # The crate roots and src/bin/ binaries are not modules of the library.
    files = [f for f in sorted(src.rglob("*.rs"))
             if not (f.parent == src and f.stem in ("lib", "main")) and src / "bin" not in f.parents]
    mods = {module_of(src, f): f for f in files}
    modules = set(mods)
    graph, where = {}, {}
    for me, f in mods.items():
        text = strip_tests_and_comments(f.read_text())
        edges = edges_of(modules, me, text)
        graph[me] = set(edges)
        for t, line in edges.items():
            where[(me, t)] = f"{f.relative_to(crate.parent)}:{line}"
    problems = []
    for comp in sccs(graph):
        if len(comp) < 2:
            continue
        names = sorted("::".join(c) for c in comp)
        lines = [where[(a, b)] + f" ({'::'.join(a)} -> {'::'.join(b)})"
                 for a in comp for b in graph[a] if b in comp]
        problems.append(f"{crate.name}: circle among {', '.join(names)}\n    " + "\n    ".join(sorted(lines)))
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    problems, crates = [], 0
    for arg in argv[1:]:
        crate = Path(arg).resolve()
        if not (crate / "src").is_dir():
            print(f"module_cycles: {arg} has no src/ folder", file=sys.stderr)
            return 2
        crates += 1
        problems += check(crate)
    for p in problems:
        print(p)
    print(f"module layering: {crates} crates checked, {len(problems)} circles")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
