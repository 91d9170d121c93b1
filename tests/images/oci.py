#!/usr/bin/env python3
"""Write an OCI image archive by hand: no daemon, no base image, no pulls.

The image has one layer made from a root filesystem directory. The layer tar is
reproducible (sorted entries, mtime 0, owner root unless --owner says otherwise)
and gzip-compressed without a timestamp, so the same inputs give the same digests.

The output is a tar of an OCI image layout (oci-layout, index.json, blobs/sha256/...),
which `ctr images import` understands; the index entry carries both
`io.containerd.image.name` (the full reference) and `org.opencontainers.image.ref.name`.
With --layout-dir the unpacked layout is also kept (for skopeo/crane/oras to push).

Usage:
  oci.py --rootfs DIR --ref docker.io/kvstore/kvserver:dev --entrypoint /bin/kvserver \
         [--cmd ARG]... [--user 65532:65532] [--env K=V]... [--workdir /] \
         [--title T] [--source URL] [--version V] [--label K=V]... --output image.tar
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(rootfs: str, owners: dict) -> bytes:
    """Deterministic uncompressed tar of rootfs (paths relative, no leading ./)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                entries.append(os.path.join(dirpath, name))
        for path in sorted(entries, key=lambda p: os.path.relpath(p, rootfs)):
            rel = os.path.relpath(path, rootfs)
            info = tar.gettarinfo(path, arcname=rel)
            info.mtime = EPOCH
            uid = gid = 0
            for prefix, (ouid, ogid) in owners.items():
                if rel == prefix or rel.startswith(prefix + "/"):
                    uid, gid = ouid, ogid
            info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as f:
        f.write(data)
    return out.getvalue()


def kv_list(items):
    out = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep:
            sys.exit(f"oci.py: expected KEY=VALUE, got {item!r}")
        out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--ref", required=True, help="full reference, e.g. docker.io/kvstore/kvserver:dev")
    ap.add_argument("--entrypoint", action="append", required=True, help="repeat for each argv element")
    ap.add_argument("--cmd", action="append", default=None)
    ap.add_argument("--user", default="65532:65532")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir", default="/")
    ap.add_argument("--owner", action="append", default=[], help="PATH=UID:GID owner for a path inside rootfs")
    ap.add_argument("--title")
    ap.add_argument("--source", default="https://github.com/kvstore-operator/kvstore-operator")
    ap.add_argument("--version", default="dev")
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--output", required=True, help="OCI archive (tar) to write")
    ap.add_argument("--layout-dir", help="also write the unpacked OCI layout here")
    a = ap.parse_args()

    if ":" in a.ref.rsplit("/", 1)[-1]:
        tag = a.ref.rsplit(":", 1)[1]
    else:
        sys.exit("oci.py: --ref needs a tag")
    owners = {}
    for o in a.owner:
        p, _, ug = o.partition("=")
        u, _, g = ug.partition(":")
        owners[p.strip("/")] = (int(u), int(g or u))

    raw = layer_tar(a.rootfs, owners)
    layer = gz(raw)
    labels = {
        "org.opencontainers.image.title": a.title or a.ref.rsplit("/", 1)[-1].split(":")[0],
        "org.opencontainers.image.source": a.source,
        "org.opencontainers.image.version": a.version,
    }
    labels.update(kv_list(a.label))
    env = ["PATH=/usr/local/bin:/usr/bin:/bin"] + a.env
    config = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": a.user,
            "Env": env,
            "Entrypoint": a.entrypoint,
            "WorkingDir": a.workdir,
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
        "history": [{"created": CREATED, "created_by": "tests/images/oci.py", "comment": a.ref}],
    }
    if a.cmd:
        config["config"]["Cmd"] = a.cmd
    config_b = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config_b), "size": len(config_b)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer), "size": len(layer)}],
        "annotations": labels,
    }
    manifest_b = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": manifest["mediaType"],
            "digest": sha256(manifest_b),
            "size": len(manifest_b),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": a.ref, "org.opencontainers.image.ref.name": tag},
        }],
    }
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, sort_keys=True, indent=1).encode(),
    }
    for blob in (config_b, manifest_b, layer):
        files["blobs/sha256/" + sha256(blob).split(":", 1)[1]] = blob

    tmp = a.output + ".part"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(ti)
        for name in sorted(files):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(files[name]), 0o644, EPOCH
            tar.addfile(ti, io.BytesIO(files[name]))
    os.replace(tmp, a.output)
    if a.layout_dir:
        for name, data in files.items():
            p = os.path.join(a.layout_dir, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
    print(f"{a.ref} {sha256(manifest_b)} layer={len(layer)}B archive={os.path.getsize(a.output)}B", file=sys.stderr)


if __name__ == "__main__":
    main()
