"""The process registry: openeo-processes-dask's implementations plus our own I/O processes.

openeo-processes-dask implements the openEO processes on xarray/dask, but its data access
(``load_stac``, and ``load_collection`` left to each backend) does not follow our rules: items must
come from eo-common's search (a STAC API *or* a staged catalog), reflectance must be float32 with
scale/offset applied, and results must be COGs in a STAC catalog. So ``load_collection`` and
``save_result`` are ours, ``load_stac`` and ``run_udf`` (network access, arbitrary code with extra
dependencies) are left out, and everything else is taken from the library unchanged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from eopack_eo_common.errors import ToolInputError

from .graph import ProcessGraphDoc

__all__ = ["EXCLUDED", "build_registry", "check_supported", "library_processes"]

log = logging.getLogger(__name__)

# Implementations of openeo-processes-dask we do not offer, and why (see the module doc).
EXCLUDED = {"load_stac": "reads data around eo-common's search", "run_udf": "runs arbitrary code"}


def _stand_in_for_stac_validator() -> None:
    """Let the implementations import when ``stac-validator`` is not installed.

    openeo-processes-dask imports ``stac_validator`` at module level, for ``load_stac`` only, but does
    not declare it outside its ``[implementations]`` extra (which we cannot install: it needs a GDAL
    build). ``load_stac`` is not offered here (``EXCLUDED``), so a stand-in that fails when used is
    enough; the real package is used whenever it is installed.
    """
    import importlib.util
    import sys
    import types

    if "stac_validator" in sys.modules or importlib.util.find_spec("stac_validator") is not None:
        return

    class _Unavailable:
        def __getattr__(self, name: str) -> Any:
            raise ImportError("stac-validator is not installed (only openEO load_stac needs it)")

    stand_in = types.ModuleType("stac_validator")
    stand_in.stac_validator = _Unavailable()  # type: ignore[attr-defined]
    sys.modules["stac_validator"] = stand_in


def _import_implementations() -> Any:
    _stand_in_for_stac_validator()
    # The package logs a warning for its optional ML processes on import; that is not our user's concern.
    logger = logging.getLogger("openeo_processes_dask.process_implementations")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from openeo_processes_dask.process_implementations import core
    finally:
        logger.setLevel(level)
    return core


def _public_name(func: Callable[..., Any]) -> str:
    # Python keywords are prefixed with "_" (``_and``, ``_if``); the registry strips it, so do we.
    return func.__name__.strip("_")


@functools.cache
def library_processes() -> dict[str, Callable[..., Any]]:
    """openeo-processes-dask's implementations by openEO process id, minus ``EXCLUDED``."""
    core = _import_implementations()
    return {_public_name(f): f for f in core.standard_processes if _public_name(f) not in EXCLUDED}


def _named_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's openEO errors (bad dimension, missing band...) into one-line input errors.

    Their messages say what is wrong but not in which process; the user fixes the graph, so the
    process id is named and the exit code is the one for bad input.
    """
    from openeo_processes_dask.process_implementations.exceptions import OpenEOException

    name = _public_name(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OpenEOException as err:
            raise ToolInputError(f"process {name!r} failed: {type(err).__name__}: {err}") from err

    return wrapper


def build_registry(own: dict[str, Callable[..., Any]]) -> Any:
    """A ``ProcessRegistry`` of the library's processes with ``own`` taking precedence."""
    from openeo_pg_parser_networkx import Process, ProcessRegistry
    from openeo_processes_dask import specs

    core = _import_implementations()
    registry = ProcessRegistry(wrap_funcs=[core.process, _named_errors])
    implementations = {**library_processes(), **own}
    for name, func in implementations.items():
        spec = getattr(specs, name, None) or getattr(specs, f"_{name}", None) or {"id": name}
        registry[name] = Process(spec=spec, implementation=func)
    return registry


def check_supported(graph: ProcessGraphDoc, supported: Iterable[str]) -> None:
    """Refuse the graph, naming the first unsupported process, its place, and what is supported."""
    known = set(supported)
    for path, pid in graph.processes:
        if pid not in known:
            reason = f" ({EXCLUDED[pid]})" if pid in EXCLUDED else ""
            raise ToolInputError(
                f"process {pid!r} at {path} is not supported{reason}; supported: {', '.join(sorted(known))}"
            )
