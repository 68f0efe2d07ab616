"""The WES workers' engine shim (wes/eopack_wes_engine.py) loaded as a module, for tests of its parts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SHIM = Path(__file__).resolve().parents[2] / "wes" / "eopack_wes_engine.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eopack_wes_engine", SHIM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
