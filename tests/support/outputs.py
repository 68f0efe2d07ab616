"""Compare two run directories of the same job: same files, same pixels, same STAC.

What legitimately differs between two runs (timestamps of the run, run paths, the paths engines
stage inputs at) is normalised away; everything else must be equal.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

__all__ = ["assert_same_outputs", "normalised"]


# Where engines stage inputs: cwltool's container mounts (/var/lib/cwl/stg<uuid>), temp dirs.
STAGING = re.compile(r"/var/lib/cwl/stg[0-9a-f-]+|tmp[a-z0-9_]{8}")


def is_wall_clock(value: Any) -> bool:
    """True for an ISO timestamp of the last day: the time of the run, not of the data."""
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return when.tzinfo is not None and abs(dt.datetime.now(dt.UTC) - when) < dt.timedelta(days=1)


def normalised(value: Any, paths: tuple[str, ...]) -> Any:
    """A STAC document without what legitimately differs between two runs: timestamps and run paths."""
    if isinstance(value, dict):
        return {
            k: "<now>" if is_wall_clock(v) else normalised(v, paths)
            for k, v in value.items()
            if k not in {"created", "updated"}
        }
    if isinstance(value, list):
        return [normalised(v, paths) for v in value]
    if isinstance(value, str):
        for path in paths:
            value = value.replace(path, "<run>")
        value = STAGING.sub("<staged>", value)
    return value


def assert_same_outputs(a: Path, b: Path) -> None:
    """The two run directories hold the same results: file names, pixels, bytes, STAC."""
    outs_a = json.loads((a / ".eopack" / "outputs.json").read_text())
    outs_b = json.loads((b / ".eopack" / "outputs.json").read_text())
    assert sorted(outs_a) == sorted(outs_b)
    for key in outs_a:
        da, db = a / key, b / key
        files_a = sorted(p.relative_to(da).as_posix() for p in da.rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(db).as_posix() for p in db.rglob("*") if p.is_file())
        assert files_a == files_b, key
        for rel in files_a:
            fa, fb = da / rel, db / rel
            if fa.suffix in {".tif", ".tiff"}:
                with rasterio.open(fa) as ra, rasterio.open(fb) as rb:
                    assert (ra.crs, ra.transform, ra.shape) == (rb.crs, rb.transform, rb.shape), rel
                    np.testing.assert_array_equal(ra.read(), rb.read(), err_msg=rel)
            elif fa.suffix == ".json":
                paths = (str(a), str(b))
                assert normalised(json.loads(fa.read_text()), paths) == normalised(
                    json.loads(fb.read_text()), paths
                ), rel
            elif fa.suffix in {".html", ".gz", ".log"}:
                continue  # reports and archives embed times; their presence is what counts
            else:
                assert fa.read_bytes() == fb.read_bytes(), rel
