"""A pod cut off from its peers, as tests/e2e/src/netcut.rs cuts one: two iptables rules inside
its network namespace drop every packet in and out, loopback excepted, until they are removed
by their exact spec (no chain is flushed). The namespace is held open by a file descriptor of
this process and entered through /proc/<us>/fd/<n>, so the rules can be removed even if the
container restarts meanwhile.

One difference from the e2e cut: traffic to and from the pod's gateway (the node's address on
the pod bridge) passes. The benchmark's cut lasts minutes (a million writes), and the kubelet's
probes come from that address: dropping them would have the liveness probe (3 x 10 s) restart
the follower, so the figure would time a restart, not a catch-up. Peers, clients and DNS are
reached through pod IPs and ClusterIPs, never through the gateway, so they stay cut.
"""
import os
import socket
import struct
import subprocess

from repl_lib import BenchError

IPTABLES = "/usr/sbin/iptables"
NSENTER = "/usr/bin/nsenter"
LOCK_WAIT = "5"


def gateway(route_table: str):
    """The node's side of a pod's link in a /proc/PID/net/route table (hex, little-endian): the
    default route's gateway, else (the local cluster's pods have no default route) the gateway
    of the first route that has one; None without any."""
    routes = [line.split() for line in route_table.splitlines()[1:]]
    routes = [f for f in routes if len(f) >= 3 and f[2] != "00000000"]
    routes.sort(key=lambda f: f[1] != "00000000")
    if not routes:
        return None
    return socket.inet_ntoa(struct.pack("<I", int(routes[0][2], 16)))


def rule(chain: str, op: str, gw: str) -> list:
    """iptables arguments of one drop rule (`-I` inserts it first, `-D` deletes, `-C` checks):
    the same match and target for all three, so a delete removes exactly what was inserted."""
    iface, peer = ("-i", "-s") if chain == "INPUT" else ("-o", "-d")
    args = ["-w", LOCK_WAIT, op, chain]
    if op == "-I":
        args.append("1")
    return args + ["!", iface, "lo", "!", peer, f"{gw}/32", "-j", "DROP"]


class NetCut:
    """The network namespace of process `pid` (a pod's container) cut off; `heal` restores it."""

    def __init__(self, pid: int, pod: str):
        for tool in (IPTABLES, NSENTER):
            if not os.path.exists(tool):
                raise BenchError(f"cutting a pod's network needs {tool} on the cluster's node "
                                 "(apt-get install iptables util-linux)")
        self.pod = pod
        self.fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        ns, ours = (os.stat(p) for p in (f"/proc/self/fd/{self.fd}", "/proc/self/ns/net"))
        seen = {(ours.st_dev, ours.st_ino)}
        try:  # init's namespace, where it may be read (a sandbox refuses it even to root)
            node = os.stat("/proc/1/ns/net")
            seen.add((node.st_dev, node.st_ino))
        except PermissionError:
            pass
        if (ns.st_dev, ns.st_ino) in seen:
            os.close(self.fd)
            raise BenchError(f"pod {pod} shares the node's network namespace: cutting it would cut the node")
        with open(f"/proc/{pid}/net/route", encoding="utf-8") as f:
            self.gw = gateway(f.read())
        if not self.gw:
            os.close(self.fd)
            raise BenchError(f"pod {pod} has no route through a gateway: no node address to keep the kubelet's probes on")
        self.inserted = []

    def run(self, chain: str, op: str) -> subprocess.CompletedProcess:
        return subprocess.run([NSENTER, f"--net=/proc/{os.getpid()}/fd/{self.fd}", IPTABLES,
                               *rule(chain, op, self.gw)], capture_output=True, text=True)

    def cut(self) -> None:
        for chain in ("INPUT", "OUTPUT"):
            out = self.run(chain, "-I")
            if out.returncode != 0:
                self.heal()
                raise BenchError(f"iptables in pod {self.pod}: {out.stderr.strip()}")
            self.inserted.append(chain)

    def heal(self) -> None:
        errors = []
        for chain in list(self.inserted):
            out = self.run(chain, "-D")
            if out.returncode == 0:
                self.inserted.remove(chain)
            else:
                errors.append(f"{chain}: {out.stderr.strip()}")
        for chain in ("INPUT", "OUTPUT"):
            if self.run(chain, "-C").returncode == 0:  # -C fails when the rule is gone
                errors.append(f"{chain} still drops")
        if errors:
            raise BenchError(f"restoring the network of pod {self.pod}: {'; '.join(errors)}")
        os.close(self.fd)
