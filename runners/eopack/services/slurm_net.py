"""The network of a multi-node Slurm on one machine: one namespace per node, a bridge, a loopback forward.

``eopack slurm up --nodes N`` (N > 1) builds, for one state dir (names carry a hash of its path, so
two clusters never share a namespace)::

    eopack-<tag>-ctl      slurmctld's namespace ("head node"): bridge ``br0`` 10.217.0.1/24
    eopack-<tag>-n1..nN   one per slurmd ("compute node"): ``eth0`` 10.217.0.(1+k)/24 on a veth to br0

The bridge and every veth live inside the namespaces, so the machine's own network (its interfaces,
routes, firewall, ``bridge-nf-call-iptables``) is never touched; deleting the namespaces removes
them all. The "login node" (this host, where ``sbatch`` and Toil's leader run) reaches slurmctld only
through a forward from ``127.0.0.1:<port>`` into the head namespace (``forward`` below, a tiny
process of its own). The nodes share the filesystem, as a cluster shares home and scratch; munge's
socket is a file, so one munged serves every namespace.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceUnavailableError

__all__ = ["SUBNET", "Net", "create", "destroy", "enter", "forward", "leftovers", "ours", "pids_in"]

SUBNET = "10.217.0"
BRIDGE = "br0"
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Net:
    """Names and addresses of one cluster's namespaces, derived from its state dir."""

    tag: str
    nodes: int

    @classmethod
    def of(cls, base: Path, nodes: int) -> Net:
        digest = hashlib.sha1(str(base.resolve()).encode(), usedforsecurity=False).hexdigest()[:6]
        return cls(digest, nodes)

    @property
    def ctl(self) -> str:
        return f"eopack-{self.tag}-ctl"

    @property
    def ctl_addr(self) -> str:
        return f"{SUBNET}.1"

    def node(self, k: int) -> str:
        """Node name (also its namespace suffix): n1, n2, ..."""
        return f"n{k}"

    def netns(self, k: int) -> str:
        return f"eopack-{self.tag}-{self.node(k)}"

    def addr(self, k: int) -> str:
        return f"{SUBNET}.{1 + k}"

    @property
    def namespaces(self) -> list[str]:
        return [self.ctl, *(self.netns(k) for k in range(1, self.nodes + 1))]


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise ServiceUnavailableError(
            "Slurm network",
            f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}",
            "Network namespaces need root and iproute2 (`apt-get install -y iproute2`).",
        )


def create(net: Net) -> None:
    """Make the namespaces, the bridge in the head namespace and one veth pair per node."""
    for ns in net.namespaces:
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", net.ctl, "link", "add", BRIDGE, "type", "bridge")
    _ip("-n", net.ctl, "addr", "add", f"{net.ctl_addr}/24", "dev", BRIDGE)
    _ip("-n", net.ctl, "link", "set", BRIDGE, "up")
    for k in range(1, net.nodes + 1):
        veth = f"v{net.node(k)}"
        _ip("-n", net.ctl, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", net.netns(k))
        _ip("-n", net.ctl, "link", "set", veth, "master", BRIDGE, "up")
        _ip("-n", net.netns(k), "addr", "add", f"{net.addr(k)}/24", "dev", "eth0")
        _ip("-n", net.netns(k), "link", "set", "eth0", "up")


def enter(ns: str) -> list[str]:
    """Command prefix that runs a program in namespace ``ns`` and nothing else changed.

    Not ``ip netns exec``: that also remounts /sys in a new mount namespace, which hides
    /sys/fs/cgroup from slurmd ("Unable to initialize cgroup plugin").
    """
    return ["nsenter", f"--net={NETNS_DIR / ns}", "--"]


def ours(tag: str) -> list[str]:
    """This cluster's namespaces that exist (any node count)."""
    prefix = f"eopack-{tag}-"
    return sorted(p.name for p in NETNS_DIR.glob(f"{prefix}*")) if NETNS_DIR.is_dir() else []


def pids_in(ns: str) -> list[int]:
    """Every process inside namespace ``ns`` (``ip netns pids``)."""
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def destroy(tag: str) -> None:
    """Delete the cluster's namespaces; the bridge and veths inside them go with them."""
    for ns in ours(tag):
        _ip("netns", "del", ns)


def leftovers(tag: str) -> list[str]:
    """What of this cluster's network still exists (namespaces), for ``down`` to prove it is all gone."""
    return ours(tag)


def forward(listen_port: int, netns: str, target: str, target_port: int) -> None:
    """Accept on 127.0.0.1:``listen_port`` here and connect each client to ``target`` inside ``netns``.

    The listening socket is made first, in this process's namespace; then the process enters
    ``netns``, so every outgoing socket is made there (a socket keeps the namespace it was made in).
    """
    server = socket.create_server(("127.0.0.1", listen_port))
    with open(NETNS_DIR / netns) as ns:
        os.setns(ns.fileno(), os.CLONE_NEWNET)

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection((target, target_port), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":  # python -m eopack.services.slurm_net PORT NETNS TARGET TARGET_PORT [STATE_DIR]
    forward(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
