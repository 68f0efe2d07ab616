"""``report.html`` of a run: one self-contained page, readable offline, beside ``.eopack/``.

Package, version and images (with digests); inputs (the job, the STAC items used); outputs (quicklooks
inline as data URIs, the STAC items, file sizes); timings per step and the usage (``usage.json``); the
Dask performance report when the tool made one; the tool's own log lines. Built from ``runinfo`` only.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from .runinfo import RunInfo

__all__ = ["MAX_QUICKLOOKS", "REPORT_FILE", "render", "write_report"]

REPORT_FILE = "report.html"
MAX_QUICKLOOKS = 36  # a mosaic over years has hundreds; the page stays small
MAX_LOG_LINES = 400
# The tools log as "2026-12-04 15:09:21,760 eopack_ndvi.core INFO ..." (eo-common's logging setup).
_TOOL_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ [A-Z]+ ")
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em;max-height:30em}
.ql{display:inline-block;margin:4px;text-align:center;font-size:.75em}.ql img{max-width:240px;
max-height:240px;border:1px solid #ccc;image-rendering:pixelated}.ok{color:#17752a}.bad{color:#b00020}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=num>{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _quicklooks(info: RunInfo) -> tuple[str, int]:
    figures = []
    for item in info.items:
        for key, asset in item.get("assets", {}).items():
            if "overview" not in (asset.get("roles") or []) and key != "quicklook":
                continue
            path = (Path(item["_path"]).parent / asset["href"]).resolve()
            if not path.is_file() or path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                continue
            mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
            data = base64.b64encode(path.read_bytes()).decode()
            figures.append(
                f'<figure class=ql><img alt="{_e(item["id"])}" src="data:{mime};base64,{data}">'
                f"<figcaption>{_e(item['id'])}</figcaption></figure>"
            )
            break
    shown = figures[:MAX_QUICKLOOKS]
    more = f"<p>{len(figures) - len(shown)} more not shown.</p>" if len(figures) > len(shown) else ""
    return "".join(shown) + more, len(shown)


def _usage(usage: dict[str, Any]) -> str:
    if not usage:
        return "<p>No usage.json (the run was not measured).</p>"

    def fmt(v: Any, digits: int = 1) -> str:
        return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    summary = _table(
        ["wall s", "CPU s", "peak memory MB", "Dask worker-s", "requested CPU h", "runner"],
        [
            [
                fmt(usage.get("elapsed_seconds")),
                fmt(usage.get("cpu_seconds")),
                fmt(usage.get("peak_memory_megabytes")),
                fmt(usage.get("dask_worker_seconds")),
                fmt(usage.get("total_cpu_hours"), 4),
                usage.get("runner", ""),
            ]
        ],
        {0, 1, 2, 3, 4},
    )
    steps = _table(
        ["step", "start", "finish", "wall s", "CPU s", "peak memory MB", "requested cores", "requested MB"],
        [
            [
                c.get("name", ""),
                c.get("start_time", ""),
                c.get("finish_time", ""),
                fmt(c.get("elapsed_seconds")),
                fmt(c.get("cpu_seconds")),
                fmt(c.get("peak_memory_megabytes")),
                fmt(c.get("cpus"), 0),
                fmt(c.get("ram_megabytes"), 0),
            ]
            for c in usage.get("children", [])
        ],
        {3, 4, 5, 6, 7},
    )
    note = f"<p>{_e(usage['note'])}</p>" if usage.get("note") else ""
    return summary + "<h3>Timings per step</h3>" + steps + note


def render(info: RunInfo) -> str:
    """The page for ``info``."""
    status = '<span class="ok">succeeded</span>' if info.succeeded else '<span class="bad">no outputs</span>'
    images = _table(
        ["image", "image id", "repository digests"],
        [
            [i.ref, i.image_id or "(not used: ran without containers)", " ".join(i.repo_digests)]
            for i in info.images
        ],
    )
    job_rows = [[k, json.dumps(v) if isinstance(v, dict | list) else v] for k, v in info.job.items()]
    sources = (
        "<p>" + ", ".join(f"<code>{_e(s)}</code>" for s in info.source_items) + "</p>"
        if info.source_items
        else "<p>The outputs name no source items.</p>"
    )
    quicklooks, _ = _quicklooks(info)
    items = _table(
        ["item", "datetime", "bbox", "assets"],
        [
            [
                i.get("id"),
                i.get("properties", {}).get("datetime") or i.get("properties", {}).get("start_datetime"),
                ", ".join(f"{b:.4f}" for b in i.get("bbox") or []),
                ", ".join(i.get("assets", {})),
            ]
            for i in info.items
        ],
    )
    total = sum(f.size for f in info.output_files)
    files = _table(
        ["file", "size", "sha256"],
        [[f.path.as_posix(), _size(f.size), f.sha256[:16] + "…"] for f in info.output_files],
        {1},
    )
    dask = (
        "".join(
            f'<p><a href="{_e(p.relative_to(info.run_dir).as_posix())}">{_e(p.relative_to(info.run_dir))}</a> '
            "(Dask's own page; its charts load Bokeh from the web)</p>"
            for p in info.dask_reports
        )
        or "<p>None made (tools write one with <code>--dask-report</code>).</p>"
    )
    lines = []
    if info.log is not None and info.log.exists():
        lines = [ln for ln in info.log.read_text(errors="replace").splitlines() if _TOOL_LINE.match(ln)]
    log = "\n".join(lines[-MAX_LOG_LINES:]) or "(no tool log lines)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(info.app)} {_e(info.version)} — eopack run report</title><style>{_STYLE}</style></head>
<body>
<h1>{_e(info.app)} {_e(info.version)} on {_e(info.runner)}: {status}</h1>
<p>{_e(info.label)}. Run directory <code>{_e(info.run_dir)}</code>.</p>
<h2>Package</h2>
{_table(["app", "version", "runner", "containers"], [[info.app, info.version, info.runner, info.used_containers]])}
<h3>Images</h3>{images}
<h3>Command</h3><pre>{_e(info.command)}</pre>
<h2>Inputs</h2>{_table(["input", "value"], job_rows)}
<h3>STAC items used ({len(info.source_items)})</h3>{sources}
<h2>Outputs</h2>
<h3 id="quicklooks">Quicklooks</h3>{quicklooks or "<p>No quicklooks.</p>"}
<h3>STAC items ({len(info.items)})</h3>{items}
<h3>Files ({len(info.output_files)}, {_size(total)})</h3>{files}
<h2>Usage</h2>{_usage(info.usage)}
<h2>Dask performance report</h2>{dask}
<h2>Tool log</h2><pre>{_e(log)}</pre>
<p>Provenance: <code>ro-crate-metadata.json</code> (Workflow Run RO-Crate) beside this page.</p>
</body></html>
"""


def write_report(info: RunInfo, path: Path | None = None) -> Path:
    path = path or info.run_dir / REPORT_FILE
    path.write_text(render(info))
    return path
