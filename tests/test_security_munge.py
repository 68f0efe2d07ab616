"""Issue 21 #4d: munge's folder has a predictable name; root must not follow what others plant there."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from eopack.errors import ServiceUnavailableError
from eopack.services.slurm import _prepare_munge, munge_dir

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not any(p.pw_name == "munge" for p in pwd.getpwall()),
    reason="needs root and the munge user (`make slurm-up` installs munge)",
)


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"
    shutil.rmtree(munge_dir(tmp_path / "state"), ignore_errors=True)


def test_a_planted_log_symlink_does_not_change_the_victim(tmp_path: Path, base: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    victim.chmod(0o600)
    before = victim.stat()
    mdir = munge_dir(base)
    mdir.mkdir()
    (mdir / "munged.log").symlink_to(victim)
    _prepare_munge(base)
    after = victim.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        before.st_uid, before.st_gid, 0o600,
    )  # fmt: skip
    log = mdir / "munged.log"
    assert not log.is_symlink() and log.stat().st_uid == pwd.getpwnam("munge").pw_uid


def test_a_folder_made_by_another_user_is_refused(base: Path) -> None:
    mdir = munge_dir(base)
    mdir.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(mdir, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(ServiceUnavailableError, match="someone else made it"):
        _prepare_munge(base)


def test_a_symlinked_folder_is_refused(tmp_path: Path, base: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    munge_dir(base).symlink_to(elsewhere)
    try:
        before = elsewhere.stat()
        with pytest.raises(ServiceUnavailableError, match="someone else made it"):
            _prepare_munge(base)
        after = elsewhere.stat()
        assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
    finally:
        munge_dir(base).unlink()
