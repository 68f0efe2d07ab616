"""A real single-node Slurm on loopback (Debian ``slurm-wlm`` + ``munge``), for ``toil-slurm`` runs.

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
``/etc/slurm/slurm.conf`` of its own, ``up`` links it to ours so pasted plain commands (``sinfo``,
``toil-cwl-runner --batchSystem slurm``) work too, and ``down`` removes only that link.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import package
from ..clients import slurm as slurm_client
from ..clients.slurm import SYSTEM_CONF
from ..console import notice
from ..errors import ServiceUnavailableError
from . import _proc
from .base import Progress, Rollback, quiet, sweep

__all__ = [
    "SERVICE",
    "SlurmCluster",
    "client_env",
    "config_path",
    "down",
    "install",
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
# Written by eopack (services/slurm.py): one node on loopback, state and logs in {root}.
ClusterName=eopack
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge}/munge.socket.2
SlurmUser={user}
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/logs/slurmctld.log
SlurmdLogFile={root}/logs/slurmd.log
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
SlurmdTimeout=60
NodeName={node} NodeAddr=127.0.0.1 {hardware} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
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

    @property
    def up(self) -> bool:
        return bool(self.munged and self.slurmctld and self.slurmd and self.node_state)

    @property
    def conf(self) -> Path:
        return config_path(self.state_dir)

    @property
    def jobcomp(self) -> Path:
        return self.state_dir / "logs" / "jobcomp.log"

    def describe(self) -> str:
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
    ctld = _pid(base / "slurmctld.pid")
    return SlurmCluster(
        base,
        _pid(munge_dir(base) / "munged.pid"),
        ctld,
        _pid(base / "slurmd.pid"),
        _sinfo_state(base) if ctld else None,
    )


def up(
    base: Path | None = None, progress: Progress | None = None, timeout: float = START_TIMEOUT
) -> SlurmCluster:
    """Start munged, slurmctld and slurmd for this host (or reuse them) and wait until the node is idle.

    Idempotent: daemons of this state dir that still run are kept. Raises ServiceUnavailableError
    with the log to read when a daemon does not come up.
    """
    say = progress or quiet
    base = (base or state_dir()).resolve()
    current = status(base)
    if current.up and current.node_state in ("idle", "mixed", "allocated"):
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
            root=base,
            munge=munge_dir(base),
            ctld_port=CTLD_PORT,
            slurmd_port=SLURMD_PORT,
            user=pwd.getpwuid(os.geteuid()).pw_name,
            node=NODE,
            hardware=_hardware(logs / "setup.log"),
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    with Rollback() as started:  # a failed start stops what it started
        if current.munged is None:
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
            say("starting munged")
            _proc.run_checked(
                cmd,
                service=SERVICE,
                what="munged",
                log=logs / "setup.log",
                fix=f"Read {mdir / 'munged.log'}.",
            )
            if not _proc.wait_until(lambda: _pid(mdir / "munged.pid") is not None, 10):
                raise ServiceUnavailableError(SERVICE, "munged did not start", f"Read {mdir / 'munged.log'}.")
            started.add(_pid(mdir / "munged.pid") or 0, mdir / "munged.pid")
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
    """Let plain Slurm commands find this cluster when the machine has none of its own (root only)."""
    if os.geteuid() != 0 or SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        return
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)


def down(base: Path | None = None, progress: Progress | None = None) -> SlurmCluster:
    """Stop slurmd, slurmctld and munged of this state dir (idempotent); jobs still running are killed."""
    say = progress or quiet
    base = (base or state_dir()).resolve()
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
