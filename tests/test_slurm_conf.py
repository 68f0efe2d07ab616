"""Which slurm.conf clients use: this checkout's cluster, a site's config, never a dead link of ours.

The CI run that showed it: a suite killed on this machine left ``/etc/slurm/slurm.conf`` linked to
its clone's config, whose munge socket was gone. The next clean clone's ``slurm up`` kept that link
("the machine has a config of its own"), and the runner, the gateway and the WES workers followed
it: every Slurm test failed with ``Munge encode failed ... Connection refused``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eopack.clients import slurm as slurm_client
from eopack.services import slurm

MARKED = slurm.CONFIG.splitlines()[0]


@pytest.fixture
def system_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``/etc/slurm/slurm.conf`` moved into tmp_path for the test (both modules that name it)."""
    path = tmp_path / "etc" / "slurm" / "slurm.conf"
    path.parent.mkdir(parents=True)
    monkeypatch.setattr(slurm_client, "SYSTEM_CONF", path)
    monkeypatch.setattr(slurm, "SYSTEM_CONF", path)
    monkeypatch.delenv("SLURM_CONF", raising=False)
    yield path


def ours(tmp_path: Path, name: str) -> Path:
    conf = tmp_path / name / "slurm.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"{MARKED}\nClusterName=eopack\n")
    return conf


def test_every_config_eopack_writes_carries_the_mark() -> None:
    assert MARKED.startswith(slurm_client.MARK)


@pytest.mark.parametrize("other", ["dangling", "another checkout"])
def test_a_link_eopack_left_never_outranks_this_checkouts_cluster(
    system_conf: Path, tmp_path: Path, other: str
) -> None:
    mine = ours(tmp_path, "mine")
    target = tmp_path / "gone" / "slurm.conf" if other == "dangling" else ours(tmp_path, "other")
    system_conf.symlink_to(target)

    assert slurm_client.machine_conf() is None
    assert slurm_client.client_env(mine) == {"SLURM_CONF": str(mine)}
    if os.geteuid() == 0:  # `slurm up` as root relinks plain commands to the cluster it started
        slurm._link_system_conf(mine)
        assert system_conf.resolve() == mine.resolve()


def test_a_sites_own_config_wins_and_is_never_touched(system_conf: Path, tmp_path: Path) -> None:
    system_conf.write_text("ClusterName=site\nSlurmctldHost=head01\n")
    mine = ours(tmp_path, "mine")

    assert slurm_client.machine_conf() == system_conf
    assert slurm_client.client_env(mine) == {}
    slurm._link_system_conf(mine)
    assert not system_conf.is_symlink() and system_conf.read_text().startswith("ClusterName=site")


def test_the_users_slurm_conf_wins(
    system_conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", "/elsewhere/slurm.conf")
    assert slurm_client.client_env(ours(tmp_path, "mine")) == {}


@pytest.mark.slurm
def test_plain_commands_reach_the_sessions_cluster(slurm_cluster: slurm.SlurmCluster) -> None:
    """After `slurm up`, a pasted `sinfo` (no SLURM_CONF) answers from the cluster just started,
    whatever link an earlier, killed cluster left (unless the site has its own config)."""
    if slurm_client.machine_conf() is not None or os.geteuid() != 0:
        pytest.skip("the machine has its own slurm.conf (or we are not root): plain commands are the site's")
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
    assert slurm.SYSTEM_CONF.resolve() == slurm_cluster.conf.resolve()
