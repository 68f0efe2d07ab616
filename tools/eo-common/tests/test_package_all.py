"""``eopack_eo_common.__all__`` names every module of the package, so a new one cannot be forgotten."""

from __future__ import annotations

import importlib
import pkgutil

import eopack_eo_common


def test_all_lists_every_module() -> None:
    modules = {m.name for m in pkgutil.iter_modules(eopack_eo_common.__path__) if not m.name.startswith("_")}
    assert sorted(eopack_eo_common.__all__) == sorted(modules)
    for name in modules:
        importlib.import_module(f"eopack_eo_common.{name}")
