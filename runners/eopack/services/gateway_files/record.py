"""Scheduler preload of the local Dask Gateway (copied as ``eopack_record.py``; edits are overwritten).

A plugin that records what the cluster did, so a test (or an operator) can prove after the fact
which workers a run got and that the tasks ran there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin


class EopackRecord(SchedulerPlugin):  # type: ignore[misc]
    name = "eopack-record"

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        cluster = os.environ.get("DASK_GATEWAY_CLUSTER_NAME", "unknown")
        self.path = Path(os.environ["EOPACK_GATEWAY_LOGS"]) / cluster / "record.json"
        self.data: dict[str, Any] = {
            "cluster": cluster,
            "scheduler_pid": os.getpid(),
            "started": time.time(),
            "closed": None,
            "tasks_completed": 0,
            "tasks_erred": 0,
            "max_workers": 0,
            "workers": {},
        }

    def add_worker(self, scheduler: Any = None, worker: Any = None, **kwargs: Any) -> None:
        ws = self.scheduler.workers.get(worker)
        if ws is not None:
            self.data["workers"][worker] = {
                "name": str(ws.name),
                "nthreads": ws.nthreads,
                "memory_limit": ws.memory_limit,
                "pid": ws.pid,
            }
        self.data["max_workers"] = max(self.data["max_workers"], len(self.scheduler.workers))
        self.write()

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start == "processing" and finish == "memory":
            self.data["tasks_completed"] += 1
        elif finish == "erred":
            self.data["tasks_erred"] += 1

    def record(self) -> dict[str, Any]:
        return dict(self.data)

    async def close(self) -> None:
        self.data["closed"] = time.time()
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def dask_setup(scheduler: Any) -> None:
    scheduler.add_plugin(EopackRecord(scheduler))
