"""Runner and tool read the Dask requirement's memory strings the same way (issue 18, item 3).

One table goes through both parsers: ``eopack.dask.memory_bytes`` (the runner lowers and validates
the requirement with it) and ``eopack_eo_common.dask_cluster.parse_memory`` (the tool sizes its
cluster with it). A string one side accepts and the other refuses would pass `eopack validate` and
then fail inside the container, or the reverse.
"""

from __future__ import annotations

import pytest

from eopack.dask import memory_bytes
from eopack_eo_common.dask_cluster import parse_memory
from eopack_eo_common.errors import ToolInputError

GIB, GB = 1024**3, 1000**3
ACCEPTED = [
    ("2G", 2 * GIB),
    ("2g", 2 * GIB),
    ("2GB", 2 * GB),
    ("2gb", 2 * GB),
    ("512M", 512 * 1024**2),
    ("512MB", 512 * 1000**2),
    ("100K", 100 * 1024),
    ("100KB", 100 * 1000),
    ("1T", 1024**4),
    ("1TB", 1000**4),
    ("1.5G", int(1.5 * GIB)),
    (" 2G ", 2 * GIB),
    ("2 G", 2 * GIB),
    ("1048576", 1048576),
]
REFUSED = ["2Gi", "2GiB", "512Mi", "G", "", "-1G", "2X", "two", "2.G", "1e9"]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_both_sides_accept_the_same_strings_with_the_same_bytes(text: str, expected: int) -> None:
    assert memory_bytes(text) == expected
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", REFUSED)
def test_both_sides_refuse_the_same_strings(text: str) -> None:
    with pytest.raises(ValueError, match="K, M, G, T"):
        memory_bytes(text)
    with pytest.raises(ToolInputError, match="K, M, G, T"):
        parse_memory(text)
