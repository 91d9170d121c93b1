#!/usr/bin/env python3
"""The Kubernetes API calls the operator's code makes, as RBAC (group, resource, verb) triples.

Derived from operator/src by reading it, so the chart's RBAC can be compared with the code
(render_test.py grants exactly these): a new call, verb or kind in the code and the comparison
fails until the chart grants it; a grant the code no longer needs fails it too.

What is read, per function of every file (unit-test modules and comments left out):
  * bindings of a kube `Api`: `name: Api<T>` / `name: &Api<T>` (lets and parameters);
  * every method called on such a binding, e.g. `claims.delete(...)`, mapped to its verb by
    API_METHODS (an unknown method is an error, not a silent skip). A server-side apply
    (`.patch(.., &Patch::Apply(..))`) is authorized as create as well when the object does not
    exist yet, so it needs both;
  * `Api<K>` with K a generic parameter of the function: the kinds are the builders' return
    types at the function's call sites (`apply_child(ctx, ns, &build::service(inst))`);
  * kube-runtime and crate wiring: `Controller::new(api, ..)` and `.owns(scoped::<T>(..), ..)`
    (list + watch), `finalizer(&api, ..)` (JSON patch), `Recorder::new` (events),
    `LeaseManagerBuilder::new` (the Lease), `controller_owner_ref` (blockOwnerDeletion).

Usage: api_calls.py [OPERATOR_SRC]   prints one `group resource verb  # where` per line
"""

import re
import sys
from pathlib import Path

# Rust type -> (API group, resource). A kind the code starts to use must be added here.
KINDS = {
    "KVStore": ("kvstore.dev", "kvstores"),
    "StatefulSet": ("apps", "statefulsets"),
    "Service": ("", "services"),
    "Secret": ("", "secrets"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Pod": ("", "pods"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "ConfigMap": ("", "configmaps"),
    "Lease": ("coordination.k8s.io", "leases"),
    "Event": ("events.k8s.io", "events"),
    "Node": ("", "nodes"),
    "PersistentVolume": ("", "persistentvolumes"),
}

# Cluster-scoped kinds: a namespaced install (a Role) cannot grant them, so the chart grants
# them in a ClusterRole of their own.
CLUSTER_SCOPED = {("", "nodes"), ("", "persistentvolumes")}

# kube::Api method -> (subresource, verbs).
API_METHODS = {
    "get": ("", ["get"]),
    "get_opt": ("", ["get"]),
    "get_metadata": ("", ["get"]),
    "get_metadata_opt": ("", ["get"]),
    "list": ("", ["list"]),
    "list_metadata": ("", ["list"]),
    "watch": ("", ["watch"]),
    "watch_metadata": ("", ["watch"]),
    "create": ("", ["create"]),
    "patch": ("", ["patch"]),
    "patch_metadata": ("", ["patch"]),
    "replace": ("", ["update"]),
    "delete": ("", ["delete"]),
    "delete_collection": ("", ["deletecollection"]),
    "get_status": ("status", ["get"]),
    "patch_status": ("status", ["patch"]),
    "replace_status": ("status", ["update"]),
    "get_scale": ("scale", ["get"]),
    "patch_scale": ("scale", ["patch"]),
    "replace_scale": ("scale", ["update"]),
}
# Methods of Api that make no request.
NO_REQUEST = {"clone", "resource_url", "into_client", "namespace"}

# Calls into libraries that reach the API server themselves, with the verbs their source uses.
LIBRARY_CALLS = [
    # kube-runtime's events::Recorder::publish creates an Event, or patches it when it repeats.
    (re.compile(r"\bRecorder::new\s*\("), ("events.k8s.io", "events", ["create", "patch"])),
    # kube-lease-manager 0.13 (state.rs): get the Lease, create it when missing, patch to renew.
    (re.compile(r"\bLeaseManagerBuilder::new\s*\("),
     ("coordination.k8s.io", "leases", ["get", "create", "patch"])),
]

FN_RE = re.compile(r"\bfn\s+(\w+)\s*(<[^>{}]*>)?\s*\(")
BINDING_RE = re.compile(r"\b(\w+)\s*:\s*&?\s*(?:\w+::)*Api\s*<\s*(\w+)\s*>")
# `let api = Api::<T>::namespaced(..)`: the kind from the turbofish.
TURBOFISH_BINDING_RE = re.compile(r"\blet\s+(?:mut\s+)?(\w+)\s*=\s*(?:\w+::)*Api::<\s*(\w+)\s*>::")
# An Api made without a type the script can read: `let api = Api::all(..)`, or used at once.
UNTYPED_RE = re.compile(r"\blet\s+(?:mut\s+)?\w+\s*=\s*(?:\w+::)*Api::(?!<)")
CHAINED_RE = re.compile(r"(?:\w+::)*Api::(?:<\s*(\w+)\s*>::)?(?:namespaced|all|default_namespaced)\w*\s*\(")
RAW_REQUEST_RE = re.compile(r"\bclient\s*\.\s*request(?:_\w+)?\s*(?:::<[^>]*>)?\s*\(")
ANY_BINDING_RE = r"\b{var}\s*:\s*&?\s*(?:Arc<)?\s*(\w+)"


class Unreadable(Exception):
    """The code does something this script cannot map to RBAC: extend the script."""


def strip(text: str) -> str:
    """Source without comments and `#[cfg(test)] mod` blocks (unit tests call nothing live)."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        i = matching(text, m.end() - 1) + 1
    out.append(text[i:])
    return "".join(out)


def matching(text: str, open_at: int) -> int:
    """Index of the bracket closing the one at `open_at`."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    close = pairs[text[open_at]]
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == text[open_at]:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j
    raise Unreadable(f"unbalanced {text[open_at]!r}")


def functions(text: str):
    """(name, generic params, signature + body) of every fn with a body."""
    for m in FN_RE.finditer(text):
        params_end = matching(text, m.end() - 1)
        brace = text.find("{", params_end)
        semi = text.find(";", params_end)
        if brace < 0 or (0 <= semi < brace):
            continue  # a declaration without a body (trait method)
        generics = set(re.findall(r"\b([A-Z]\w*)\b", m.group(2) or ""))
        yield m.group(1), generics, text[m.start():matching(text, brace) + 1]


def line_of(text: str, needle: str) -> int:
    return text[: text.find(needle)].count("\n") + 1 if needle in text else 0


def kind(type_name: str, where: str):
    if type_name not in KINDS:
        raise Unreadable(f"{where}: Api<{type_name}>: unknown kind, add it to KINDS")
    return KINDS[type_name]


def builder_types(src: Path) -> dict:
    """`build::NAME` -> the type it returns, from the builders' `pub fn NAME(..) -> Type`."""
    out = {}
    for f in (src / "build").rglob("*.rs"):
        text = strip(f.read_text(encoding="utf-8"))
        for name, _, body in functions(text):
            m = re.match(r"[^{]*?\)\s*->\s*(\w+)", body, re.S)
            if m:
                out[name] = m.group(1)
    return out


def call_args(text: str, fn_name: str):
    """The argument text of every call `fn_name(...)` in `text` (not its definition)."""
    for m in re.finditer(rf"(?<![\w:])(?<!fn ){fn_name}\s*\(", text):
        yield text[m.end(): matching(text, m.end() - 1)]


def generic_kinds(text: str, fn_name: str, builders: dict, where: str) -> set:
    """Kinds that reach the generic `fn_name` at its call sites in this file."""
    found = set()
    for caller, _, body in functions(text):
        if caller == fn_name:
            continue
        for args in call_args(body, fn_name):
            names = re.findall(r"build::(\w+)\s*\(", args)
            for var in re.findall(r"&\s*(\w+)\s*(?:[,)]|$)", args):
                m = re.search(rf"\blet\s+{var}\s*=\s*build::(\w+)\s*\(", body)
                if m:
                    names.append(m.group(1))
            if not names:
                raise Unreadable(f"{where}: cannot tell which kind reaches {fn_name}({args.strip()})")
            for n in names:
                if n not in builders:
                    raise Unreadable(f"{where}: build::{n} has no `-> Type` in operator/src/build")
                found.add(builders[n])
    if not found:
        raise Unreadable(f"{where}: generic {fn_name} is never called in its file")
    return found


def calls_in(path: Path, rel: str, builders: dict):
    """(group, resource, verb, where) for every API call of one file."""
    text = strip(path.read_text(encoding="utf-8"))
    out = []

    def add(types, sub, verbs, where):
        for t in types:
            group, resource = kind(t, where)
            for v in verbs:
                out.append((group, f"{resource}/{sub}" if sub else resource, v, where))

    for fn_name, generics, body in functions(text):
        bindings = {}
        for var, t in BINDING_RE.findall(body) + TURBOFISH_BINDING_RE.findall(body):
            bindings.setdefault(var, set()).add(t)
        if UNTYPED_RE.search(body):
            raise Unreadable(f"{rel} {fn_name}: an Api without a type (write `let api: Api<T> = ..`)")
        if RAW_REQUEST_RE.search(body):
            raise Unreadable(f"{rel} {fn_name}: a raw client request: map it to RBAC here")
        for m in CHAINED_RE.finditer(body):
            after = body[matching(body, m.end() - 1) + 1:]
            if re.match(r"\s*\.\s*(\w+)", after) and not re.match(r"\s*\.\s*await\b", after):
                raise Unreadable(f"{rel} {fn_name}: an Api used without a binding: bind it as `name: Api<T>`")

        def types_of(var, where):
            types = set()
            for t in bindings.get(var, set()):
                types |= generic_kinds(text, fn_name, builders, where) if t in generics else {t}
            return types

        for var in bindings:
            for m in re.finditer(rf"\b{var}\s*\.\s*(\w+)\s*(?:::<[^>]*>)?\s*\(", body):
                method = m.group(1)
                where = f"{rel}:{line_of(text, body) + body[: m.start()].count(chr(10))} {fn_name}"
                if method in NO_REQUEST:
                    continue
                if method not in API_METHODS:
                    raise Unreadable(f"{where}: {var}.{method}(): unknown Api method, add it to API_METHODS")
                sub, verbs = API_METHODS[method]
                args = body[m.end(): matching(body, m.end() - 1)]
                if method == "patch" and "Patch::Apply" in args:
                    verbs = verbs + ["create"]  # an apply that creates is authorized as create
                add(types_of(var, where), sub, verbs, where)
        # Watches of the Controller: the primary kind and every owned/watched kind.
        for m in re.finditer(r"\bController::new\s*\(\s*(\w+)", body):
            where = f"{rel} {fn_name}: Controller::new"
            add(types_of(m.group(1), where), "", ["list", "watch"], where)
        for m in re.finditer(r"\.\s*(?:owns|watches)\s*\(\s*(?:\w+::)*\w+::<\s*(\w+)\s*>", body):
            where = f"{rel} {fn_name}: .owns/.watches"
            add({m.group(1)}, "", ["list", "watch"], where)
        for m in re.finditer(r"\.\s*(?:owns|watches)\s*\(\s*(\w+)\s*,", body):
            where = f"{rel} {fn_name}: .owns/.watches"
            add(types_of(m.group(1), where), "", ["list", "watch"], where)
        # kube-runtime's finalizer adds and removes its entry by JSON patch.
        for m in re.finditer(r"\bfinalizer\s*\(\s*&?\s*(\w+)\s*,", body):
            where = f"{rel} {fn_name}: finalizer"
            add(types_of(m.group(1), where), "", ["patch"], where)
        # A controller owner reference sets blockOwnerDeletion, which the API server allows only
        # to a writer that may update the owner's finalizers.
        for m in re.finditer(r"\b(\w+)\s*\.\s*controller_owner_ref\s*\(", body):
            where = f"{rel} {fn_name}: controller_owner_ref"
            t = re.search(ANY_BINDING_RE.format(var=m.group(1)), body)
            if not t:
                raise Unreadable(f"{where}: cannot tell the type of {m.group(1)}")
            add({t.group(1)}, "finalizers", ["update"], where)
        for pattern, (group, resource, verbs) in LIBRARY_CALLS:
            if pattern.search(body):
                for v in verbs:
                    out.append((group, resource, v, f"{rel} {fn_name}: {pattern.pattern}"))
    return out


def api_calls(src: Path):
    """Every (group, resource, verb, where) of the operator's code under `src`."""
    builders = builder_types(src)
    calls = []
    for f in sorted(src.rglob("*.rs")):
        if f.name == "fixtures.rs":
            continue  # test objects, compiled for unit tests only
        calls += calls_in(f, str(f.relative_to(src)), builders)
    return calls


def required(src: Path) -> set:
    """The (group, resource, verb) triples the operator needs."""
    return {(g, r, v) for g, r, v, _ in api_calls(src)}


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "operator/src"
    try:
        calls = api_calls(src)
    except Unreadable as e:
        sys.exit(f"api_calls.py: {e}")
    seen = {}
    for g, r, v, where in calls:
        seen.setdefault((g, r, v), where)
    for (g, r, v), where in sorted(seen.items()):
        print(f"{g or 'core'} {r} {v}  # {where}")


if __name__ == "__main__":
    main()
