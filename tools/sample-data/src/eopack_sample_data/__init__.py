"""Deterministic, realistic sample inputs for eopack (DESIGN.md §6); see ``eopack_sample_data.s2``."""

from __future__ import annotations

__all__: list[str] = []
