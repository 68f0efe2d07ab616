"""A small OGC API Processes server: a boundary double for ZOO-Project, which cannot run here.

It follows the exchanges of seed 001 and the OGC API Processes Part 1 (Core) and Part 2 (Deploy,
Replace, Undeploy) specifications, and nothing more:

* ``POST /processes`` with ``{"executionUnit": {"href", "type": "application/cwl"}}`` (the CWL is
  fetched from ``href``: file:// and http(s) URLs) or the CWL itself (``Content-Type:
  application/cwl+yaml``); ``?w=`` picks the Workflow. ``201`` + ``Location: /processes/{id}``;
  ``409`` if it exists. ``PUT /processes/{id}`` replaces, ``DELETE /processes/{id}`` undeploys (204).
* ``POST /processes/{id}/execution``: required inputs (no default, not nullable) are checked (400);
  ``Prefer: respond-async`` gives ``201`` + ``Location: /jobs/{jobID}`` + statusInfo; without it the
  job runs synchronously (200 + results document).
* ``GET /jobs/{id}``: statusInfo; each poll moves an async job accepted → running → successful (or
  failed, when an input value is ``"fail"``). ``GET /jobs/{id}/results``: the results document, or
  404 ``result-not-ready`` before. ``DELETE /jobs/{id}``: dismissed.
* ``GET /jobs`` (Part 1 job list, ``processID``/``status``/``limit`` filters): ``{"jobs": [statusInfo],
  "links", "numberTotal"}``, a ``rel="next"`` link when ``limit`` cuts the list.
* ``GET /processes/{id}/package`` (Part 2): ``Accept: application/cwl+yaml`` gives the CWL as deployed;
  ``application/ogcapppkg+json`` the JSON application package (as deployed, or wrapping the CWL).
* Errors are exception documents (``type``, ``title``, ``status``, ``detail``).
* Auth: when ``token`` or ``basic`` is set, anything else gets 401.

What a real ZOO-Project DRU answered (docs/interop.md; tests/test_ogc.py checks each of these here):

* deploy: ``201``, ``Location: .../processes/{id}``, the body is the process summary itself (not
  wrapped); the JSON package comes as ``Content-Type: application/ogcapppkg+json``; ``?w=`` names
  the Workflow (also on ``PUT``); a second deploy is ``409`` with type ``.../ogcapi-processes-2/1.0/
  duplicated-process``; ``PUT`` and ``DELETE /processes/{id}`` answer ``204``.
* an input with a ``default`` but a non-null type (``boolean``, ``default: false``) is required
  (``minOccurs`` 1) in the deployed description: a client must send the value.
* Directory inputs are declared ``type: string, format: uri`` and taken by value; an ``href`` object is
  a reference the server downloads (here: refused for a string input, 400).
* execute without ``Prefer: respond-async`` on a deployed (mutable) process: ``500`` "The synchronous
  mode is not allowed for mutable services."; with it: ``201``, ``Location: .../jobs/{id}``,
  ``Preference-Applied: respond-async`` and a statusInfo whose status is already ``running``.
* status values seen: ``running``, ``failed``, ``dismissed`` (``successful`` per the standard).
  ``DELETE /jobs/{id}``: ``200`` + statusInfo ``dismissed``. Unknown job: ``404`` ``no-such-job``.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ruamel.yaml import YAML

EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
EXC2 = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"


def _short(value: str) -> str:
    return str(value).rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _entries(section: Any) -> list[dict[str, Any]]:
    if isinstance(section, dict):
        return [{"id": k, **(v if isinstance(v, dict) else {"type": v})} for k, v in section.items()]
    return list(section or [])


def _nullable(entry: dict[str, Any]) -> bool:
    """Optional for ZOO-Project's DRU: a nullable type. A ``default`` alone does not make it optional."""
    typ = entry.get("type")
    return (isinstance(typ, str) and typ.endswith("?")) or (isinstance(typ, list) and "null" in typ)


def _schema(entry: dict[str, Any]) -> dict[str, Any]:
    typ = entry.get("type")
    base = typ.rstrip("?") if isinstance(typ, str) else next((t for t in typ or [] if t != "null"), "")
    if base in ("Directory", "File"):
        return {"type": "string", "format": "uri"}
    return {
        "type": {"int": "integer", "long": "integer", "float": "number", "double": "number"}.get(
            str(base), "boolean" if base == "boolean" else "string"
        )
    }


@dataclass
class State:
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)


class OgcServer:
    """``with OgcServer(token="t") as srv: srv.url`` — the API root (``.../ogc-api``)."""

    def __init__(self, token: str | None = None, basic: tuple[str, str] | None = None) -> None:
        self.token, self.basic = token, basic
        self.state = State()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_PUT(self) -> None:
                server._handle(self, "PUT")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/eoepcauser/ogc-api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> OgcServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- protocol -----------------------------------------------------------------------------

    def _authorized(self, headers: Any) -> bool:
        given = headers.get("Authorization", "")
        if self.token:
            return bool(given == f"Bearer {self.token}")
        if self.basic:
            expected = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return bool(given == f"Basic {expected}")
        return True

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(h.path)
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.state.requests.append((method, h.path, dict(h.headers), body))
        prefix = urlsplit(self.url).path
        if not split.path.startswith(prefix):
            return self._send(h, 404, self._exc("not-found", 404, "no such path"))
        if not self._authorized(h.headers):
            return self._send(h, 401, {"type": "unauthorized", "title": "Unauthorized", "status": 401})
        parts = [p for p in split.path[len(prefix) :].split("/") if p]
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        try:
            status, payload, headers = self._route(method, parts, query, h.headers, body)
        except ValueError as err:
            status, payload, headers = 400, self._exc("invalid-parameter", 400, str(err)), {}
        self._send(h, status, payload, headers)

    def _route(
        self, method: str, parts: list[str], query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        procs, jobs = self.state.processes, self.state.jobs
        if parts == ["processes"] and method == "GET":
            return 200, {"processes": [self._summary(p) for p in procs.values()], "links": []}, {}
        if parts == ["processes"] and method == "POST":
            proc = self._deployable(query, headers, body)
            if proc["id"] in procs:
                return 409, self._exc2("duplicated-process", 409, f"process {proc['id']} exists"), {}
            procs[proc["id"]] = proc
            return 201, self._summary(proc), {"Location": f"{self.url}/processes/{proc['id']}"}
        if parts == ["jobs"] and method == "GET":
            return self._jobs(query)
        if len(parts) == 3 and parts[0] == "processes" and parts[2] == "package" and method == "GET":
            if parts[1] not in procs:
                return 404, self._exc("no-such-process", 404, f"process {parts[1]} not found"), {}
            return self._package(procs[parts[1]], headers.get("Accept", ""))
        if len(parts) == 2 and parts[0] == "processes":
            pid = parts[1]
            if pid not in procs:
                return 404, self._exc("no-such-process", 404, f"process {pid} not found"), {}
            if method == "GET":
                return 200, self._public(procs[pid]), {}
            if method == "DELETE":
                del procs[pid]
                return 204, None, {}
            if method == "PUT":
                procs[pid] = self._deployable({"w": pid, **query}, headers, body)
                return 204, None, {}
        if len(parts) == 3 and parts[0] == "processes" and parts[2] == "execution" and method == "POST":
            return self._execute(parts[1], headers, body)
        if len(parts) >= 2 and parts[0] == "jobs":
            job = jobs.get(parts[1])
            if job is None:
                return 404, self._exc("no-such-job", 404, f"job {parts[1]} not found"), {}
            if len(parts) == 2 and method == "GET":
                self._advance(job)
                return 200, self._status_info(job), {}
            if len(parts) == 2 and method == "DELETE":
                job["status"] = "dismissed"
                return 200, self._status_info(job), {}
            if parts[2:] == ["results"] and method == "GET":
                if job["status"] == "failed":
                    return 500, self._exc("job-results-failed", 500, job["message"]), {}
                if job["status"] != "successful":
                    return 404, self._exc("result-not-ready", 404, f"job is {job['status']}"), {}
                return 200, job["results"], {}
        return 405 if parts else 404, self._exc("not-allowed", 405, f"{method} /{'/'.join(parts)}"), {}

    def _deployable(self, query: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        ctype = headers.get("Content-Type", "").split(";")[0].strip()
        package: Any = None
        if ctype in ("application/ogcapppkg+json", "application/json"):
            package = json.loads(body or b"{}")
            unit = package.get("executionUnit") or {}
            if unit.get("type") not in ("application/cwl", "application/cwl+yaml") or not unit.get("href"):
                raise ValueError("executionUnit needs href and type application/cwl")
            with urllib.request.urlopen(unit["href"], timeout=10) as resp:
                text = resp.read().decode()
        elif ctype in ("application/cwl+yaml", "application/cwl"):
            text = body.decode()
        else:
            raise ValueError(f"unsupported Content-Type {ctype!r}")
        cwl = YAML(typ="safe", pure=True).load(text)
        graph = cwl.get("$graph", [cwl])
        flows = [p for p in graph if p.get("class") == "Workflow"]
        wanted = query.get("w")
        flow = next((f for f in flows if _short(f.get("id", "")) == wanted), None) if wanted else None
        flow = flow or (flows[0] if len(flows) == 1 else None)
        if flow is None:
            raise ValueError("cannot tell which Workflow to deploy: give ?w=<id>")
        return {
            "package": package,
            "cwl": text,
            "id": _short(flow["id"]),
            "title": flow.get("label", ""),
            "description": flow.get("doc", ""),
            "version": str(cwl.get("s:softwareVersion", "")),
            "jobControlOptions": ["async-execute", "sync-execute"],
            "inputs": {
                _short(i["id"]): {
                    "title": i.get("label", ""),
                    "minOccurs": 0 if _nullable(i) else 1,
                    "maxOccurs": 1,
                    "schema": _schema(i),
                }
                for i in _entries(flow.get("inputs"))
            },
            "outputs": {
                _short(o["id"]): {"title": o.get("label", "")} for o in _entries(flow.get("outputs"))
            },
        }

    def _execute(self, pid: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        proc = self.state.processes.get(pid)
        if proc is None:
            return 404, self._exc("no-such-process", 404, f"process {pid} not found"), {}
        inputs = json.loads(body or b"{}").get("inputs", {})
        missing = [k for k, v in proc["inputs"].items() if v["minOccurs"] and k not in inputs]
        unknown = [k for k in inputs if k not in proc["inputs"]]
        by_ref = [
            k
            for k, v in inputs.items()
            if k in proc["inputs"]
            and proc["inputs"][k]["schema"].get("format") == "uri"
            and any(isinstance(x, dict) for x in (v if isinstance(v, list) else [v]))
        ]
        if missing or unknown or by_ref:
            parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
            parts += [f"{k} is declared type string, format uri: send the URL by value" for k in by_ref]
            detail = "; ".join(parts)
            return 400, self._exc("invalid-parameter", 400, detail), {}
        if "respond-async" not in headers.get("Prefer", ""):
            detail = "The synchronous mode is not allowed for mutable services."
            return 500, {"title": "NoApplicableCode", "type": "NoApplicableCode", "detail": detail}, {}
        job_id = f"job-{next(self.state.ids)}"
        fail = "fail" in json.dumps(inputs)
        job = {
            "jobID": job_id,
            "processID": pid,
            "status": "running",  # ZOO-Project answers the 201 with the job already running
            "inputs": inputs,
            "fail": fail,
            "message": "tool exited 1" if fail else "",
            "results": {
                out: {
                    "href": f"https://results.example.org/{job_id}/{out}/catalog.json",
                    "type": "application/json",
                }
                for out in proc["outputs"]
            },
        }
        self.state.jobs[job_id] = job
        headers_out = {"Location": f"{self.url}/jobs/{job_id}", "Preference-Applied": "respond-async"}
        return 201, self._status_info(job), headers_out

    def _jobs(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        jobs = [
            self._status_info(j)
            for j in self.state.jobs.values()
            if query.get("processID", j["processID"]) == j["processID"]
            and query.get("status", j["status"]) == j["status"]
        ]
        links = [{"rel": "self", "type": "application/json", "href": f"{self.url}/jobs"}]
        limit = int(query.get("limit", 1000))
        if len(jobs) > limit:
            links.append(
                {
                    "rel": "next",
                    "type": "application/json",
                    "href": f"{self.url}/jobs?limit={limit}&skip={limit}",
                }
            )
        return 200, {"jobs": jobs[:limit], "links": links, "numberTotal": len(jobs)}, {}

    @staticmethod
    def _package(proc: dict[str, Any], accept: str) -> tuple[int, Any, dict[str, str]]:
        if "application/cwl" in accept:
            return 200, proc["cwl"], {"Content-Type": "application/cwl+yaml"}
        package = proc["package"] or {
            "executionUnit": {"value": proc["cwl"], "mediaType": "application/cwl+yaml"}
        }
        return 200, package, {"Content-Type": "application/ogcapppkg+json"}

    @staticmethod
    def _advance(job: dict[str, Any]) -> None:
        nxt = {"running": "failed" if job["fail"] else "successful"}
        job["status"] = nxt.get(job["status"], job["status"])

    def _status_info(self, job: dict[str, Any]) -> dict[str, Any]:
        info = {
            "jobID": job["jobID"],
            "processID": job["processID"],
            "type": "process",
            "status": job["status"],
            "message": job["message"] or job["status"],
            "links": [{"rel": "self", "href": f"{self.url}/jobs/{job['jobID']}", "type": "application/json"}],
        }
        if job["status"] == "successful":
            info["links"].append(
                {
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                    "href": f"{self.url}/jobs/{job['jobID']}/results",
                    "type": "application/json",
                }
            )
        return info

    def _summary(self, proc: dict[str, Any]) -> dict[str, Any]:
        return {k: proc[k] for k in ("id", "title", "version", "jobControlOptions")}

    def _public(self, proc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in proc.items() if k not in ("package", "cwl")}

    @staticmethod
    def _exc(kind: str, status: int, detail: str) -> dict[str, Any]:
        return {"type": f"{EXC}/{kind}", "title": kind.replace("-", " "), "status": status, "detail": detail}

    @staticmethod
    def _exc2(kind: str, status: int, detail: str) -> dict[str, Any]:
        return {"type": f"{EXC2}/{kind}", "title": kind.replace("-", " "), "status": status, "detail": detail}

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        h.send_response(status)
        headers = dict(headers or {})
        ctype = headers.pop("Content-Type", "application/json")
        for key, value in headers.items():
            h.send_header(key, value)
        if payload is None:
            data = b""
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        if data:
            h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
