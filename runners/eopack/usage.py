"""What a run used: wall time, CPU seconds, peak memory per step and Dask worker-seconds (``usage.json``).

One shape for every runner, modelled on Calrissian's ``--usage-report`` (``calrissian/report.py``):
the same top-level keys (``start_time``, ``finish_time``, ``elapsed_seconds``, ``total_cpu_hours``,
``total_ram_megabyte_hours``, ``total_tasks``, ``max_parallel_*``, ``children``) where ``cpus`` and
``ram_megabytes`` are the *requested* resources as in Calrissian, plus what was *measured*:
``cpu_seconds`` (user + system of ``eopack run`` and the processes it waited for: the engine and,
when they run here, the tools), ``peak_memory_megabytes``
(per step as the engine reports it, ``Max memory used``) and ``dask_worker_seconds`` (workers × the
time the tool held its cluster, from the tool's own log lines).

The meter is cheap: two ``getrusage`` calls and a substring test per log line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import resource
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "USAGE_FILE", "Meter", "dask_worker_seconds", "steps_from_lines", "write_usage"]

USAGE_FILE = "usage.json"
FORMAT = "eopack-usage/1 (Calrissian --usage-report shape plus measured figures)"
SECONDS_PER_HOUR = 3600.0

# cwltool (and Toil, which runs cwltool's jobs) mark steps like this; Toil's leader names its jobs.
_STEP_START = re.compile(r"\[step (?P<name>[^\]]+)\] start")
_STEP_END = re.compile(r"\[step (?P<name>[^\]]+)\] completed (?P<status>\w+)")
_TOIL_ISSUED = re.compile(r"Issued job '(?:CWLJob|CWLJobWrapper)' (?P<name>\S+)")
_TOIL_ENDED = re.compile(r"Job ended: '(?:CWLJob|CWLJobWrapper)' (?P<name>\S+)")
_MAX_MEMORY = re.compile(r"\[job (?P<name>[^\]]+)\] Max memory used: (?P<mib>\d+)\s*MiB")
_TOOL_TIME = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_DASK_WORKERS = re.compile(
    r"Dask: (?:local cluster, (?P<threads>\d+) thread|(?P<workers>\d+) worker\(s\) ready)"
)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def process_start() -> float:
    """When this process started (epoch seconds), from /proc; now when /proc cannot tell."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(0.0, age)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


@dataclass
class Meter:
    """Measure a run as its user sees it: ``eopack run`` from its start to the engine's end.

    The run's wall time starts when this process started; its CPU seconds are this process's and
    every child's it waited for (the engine, and through it the tools when they run here). Steps
    are timed by the arrival of the engine's marker lines: ``tee_process(..., on_line=m.line)``.
    """

    start: float = 0.0
    finish: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    events: list[tuple[float, str]] = field(default_factory=list)

    def __enter__(self) -> Meter:
        self.start = process_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish = time.time()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_seconds = _cpu(children) + _cpu(own)
        self.peak_rss_mb = max(children.ru_maxrss, own.ru_maxrss) * 1024 / 1e6  # KiB of the largest process

    def line(self, text: str) -> None:
        """Keep the arrival time of the lines that mark steps (the engines print no time of their own)."""
        if "[step " in text or "Job ended" in text or "Issued job" in text:
            self.events.append((time.time(), text))


def steps_from_lines(
    events: Iterable[tuple[float, str]], lines: Iterable[str], start: float, finish: float
) -> list[dict[str, Any]]:
    """One entry per step: its start and finish (from timed marker lines) and its peak memory."""
    steps: dict[str, dict[str, Any]] = {}
    for t, text in events:
        for pattern in (_STEP_START, _TOIL_ISSUED):
            if m := pattern.search(text):
                steps.setdefault(m["name"], {"name": m["name"], "start": t, "finish": None})
        for pattern in (_STEP_END, _TOIL_ENDED):
            if (m := pattern.search(text)) and m["name"] in steps:
                steps[m["name"]]["finish"] = t
    for text in lines:
        if m := _MAX_MEMORY.search(text):
            name = m["name"]
            entry = steps.setdefault(name, {"name": name, "start": None, "finish": None})
            entry["peak_memory_megabytes"] = round(int(m["mib"]) * 1.048576, 1)
    for entry in steps.values():
        entry["start"] = entry["start"] or start
        entry["finish"] = entry["finish"] or finish
    return list(steps.values())


def dask_worker_seconds(lines: Iterable[str]) -> float | None:
    """Workers × seconds from the tool's ``Dask: ...`` line to its last timed line; None without Dask."""
    total, workers, since, last = 0.0, 0, None, None
    for text in lines:
        stamp = _TOOL_TIME.match(text)
        t = dt.datetime.strptime(stamp["ts"], "%Y-%m-%d %H:%M:%S,%f").timestamp() if stamp else None
        if t is not None:
            last = t
        if (m := _DASK_WORKERS.search(text)) and t is not None:
            if since is not None and last is not None:
                total += workers * (t - since)
            workers, since = int(m["threads"] or m["workers"]), t
    if since is None or last is None:
        return None
    return round(total + workers * (last - since), 2)


def _requested(resources: Mapping[str, Any]) -> tuple[float, float]:
    cores = float(resources.get("coresMin") or 1)
    ram_mib = float(resources.get("ramMin") or 256)  # CWL's default ramMin
    return cores, ram_mib * 1.048576


def _max_parallel(children: list[dict[str, Any]], key: str | None) -> float:
    events = []
    for c in children:
        unit = c[key] if key else 1
        events += [(c["start"], 1, unit), (c["finish"], -1, unit)]
    count = best = 0.0
    for _, kind, unit in sorted(events, key=lambda e: (e[0], e[1])):
        count += unit * kind
        best = max(best, count)
    return best


def write_usage(
    meta: Path,
    runner: str,
    start: float,
    finish: float,
    steps: list[dict[str, Any]],
    resources: Mapping[str, Mapping[str, Any]],
    cpu_seconds: float | None,
    peak_memory_megabytes: float | None,
    worker_seconds: float | None,
    note: str = "",
) -> Path:
    """Write ``meta/usage.json``; ``resources`` maps a step name to its ResourceRequirement."""
    children = []
    for step in steps:
        cores, ram_mb = _requested(resources.get(step["name"], {}))
        elapsed = max(0.0, step["finish"] - step["start"])
        child = {
            "name": step["name"],
            "start_time": _iso(step["start"]),
            "finish_time": _iso(step["finish"]),
            "start": step["start"],
            "finish": step["finish"],
            "elapsed_seconds": round(elapsed, 3),
            "elapsed_hours": elapsed / SECONDS_PER_HOUR,
            "cpus": cores,
            "ram_megabytes": round(ram_mb, 1),
            "cpu_hours": cores * elapsed / SECONDS_PER_HOUR,
            "ram_megabyte_hours": ram_mb * elapsed / SECONDS_PER_HOUR,
            "peak_memory_megabytes": step.get("peak_memory_megabytes"),
            # Only a one-step run can attribute the measured CPU to its step.
            "cpu_seconds": round(cpu_seconds, 2) if cpu_seconds is not None and len(steps) == 1 else None,
        }
        children.append(child)
    elapsed = max(0.0, finish - start)
    doc = {
        "format": FORMAT,
        "runner": runner,
        "start_time": _iso(start),
        "finish_time": _iso(finish),
        "elapsed_seconds": round(elapsed, 3),
        "elapsed_hours": elapsed / SECONDS_PER_HOUR,
        "total_cpu_hours": sum(c["cpu_hours"] for c in children),
        "total_ram_megabyte_hours": sum(c["ram_megabyte_hours"] for c in children),
        "total_tasks": len(children),
        "max_parallel_cpus": _max_parallel(children, "cpus"),
        "max_parallel_ram_megabytes": _max_parallel(children, "ram_megabytes"),
        "max_parallel_tasks": _max_parallel(children, None),
        "cpu_seconds": round(cpu_seconds, 2) if cpu_seconds is not None else None,
        "peak_memory_megabytes": round(peak_memory_megabytes, 1) if peak_memory_megabytes else None,
        "dask_worker_seconds": worker_seconds,
        "note": note,
        "children": [{k: v for k, v in c.items() if k not in ("start", "finish")} for c in children],
    }
    path = meta / USAGE_FILE
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def step_resources(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each workflow step's ResourceRequirement (of the tool it runs), by step name and tool name."""
    graph = doc.get("$graph") or [doc]
    tools: dict[str, dict[str, Any]] = {}
    for proc in graph:
        reqs = proc.get("requirements") or {}
        items = reqs.items() if isinstance(reqs, dict) else ((r.get("class"), r) for r in reqs)
        for cls, req in items:
            if str(cls).endswith("ResourceRequirement"):
                tools[str(proc.get("id", "")).rsplit("#", 1)[-1]] = dict(req)
    out = dict(tools)
    for proc in graph:
        steps = proc.get("steps") or {}
        items = steps.items() if isinstance(steps, dict) else ((s.get("id"), s) for s in steps)
        for name, step in items:
            run = str(step.get("run", "")).rsplit("#", 1)[-1]
            if run in tools:
                out[str(name).rsplit("/", 1)[-1].rsplit("#", 1)[-1]] = tools[run]
    return out


def record(
    meta: Path,
    runner: str,
    meter: Meter,
    log: Path | None,
    doc: Mapping[str, Any],
    measured_here: bool = True,
    note: str = "",
) -> Path:
    """usage.json of a finished run, from the meter and the engine's log."""
    lines = log.read_text(errors="replace").splitlines() if log is not None and log.exists() else []
    steps = steps_from_lines(meter.events, lines, meter.start, meter.finish)
    if not steps:  # no step lines reached us (a remote engine): the workflow's steps over the run's time
        steps = [{"name": n, "start": meter.start, "finish": meter.finish} for n in _step_names(doc)]
    peaks = [s["peak_memory_megabytes"] for s in steps if s.get("peak_memory_megabytes")]
    return write_usage(
        meta,
        runner,
        meter.start,
        meter.finish,
        steps,
        step_resources(doc),
        meter.cpu_seconds if measured_here else None,
        max(peaks) if peaks else (meter.peak_rss_mb if measured_here else None),
        dask_worker_seconds(lines),
        note,
    )


def _step_names(doc: Mapping[str, Any]) -> list[str]:
    names = []
    for proc in doc.get("$graph") or [doc]:
        steps = proc.get("steps") or {}
        ids = steps.keys() if isinstance(steps, dict) else (s.get("id", "") for s in steps)
        names += [str(i).rsplit("/", 1)[-1].rsplit("#", 1)[-1] for i in ids]
    return names
