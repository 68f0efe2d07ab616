"""Derive odd catalogs from a generated one: copy the tree, then edit every item document."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["edited_copy"]


def edited_copy(catalog: Path, dst: Path, edit: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Path:
    """Copy the catalog folder of ``catalog`` (catalog.json) to ``dst``; ``edit`` each item dict.

    ``edit`` changes the dict in place (or returns a replacement); the copy's catalog.json is returned.
    Asset hrefs are relative, so the copy is self-contained.
    """
    shutil.copytree(catalog.parent, dst, ignore=shutil.ignore_patterns("generator.json"))
    for path in sorted(dst.rglob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("type") != "Feature":
            continue
        changed = edit(doc)
        path.write_text(json.dumps(changed if changed is not None else doc, indent=2))
    return dst / "catalog.json"
