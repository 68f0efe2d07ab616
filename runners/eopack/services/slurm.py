"""A real Slurm (Debian ``slurm-wlm`` + ``munge``) for ``toil-slurm`` runs: one node on loopback, or N nodes.

``up(nodes=N)`` with N > 1 runs slurmctld and N slurmd, each in a network namespace of its own
(``slurm_net``), configured by ``nodes.conf``; ``slurm.conf`` is the clients' copy, whose controller
is a loopback forward into the head namespace. Its files are listed at the end of this module.

Why a real Slurm and not a mock: Toil's slurm batch system talks to ``sbatch``/``squeue``/``scontrol``/
``sacct`` and parses their output, and HPC users paste the same ``toil-cwl-runner --batchSystem slurm``
command on their cluster. Only a real controller and node prove that path works (DESIGN.md §5).

Everything lives in one state directory (default ``runs/services/slurm``)::

    slurm.conf            written for this host (CPUs and memory from ``slurmd -C``), loopback only
    (munged's socket, pid, seed and log are in $TMPDIR/eopack-munge-<hash>: see munge_dir)
    state/ spool/         slurmctld's StateSaveLocation and slurmd's spool
    logs/                 munged.log slurmctld.log slurmd.log jobcomp.log (one line per finished job)
    *.pid                 slurmctld.pid slurmd.pid

Accounting: ``sacct`` needs slurmdbd and a MySQL/MariaDB database, which is a lot of machinery for a
test cluster. Instead finished jobs are written to ``logs/jobcomp.log`` (``jobcomp/filetxt``) and kept
in the controller for a day (``MinJobAge``), so ``squeue -t all`` and ``scontrol show job`` show the
history and Toil reads exit codes through ``scontrol`` when ``sacct`` says accounting is disabled.

Clients find the config through ``SLURM_CONF``; as root, when the machine has no
``/etc/slurm/slurm.conf`` of its own (a link eopack left, maybe to a cluster killed long ago, is not
one), ``up`` links it to ours so pasted plain commands (``sinfo``, ``toil-cwl-runner --batchSystem
slurm``) work too, and ``down`` removes only that link.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import package
from ..clients import slurm as slurm_client
from ..clients.slurm import SYSTEM_CONF, machine_conf
from ..console import notice
from ..errors import ServiceUnavailableError
from . import _proc, slurm_net
from .base import JsonState, Progress, Rollback, quiet, sweep

__all__ = [
    "SERVICE",
    "SlurmCluster",
    "client_env",
    "config_path",
    "down",
    "install",
    "machine_conf",
    "state_dir",
    "status",
    "up",
]

SERVICE = "Slurm"
PACKAGES = ("slurm-wlm", "munge")
INSTALL_FIX = "Install them as root with `apt-get install -y slurm-wlm munge` (`make slurm-up` does)."
CTLD_PORT, SLURMD_PORT = 6817, 6818
NODE = "localhost"
START_TIMEOUT = 60.0

CONFIG = """\
# Written by eopack (services/slurm.py): {what}, state and logs in {root}.
ClusterName={cluster}
SlurmctldHost=localhost({ctld_addr})
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
{comm}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge}/munge.socket.2{auth_extra}
SlurmUser={user}
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool{per_node_dir}
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd{per_node}.pid
SlurmctldLogFile={root}/logs/slurmctld.log
SlurmdLogFile={root}/logs/slurmd{per_node}.log
# No cgroups in containers and CI machines: track processes by parent pid, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# Start a submitted batch job at once instead of batching submissions (Toil submits one by one).
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# History without slurmdbd: one line per finished job, and finished jobs kept a day in the controller.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/logs/jobcomp.log
MinJobAge=86400
InactiveLimit=0
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout={slurmd_timeout}
{node_lines}
PartitionName=debug Nodes={nodes} Default=YES MaxTime=INFINITE State=UP
"""


def state_dir(root: Path | None = None) -> Path:
    """``runs/services/slurm`` of the checkout."""
    return (root or package.repo_root()) / "runs" / "services" / "slurm"


def config_path(base: Path | None = None) -> Path:
    return (base or state_dir()) / "slurm.conf"


def client_env(base: Path | None = None) -> dict[str, str]:
    """Environment for Slurm clients (``sbatch``, ``sinfo``, Toil) that finds eopack's cluster."""
    return slurm_client.client_env(config_path(base))


@dataclass(frozen=True)
class SlurmCluster:
    """What ``status`` sees: daemon pids (None when down), the node's state and where things are."""

    state_dir: Path
    munged: int | None
    slurmctld: int | None
    slurmd: int | None
    node_state: str | None
    nodes: int = 1
    slurmds: tuple[int | None, ...] = ()
    forwarder: int | None = None
    node_states: dict[str, str] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        if self.nodes > 1:
            return bool(
                self.munged and self.slurmctld and self.forwarder and all(self.slurmds) and self.node_state
            )
        return bool(self.munged and self.slurmctld and self.slurmd and self.node_state)

    @property
    def conf(self) -> Path:
        return config_path(self.state_dir)

    @property
    def jobcomp(self) -> Path:
        return self.state_dir / "logs" / "jobcomp.log"

    def describe(self) -> str:
        if self.nodes > 1:
            daemons = [
                f"{name} {'pid ' + str(pid) if pid else 'down'}"
                for name, pid in (
                    ("munged", self.munged),
                    ("slurmctld", self.slurmctld),
                    ("forward", self.forwarder),
                    *((f"slurmd n{k}", pid) for k, pid in enumerate(self.slurmds, 1)),
                )
            ]
            states = ", ".join(f"{n} {st}" for n, st in sorted(self.node_states.items())) or "unknown"
            return f"{SERVICE}: {', '.join(daemons)}; nodes: {states}; SLURM_CONF={self.conf}"
        parts = [
            f"{name} {'pid ' + str(pid) if pid else 'down'}"
            for name, pid in (("munged", self.munged), ("slurmctld", self.slurmctld), ("slurmd", self.slurmd))
        ]
        return f"{SERVICE}: {', '.join(parts)}; node {NODE}: {self.node_state or 'unknown'}; SLURM_CONF={self.conf}"


def _missing_commands() -> list[str]:
    return [c for c in ("munged", "slurmctld", "slurmd", "sinfo", "sbatch") if shutil.which(c) is None]


def install(progress: Progress | None = None) -> None:
    """Install ``slurm-wlm`` and ``munge`` with apt when they are missing and we are root.

    The packages' init scripts are kept from starting daemons (a temporary policy-rc.d): the
    cluster eopack runs uses its own config and state dir, never the system's services.
    """
    if not _missing_commands():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceUnavailableError(
            SERVICE,
            f"{', '.join(_missing_commands())} not found and installing needs root on Debian",
            INSTALL_FIX,
        )
    (progress or notice)(f"installing {' '.join(PACKAGES)} with apt-get (about a minute)")
    log = state_dir() / "logs" / "install.log"
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _proc.run_checked(
            ["apt-get", "update", "-qq"],
            service=SERVICE,
            what="apt-get update",
            log=log,
            fix=INSTALL_FIX,
            env=env,
            timeout=600,
        )
        _proc.run_checked(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
            service=SERVICE,
            what="apt-get install",
            log=log,
            fix=INSTALL_FIX,
            env=env,
            timeout=900,
        )
    finally:
        if ours:
            policy.unlink(missing_ok=True)


def _hardware(log: Path) -> str:
    """This node's CPUs/sockets/cores/threads/memory as ``slurmd -C`` reports them.

    Declaring more than the node has drains it ("Low RealMemory"), so the numbers come from slurmd.
    """
    line = _proc.run_checked(["slurmd", "-C"], service=SERVICE, what="slurmd -C", log=log, fix=INSTALL_FIX)
    first = line.splitlines()[0] if line else ""
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    fields = dict(re.findall(r"(\w+)=(\S+)", first))
    if "CPUs" not in fields:
        raise ServiceUnavailableError(
            SERVICE, f"cannot read this node's hardware from `slurmd -C`: {first!r}", ""
        )
    return " ".join(f"{k}={fields[k]}" for k in keep if k in fields)


def munge_dir(base: Path) -> Path:
    """munged's socket, pid, seed and log, in a folder the munge user can reach.

    munged runs as the munge user, which cannot enter a checkout under a private folder (a
    ``mktemp -d`` clone is mode 700), so its files live under the system temp dir, one folder per
    state dir.
    """
    digest = hashlib.sha1(str(base.resolve()).encode(), usedforsecurity=False).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"eopack-munge-{digest}"


def _prepare_munge(base: Path) -> None:
    """munged refuses directories others can write to; its socket dir belongs to the munge user.

    The folder's name is predictable (``munge_dir``), so another local user may have made it first,
    or planted a symlink in it (issue 21 #4d: root then changed a victim file's owner and mode).
    So: the folder must be a real directory owned by us or the munge user, and nothing in it is
    followed: the log is opened with O_NOFOLLOW (a planted link is removed) and changed by its fd.
    """
    mdir = munge_dir(base)
    munge = pwd.getpwnam("munge") if os.geteuid() == 0 else None
    try:
        mdir.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        st = os.lstat(mdir)
        owners = {os.geteuid(), *([munge.pw_uid] if munge else [])}
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in owners:
            raise ServiceUnavailableError(
                "Slurm",
                f"{mdir} exists and is not a folder of ours or the munge user's (someone else made it)",
                f"Remove {mdir} and retry.",
            ) from None
    os.chmod(mdir, 0o755, follow_symlinks=False)  # noqa: S103 - munge clients must reach its socket
    if munge is not None:
        os.chown(mdir, munge.pw_uid, munge.pw_gid, follow_symlinks=False)
        log = mdir / "munged.log"
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640)
        except OSError:  # ELOOP: a symlink was planted there
            log.unlink()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        try:
            os.fchown(fd, munge.pw_uid, munge.pw_gid)
            os.fchmod(fd, 0o640)
        finally:
            os.close(fd)


def _munge_user() -> str | None:
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return None
    return "munge"


def _pid(path: Path) -> int | None:
    pid = _proc.read_pid(path)
    return pid if _proc.pid_alive(pid) else None


def _sinfo_state(base: Path) -> str | None:
    """The node's state per ``sinfo`` (idle, mixed, alloc, down*, ...), None when nothing answers."""
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-n", NODE, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env={**os.environ, "SLURM_CONF": str(config_path(base))},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    state = proc.stdout.strip()
    return state if proc.returncode == 0 and state else None


def status(base: Path | None = None) -> SlurmCluster:
    """Daemons and node state from the state dir alone (plus one ``sinfo`` when the controller runs)."""
    base = (base or state_dir()).resolve()
    layout = Layout.load(base / LAYOUT)
    if layout is not None:
        return _status_multi(base, layout)
    ctld = _pid(base / "slurmctld.pid")
    return SlurmCluster(
        base,
        _pid(munge_dir(base) / "munged.pid"),
        ctld,
        _pid(base / "slurmd.pid"),
        _sinfo_state(base) if ctld else None,
    )


def up(
    base: Path | None = None,
    progress: Progress | None = None,
    timeout: float = START_TIMEOUT,
    nodes: int = 1,
) -> SlurmCluster:
    """Start munged, slurmctld and slurmd for this host (or reuse them) and wait until the node is idle.

    ``nodes`` > 1: slurmctld and that many slurmd, each in a network namespace of its own
    (``slurm_net``). Idempotent: daemons of this state dir that still run are kept. Raises
    ServiceUnavailableError with the log to read when a daemon does not come up.
    """
    say = progress or quiet
    base = (base or state_dir()).resolve()
    current = status(base)
    if nodes < 1:
        raise ServiceUnavailableError(SERVICE, f"--nodes must be 1 or more, got {nodes}", "")
    if current.nodes != nodes and (current.slurmctld or any(current.slurmds) or current.slurmd):
        raise ServiceUnavailableError(
            SERVICE,
            f"{base} runs a {current.nodes}-node cluster, not {nodes}",
            "Stop it with `eopack slurm down` first, or use another --state-dir.",
        )
    if nodes > 1:
        return _up_multi(base, nodes, say, timeout)
    if current.up and current.node_state in ("idle", "mixed", "allocated"):
        _link_system_conf(config_path(base))
        return current
    install(say)
    if os.geteuid() != 0:
        raise ServiceUnavailableError(
            SERVICE,
            "starting slurmd needs root (it runs jobs as their submitting users)",
            "Run `make slurm-up` as root.",
        )
    for sub in ("logs", "state", "spool"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    logs = base / "logs"
    conf = config_path(base)
    conf.write_text(
        CONFIG.format(
            what="one node on loopback",
            cluster="eopack",
            ctld_addr="127.0.0.1",
            root=base,
            per_node="",
            per_node_dir="",
            auth_extra="",
            comm="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
            munge=munge_dir(base),
            ctld_port=CTLD_PORT,
            slurmd_port=SLURMD_PORT,
            user=pwd.getpwuid(os.geteuid()).pw_name,
            slurmd_timeout=60,
            node_lines=f"NodeName={NODE} NodeAddr=127.0.0.1 {_hardware(logs / 'setup.log')} State=UNKNOWN",
            nodes=NODE,
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    with Rollback() as started:  # a failed start stops what it started
        if current.munged is None:
            say("starting munged")
            _start_munged(base, logs, started)
        if current.slurmctld is None:
            _proc.ensure_port_free(SERVICE, CTLD_PORT, "SlurmctldPort (stop the other Slurm first)")
            say("starting slurmctld")
            pid = _proc.spawn(
                ["slurmctld", "-D", "-i", "-f", str(conf)], log=logs / "slurmctld.out", cwd=base, env=env
            )
            (base / "slurmctld.pid").write_text(f"{pid}\n")
            started.add(pid, base / "slurmctld.pid")
        if current.slurmd is None:
            _proc.ensure_port_free(SERVICE, SLURMD_PORT, "SlurmdPort (stop the other Slurm first)")
            say("starting slurmd")
            pid = _proc.spawn(
                ["slurmd", "-D", "-N", NODE, "-f", str(conf)], log=logs / "slurmd.out", cwd=base, env=env
            )
            (base / "slurmd.pid").write_text(f"{pid}\n")
            started.add(pid, base / "slurmd.pid")
        say(f"waiting for node {NODE} to be idle")
        if not _proc.wait_until(
            lambda: _sinfo_state(base) in ("idle", "mixed", "allocated"), timeout, interval=0.5
        ):
            state = _sinfo_state(base) or "no answer"
            last = (
                _proc.tail(logs / "slurmctld.log", 2) + " | " + _proc.tail(logs / "slurmd.log", 2)
            ).replace("\n", " | ")
            raise ServiceUnavailableError(
                SERVICE,
                f"node {NODE} is not idle after {timeout:.0f} s (state: {state}): {last}",
                f"Read {logs}; stop with `make slurm-down` and retry.",
            )
    _link_system_conf(conf)
    return status(base)


def _link_system_conf(conf: Path) -> None:
    """Let plain Slurm commands find this cluster when the machine has none of its own (root only).

    A link already there that eopack made (to another checkout's cluster, or one killed without
    ``down`` whose config now names a dead munge socket) is replaced: only a site's own config stays.
    """
    if os.geteuid() != 0 or machine_conf() is not None:
        return
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        return  # a file, not a link of ours: left alone (clients still prefer this checkout's conf)
    SYSTEM_CONF.unlink(missing_ok=True)
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)


def down(base: Path | None = None, progress: Progress | None = None) -> SlurmCluster:
    """Stop slurmd, slurmctld and munged of this state dir (idempotent); jobs still running are killed."""
    say = progress or quiet
    base = (base or state_dir()).resolve()
    if (base / LAYOUT).exists():
        return _down_multi(base, say)
    for name, pid_file in (
        ("slurmd", base / "slurmd.pid"),
        ("slurmctld", base / "slurmctld.pid"),
        ("munged", munge_dir(base) / "munged.pid"),
    ):
        pid = _pid(pid_file)
        if pid is not None:
            # munged forks and writes its own pid file, so it leads no group of ours: signal it alone.
            if not _proc.stop_pid(pid, timeout=15, group=name != "munged"):
                raise ServiceUnavailableError(SERVICE, f"{name} (pid {pid}) did not stop", "Kill it by pid.")
            say(f"{name} stopped (pid {pid})")
        pid_file.unlink(missing_ok=True)
    sweep(
        SERVICE,
        base,
        lambda: [
            p
            for p in _proc.processes_under(base)
            if p.name in ("slurmctld", "slurmd", "slurmstepd", "munged")
        ],
    )
    if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve() == config_path(base).resolve():
        SYSTEM_CONF.unlink()
    return status(base)


# ------------------------------------------------------------------ several nodes in network namespaces

LAYOUT = "cluster.json"
NODES_CONF = "nodes.conf"
MULTI_SLURMD_TIMEOUT = 15  # a stopped node is declared DOWN (its jobs NODE_FAIL) after this many seconds


@dataclass
class Layout(JsonState):
    """What ``up --nodes N`` built, for later ``status``/``down`` runs: node count, names, forward port."""

    nodes: int
    tag: str
    port: int

    @property
    def net(self) -> slurm_net.Net:
        return slurm_net.Net(self.tag, self.nodes)


def _multi_config(base: Path, net: slurm_net.Net, ctld_addr: str, ctld_port: int, memory: str) -> str:
    lines = "\n".join(
        f"NodeName={net.node(k)} NodeAddr={net.addr(k)} CPUs=1 RealMemory={memory} State=UNKNOWN"
        for k in range(1, net.nodes + 1)
    )
    return CONFIG.format(
        what=f"{net.nodes} nodes in network namespaces eopack-{net.tag}-*",
        cluster=f"eopack-{net.tag}",
        ctld_addr=ctld_addr,
        root=base,
        per_node="-%n",
        per_node_dir="/%n",
        # A job requeued after its node failed waits cred_expire (default 120 s) before it starts again.
        auth_extra=",cred_expire=20",
        comm="# Each daemon listens on every address of its own namespace (the bridge, its loopback).",
        munge=munge_dir(base),
        ctld_port=ctld_port,
        slurmd_port=SLURMD_PORT,
        user=pwd.getpwuid(os.geteuid()).pw_name,
        slurmd_timeout=MULTI_SLURMD_TIMEOUT,
        node_lines=lines,
        nodes=f"n[1-{net.nodes}]",
    )


def _node_states(base: Path) -> dict[str, str]:
    """Each node's state per ``sinfo`` (through the forward), empty when nothing answers."""
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %T"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env={**os.environ, "SLURM_CONF": str(config_path(base))},
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    return dict(line.split(None, 1) for line in proc.stdout.splitlines() if " " in line)


def _status_multi(base: Path, layout: Layout) -> SlurmCluster:
    ctld = _pid(base / "slurmctld.pid")
    forwarder = _pid(base / "forward.pid")
    states = _node_states(base) if ctld and forwarder else {}
    ready = len(states) == layout.nodes and all(
        st in ("idle", "mixed", "allocated") for st in states.values()
    )
    slurmds = tuple(_pid(base / f"slurmd-n{k}.pid") for k in range(1, layout.nodes + 1))
    return SlurmCluster(
        base,
        _pid(munge_dir(base) / "munged.pid"),
        ctld,
        slurmds[0],
        "idle" if ready else (", ".join(sorted(set(states.values()))) or None),
        nodes=layout.nodes,
        slurmds=slurmds,
        forwarder=forwarder,
        node_states=states,
    )


def _start_munged(base: Path, logs: Path, started: Rollback) -> None:
    _prepare_munge(base)
    mdir = munge_dir(base)
    cmd = _proc.as_user(
        [
            "munged",
            f"--socket={mdir}/munge.socket.2",
            f"--pid-file={mdir}/munged.pid",
            f"--seed-file={mdir}/munged.seed",
            f"--log-file={mdir}/munged.log",
        ],
        _munge_user(),
    )
    _proc.run_checked(
        cmd, service=SERVICE, what="munged", log=logs / "setup.log", fix=f"Read {mdir / 'munged.log'}."
    )
    if not _proc.wait_until(lambda: _pid(mdir / "munged.pid") is not None, 10):
        raise ServiceUnavailableError(SERVICE, "munged did not start", f"Read {mdir / 'munged.log'}.")
    started.add(_pid(mdir / "munged.pid") or 0, mdir / "munged.pid")


def _up_multi(base: Path, nodes: int, say: Progress, timeout: float) -> SlurmCluster:
    """slurmctld in the head namespace, one slurmd per node namespace, a loopback forward for clients."""
    current = status(base)
    if current.up:
        return current
    install(say)
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise ServiceUnavailableError(
            SERVICE,
            "a multi-node Slurm needs root and `ip` (network namespaces; slurmd runs jobs as their users)",
            "Run `eopack slurm up --nodes N` as root with iproute2 installed, or use one node.",
        )
    for sub in ("logs", "state", "spool"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    logs = base / "logs"
    layout = Layout.load(base / LAYOUT)
    if layout is None or layout.nodes != nodes:  # nothing runs (checked in up): rebuild the network
        if layout is not None:
            slurm_net.destroy(layout.tag)
        layout = Layout(nodes, slurm_net.Net.of(base, nodes).tag, _proc.free_port())
    net = layout.net
    memory = dict(re.findall(r"(\w+)=(\S+)", _hardware(logs / "setup.log"))).get("RealMemory", "1024")
    (base / NODES_CONF).write_text(_multi_config(base, net, net.ctl_addr, CTLD_PORT, memory))
    config_path(base).write_text(_multi_config(base, net, "127.0.0.1", layout.port, memory))
    nodes_conf = str(base / NODES_CONF)
    for k in range(1, nodes + 1):
        (base / "spool" / net.node(k)).mkdir(exist_ok=True)
    with Rollback() as started:
        layout.save(base / LAYOUT)
        started.callback(lambda: (base / LAYOUT).unlink(missing_ok=True))
        if not slurm_net.ours(net.tag):
            say(f"creating network namespaces {', '.join(net.namespaces)}")
            started.callback(lambda: slurm_net.destroy(net.tag))
            slurm_net.create(net)
        if current.munged is None:
            say("starting munged")
            _start_munged(base, logs, started)
        if current.slurmctld is None:
            say(f"starting slurmctld in {net.ctl} ({net.ctl_addr})")
            pid = _proc.spawn(
                [*slurm_net.enter(net.ctl), "slurmctld", "-D", "-i", "-f", nodes_conf],
                log=logs / "slurmctld.out",
                cwd=base,
                pid_file=base / "slurmctld.pid",
            )
            started.add(pid, base / "slurmctld.pid")
        if current.forwarder is None:
            _proc.ensure_port_free(SERVICE, layout.port, "the forward to slurmctld (another eopack Slurm?)")
            say(f"forwarding 127.0.0.1:{layout.port} to slurmctld")
            pid = _proc.spawn(
                [sys.executable, "-m", "eopack.services.slurm_net", str(layout.port), net.ctl, net.ctl_addr,
                 str(CTLD_PORT), str(base)],
                log=logs / "forward.log",
                cwd=base,
                pid_file=base / "forward.pid",
            )  # fmt: skip
            started.add(pid, base / "forward.pid")
        for k in range(1, nodes + 1):
            pid_file = base / f"slurmd-n{k}.pid"
            if _pid(pid_file) is None:
                say(f"starting slurmd {net.node(k)} in {net.netns(k)} ({net.addr(k)})")
                pid = _proc.spawn(
                    [*slurm_net.enter(net.netns(k)), "slurmd", "-D", "-N", net.node(k), "-f", nodes_conf],
                    log=logs / f"slurmd-{net.node(k)}.out",
                    cwd=base,
                    pid_file=pid_file,
                )
                started.add(pid, pid_file)
        say(f"waiting for {nodes} nodes to be idle")
        # every node idle, not just an answer: node_state is "idle" only when all of them are (a
        # node still "unknown" made `up` return early and the first job wait for it, on a busy machine)
        if not _proc.wait_until(lambda: status(base).node_state == "idle", timeout, interval=0.5):
            states = _node_states(base) or {"controller": "no answer"}
            raise ServiceUnavailableError(
                SERVICE,
                f"nodes not idle after {timeout:.0f} s ({states}): "
                + _proc.tail(logs / "slurmctld.log", 2).replace("\n", " | "),
                f"Read {logs}; stop with `eopack slurm down` and retry.",
            )
    return status(base)


def stop_node(base: Path, node: str) -> None:
    """Stop one node as a crash would: its slurmd and everything running in its namespace (its jobs)."""
    layout = Layout.load(base.resolve() / LAYOUT)
    if layout is None:
        raise ServiceUnavailableError(
            SERVICE, f"{base} holds no multi-node cluster", "Start one with --nodes N."
        )
    ns = f"eopack-{layout.tag}-{node}"
    for pid in slurm_net.pids_in(ns):
        _proc.stop_pid(pid, timeout=2, group=False, sig=signal.SIGKILL)


def _down_multi(base: Path, say: Progress) -> SlurmCluster:
    layout = Layout.load(base / LAYOUT)
    assert layout is not None
    net = layout.net
    for k in range(1, layout.nodes + 1):
        pid = _pid(base / f"slurmd-n{k}.pid")
        if pid is not None and _proc.stop_pid(pid, timeout=15):
            say(f"slurmd {net.node(k)} stopped (pid {pid})")
        (base / f"slurmd-n{k}.pid").unlink(missing_ok=True)
    # Jobs still running on a node (slurmstepd and its children) are in the node's namespace: ours.
    for ns in slurm_net.ours(net.tag):
        for pid in slurm_net.pids_in(ns):
            _proc.stop_pid(pid, timeout=5, group=False)
    for name, pid_file in (
        ("slurmctld", base / "slurmctld.pid"),
        ("forward", base / "forward.pid"),
        ("munged", munge_dir(base) / "munged.pid"),
    ):
        pid = _pid(pid_file)
        if pid is not None:
            if not _proc.stop_pid(pid, timeout=15, group=name != "munged"):
                raise ServiceUnavailableError(SERVICE, f"{name} (pid {pid}) did not stop", "Kill it by pid.")
            say(f"{name} stopped (pid {pid})")
        pid_file.unlink(missing_ok=True)
    slurm_net.destroy(net.tag)
    sweep(
        SERVICE,
        base,
        lambda: [
            p
            for p in _proc.processes_under(base)
            if p.name in ("slurmctld", "slurmd", "slurmstepd", "munged") or "slurm_net" in p.cmdline
        ],
    )
    left = slurm_net.leftovers(net.tag)
    if left:
        raise ServiceUnavailableError(
            SERVICE, f"namespaces left after down: {', '.join(left)}", "ip netns del them."
        )
    say(f"network namespaces {', '.join(net.namespaces)} removed")
    (base / LAYOUT).unlink(missing_ok=True)
    return status(base)
