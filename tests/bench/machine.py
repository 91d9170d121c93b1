"""The machine and the moment, for BENCHMARKS.md: cores, CPU model, memory, kernel, load
average, UTC time, git commit. Usage: machine.py PHASE   Prints one JSON object."""
import json
import os
import platform
import subprocess
import sys
import time


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()


def main() -> None:
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), "?")
    print(json.dumps({
        "phase": sys.argv[1], "utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "epoch_s": time.time(), "loadavg": open("/proc/loadavg").read().split()[:3],
        "cores": os.cpu_count(), "cpu_model": model, "mem_kib": mem, "kernel": platform.release(),
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }))


if __name__ == "__main__":
    main()
