"""Footprint figures for tests/bench/render.py, read from this machine (the cluster's node).

- Resident memory of pods' processes: the pod's UID appears in the cgroup path of each of its
  processes (/proc/PID/cgroup, `.../pod<uid>/<container>`); the sandbox's `pause` process is
  skipped. VmRSS and VmHWM come from /proc/PID/status; the container cgroup's memory usage
  (cgroup v2 memory.current, or v1 memory.usage_in_bytes, which counts page cache too) is given
  beside it.
- Image sizes from OCI archives: the archive file, the sum of its (gzip) layer blobs as the
  manifest lists them, and the layers' uncompressed size (gunzipped here).

Usage: footprint.py pods NAMESPACE SELECTOR      -> JSON list, one entry per process
       footprint.py image NAME TAR               -> JSON object
       footprint.py dir NAME PATH                -> JSON object (a rootfs directory: bytes on disk)
"""
import gzip
import json
import os
import subprocess
import sys
import tarfile


def kubectl_json(*args: str) -> dict:
    out = subprocess.run(["kubectl", *args, "-o", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def status_kib(pid: str, field: str):
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cgroup_memory(path: str):
    """Bytes charged to the container's cgroup, and which file said so."""
    for root, name in (("/sys/fs/cgroup", "memory.current"),
                       ("/sys/fs/cgroup/memory", "memory.usage_in_bytes")):
        try:
            with open(os.path.join(root + path, name), encoding="utf-8") as f:
                return int(f.read().strip()), name
        except (OSError, ValueError):
            continue
    return None, None


def pods(namespace: str, selector: str) -> list:
    found = []
    items = kubectl_json("-n", namespace, "get", "pods", "-l", selector)["items"]
    uids = {p["metadata"]["uid"]: p["metadata"]["name"] for p in items}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
                cgroup = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                comm = os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
        except OSError:
            continue
        for uid, name in uids.items():
            # cgroupfs driver: pod<uid>; systemd driver: pod<uid with underscores>.slice
            if f"pod{uid}" not in cgroup and f"pod{uid.replace('-', '_')}" not in cgroup:
                continue
            if comm == "pause":
                continue
            path = next((l.split(":", 2)[2] for l in cgroup.splitlines() if l.startswith("0::")), "")
            if not path or path == "/":
                path = next((l.split(":", 2)[2] for l in cgroup.splitlines() if ":memory:" in l), "")
            mem, source = cgroup_memory(path)
            found.append({"pod": name, "pid": int(pid), "comm": comm,
                          "vmrss_kib": status_kib(pid, "VmRSS"), "vmhwm_kib": status_kib(pid, "VmHWM"),
                          "cgroup_bytes": mem, "cgroup_file": source})
    if not found:
        sys.exit(f"no process found for pods {selector!r} in {namespace}")
    return found


def image(name: str, tar: str) -> dict:
    with tarfile.open(tar) as t:
        index = json.load(t.extractfile("index.json"))
        blob = lambda d: "blobs/" + d["digest"].replace(":", "/")
        manifest = json.load(t.extractfile(blob(index["manifests"][0])))
        compressed = sum(l["size"] for l in manifest["layers"])
        uncompressed = 0
        for layer in manifest["layers"]:
            f = t.extractfile(blob(layer))
            stream = gzip.GzipFile(fileobj=f) if "gzip" in layer["mediaType"] else f
            while chunk := stream.read(1 << 20):
                uncompressed += len(chunk)
    return {"name": name, "archive_bytes": os.path.getsize(tar), "layers_compressed_bytes": compressed,
            "layers_uncompressed_bytes": uncompressed, "layers": len(manifest["layers"])}


def directory(name: str, path: str) -> dict:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return {"name": name, "layers_uncompressed_bytes": total, "path": path}


def main() -> None:
    kind = sys.argv[1]
    if kind == "pods":
        print(json.dumps(pods(sys.argv[2], sys.argv[3])))
    elif kind == "image":
        print(json.dumps(image(sys.argv[2], sys.argv[3])))
    elif kind == "dir":
        print(json.dumps(directory(sys.argv[2], sys.argv[3])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
