#!/usr/bin/env python3
"""Write strict JSON schemas for kubeconform, offline.

kubeconform normally downloads its schemas; here nothing can be downloaded, so we make them
the way openapi2jsonschema does, from files we already have:
  * Kubernetes built-in kinds: the OpenAPI v2 document (api/openapi-spec/swagger.json) of the
    k8s.io/kubernetes Go module, read straight from its module zip or directory;
  * custom resources: the openAPIV3Schema of each served version of each CRD file.

Output layout is kubeconform's default one, `{kind}{-group}-{version}.json` (lower case, first
label of the group only; core kinds are `{kind}-v1.json`), so the directory works with
`-schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'`.

"Strict" means what kubeconform's `-strict` schemas mean: every object that lists its
properties rejects unknown ones (additionalProperties: false), unless the API says the
field keeps unknown fields. Optional fields also accept null, as the API server does.

Usage:
  schemas.py --out DIR [--k8s-openapi ZIP_OR_DIR] [--crd FILE]...
"""

import argparse
import copy
import json
import os
import sys
import zipfile

import yaml

SWAGGER_IN_MODULE = "api/openapi-spec/swagger.json"


def load_swagger(source: str) -> dict:
    """swagger.json from a k8s.io/kubernetes module zip, module directory or the file itself."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            names = [n for n in z.namelist() if n.endswith("/" + SWAGGER_IN_MODULE)]
            if len(names) != 1:
                sys.exit(f"schemas.py: no single {SWAGGER_IN_MODULE} in {source}")
            return json.loads(z.read(names[0]))
    if os.path.isdir(source):
        source = os.path.join(source, SWAGGER_IN_MODULE)
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def nullable(schema: dict) -> dict:
    """Let an optional field be null (`annotations:` with nothing after it is null in YAML)."""
    t = schema.get("type")
    if isinstance(t, str):
        schema["type"] = [t, "null"]
    elif "oneOf" in schema and {"type": "null"} not in schema["oneOf"]:
        schema["oneOf"] = schema["oneOf"] + [{"type": "null"}]
    # A $ref needs nothing: every definition accepts null itself (see k8s_schemas).
    return schema


def strictify(schema, required=None):
    """Walk one schema: int-or-string, additionalProperties: false, nullable optional fields."""
    if isinstance(schema, list):
        return [strictify(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = dict(schema)
    # OpenAPI v2 spells IntOrString as a format; CRDs as an extension.
    if s.get("format") == "int-or-string" or s.pop("x-kubernetes-int-or-string", False):
        for k in ("type", "format"):
            s.pop(k, None)
        s["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if s.pop("nullable", False) and isinstance(s.get("type"), str):
        s["type"] = [s["type"], "null"]
    preserve = s.pop("x-kubernetes-preserve-unknown-fields", False)
    if s.pop("x-kubernetes-embedded-resource", False):
        props = s.setdefault("properties", {})
        for k in ("apiVersion", "kind"):
            props.setdefault(k, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if "properties" in s:
        req = set(s.get("required", []))
        s["properties"] = {
            k: strictify_field(v, k in req) for k, v in s["properties"].items()
        }
        if "additionalProperties" not in s and not preserve:
            s["additionalProperties"] = False
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strictify(s["additionalProperties"])
    if "items" in s:
        s["items"] = strictify(s["items"])
    for k in ("allOf", "anyOf", "oneOf"):
        if k in s:
            s[k] = strictify(s[k])
    # Annotations that JSON Schema validators do not know about.
    for k in list(s):
        if k.startswith("x-kubernetes-") or k in ("x-go-name",):
            del s[k]
    return s


def strictify_field(schema, is_required):
    s = strictify(schema)
    return s if is_required else nullable(s)


def gvk_filename(kind: str, group: str, version: str) -> str:
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind}{suffix}.json".lower()


def k8s_schemas(swagger: dict) -> dict:
    """{filename: schema} for every kind of the Kubernetes API."""
    defs = swagger["definitions"]
    # Quantity is a string in v2, but `cpu: 1` in YAML is a number and the API accepts it.
    quantity = "io.k8s.apimachinery.pkg.api.resource.Quantity"
    if quantity in defs:
        defs[quantity] = {"oneOf": [{"type": "string"}, {"type": "number"}],
                          "description": defs[quantity].get("description", "")}
    strict_defs = {name: nullable(strictify(d)) for name, d in defs.items()}
    out = {}
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            if "properties" not in d or "kind" not in d["properties"]:
                continue
            schema = copy.deepcopy(strict_defs[name])
            schema["type"] = "object"  # a whole document is never null
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            schema["properties"]["kind"] = {"type": "string", "enum": [gvk["kind"]]}
            schema["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["definitions"] = reachable(strict_defs, schema)
            out[gvk_filename(gvk["kind"], gvk["group"], gvk["version"])] = schema
    return out


def reachable(defs: dict, root: dict) -> dict:
    """Only the definitions a kind refers to, so each file stands alone and stays small."""
    seen, todo = {}, [root]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/"):
                name = ref[len("#/definitions/"):]
                if name not in seen:
                    seen[name] = defs[name]
                    todo.append(defs[name])
            todo.extend(v for k, v in node.items() if k != "definitions")
        elif isinstance(node, list):
            todo.extend(node)
    return seen


def crd_schemas(path: str) -> dict:
    out = {}
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for crd in docs:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for v in spec["versions"]:
            if not v.get("served", True):
                continue
            root = (v.get("schema") or {}).get("openAPIV3Schema")
            if root is None:
                sys.exit(f"schemas.py: {path}: version {v['name']} has no openAPIV3Schema")
            root = copy.deepcopy(root)
            props = root.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [f"{spec['group']}/{v['name']}"]}
            props["kind"] = {"type": "string", "enum": [spec["names"]["kind"]]}
            # The API server validates metadata itself; kubeconform checks its shape loosely.
            props.setdefault("metadata", {"type": "object"})
            schema = strictify(root)
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            out[gvk_filename(spec["names"]["kind"], spec["group"], v["name"])] = schema
    if not out:
        sys.exit(f"schemas.py: {path}: no CustomResourceDefinition with a served version")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory to write the schemas into")
    p.add_argument("--k8s-openapi", help="k8s.io/kubernetes module zip or directory, or swagger.json")
    p.add_argument("--crd", action="append", default=[], help="CRD YAML file (repeatable)")
    args = p.parse_args()

    schemas = {}
    if args.k8s_openapi:
        schemas.update(k8s_schemas(load_swagger(args.k8s_openapi)))
    for crd in args.crd:
        schemas.update(crd_schemas(crd))
    os.makedirs(args.out, exist_ok=True)
    for name, schema in sorted(schemas.items()):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            json.dump(schema, f, indent=None, sort_keys=True)
    print(f"schemas.py: wrote {len(schemas)} schemas to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
