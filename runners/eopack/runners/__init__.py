"""One module per runner behind a registry of lazily imported factories (like Toil's batch systems)."""

from .base import REGISTRY, Runner, RunOptions, RunResult, RunStatus, get_runner

__all__ = ["REGISTRY", "RunOptions", "RunResult", "RunStatus", "Runner", "get_runner"]
