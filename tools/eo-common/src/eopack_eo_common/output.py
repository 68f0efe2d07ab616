"""Write results into a hidden staging folder and publish them only when complete.

A tool that fails half-way must leave nothing that looks like a result (DESIGN.md §3). Every
file is written under ``<outdir>/.partial-<random>/`` and moved into ``outdir`` in one pass at
the end; on any error the staging folder is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ToolError, ToolInputError

__all__ = ["staged_output"]


@contextmanager
def staged_output(outdir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging directory; on success move its entries into ``outdir``.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> with staged_output(out) as stage:
    ...     _ = (stage / "a.txt").write_text("x")
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt']
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ToolInputError(f"outdir {out} exists and is not a folder; give a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ToolInputError(
            f"cannot create outdir {out}: {err.strerror}; give a folder you can write to"
        ) from None
    stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        yield stage
        clashes = [p.name for p in stage.iterdir() if (out / p.name).exists()]
        if clashes:
            raise ToolError(
                f"output directory {out} already holds {', '.join(sorted(clashes))}; "
                "choose an empty output directory"
            )
        for entry in stage.iterdir():
            os.replace(entry, out / entry.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
