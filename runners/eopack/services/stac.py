"""A real STAC API on loopback: PostgreSQL + PostGIS + pgstac, stac-fastapi-pgstac, nginx for assets,
a tile server (titiler-pgstac) over the same database and STAC Browser: a small eoAPI.

Why a real server and not a mock: the app packages' "STAC API URL + search" input path must be tested
against the same software a platform runs (pgstac's CQL2, datetime and bbox semantics, HTTP Range on
COGs). Everything lives in one state directory (data, sockets, pid files, logs, configs), so any later
``eopack`` process can find, check and stop it, and several stacks can coexist on different ports.

Layout of the state directory::

    stack.json        ports, data dir, DB password, fingerprint of the loaded data (mode 600)
    pgdata/ pgsock/   PostgreSQL cluster and its unix socket (owned by the postgres user when root)
    nginx/            nginx.conf, nginx.pid and temp dirs of the asset server; browser-config.js
    tiler/            titiler-pgstac's working dir and unix socket (mode 700, or 710 to nginx's group)
    api/              uvicorn's working directory (stac-fastapi reads ./.env; this one has none)
    published/        assets copied by ``eopack publish``, served at ``<assets_url>/published/``

nginx (loopback TCP) is the one front: ``/`` the data dir, ``/published/``, ``/tiles/`` proxied to
titiler-pgstac on its unix socket (GET/HEAD only), ``/browser/`` the STAC Browser build of
``scripts/stac-browser.sh`` with a ``config.js`` pointing it at this stack's API.
    logs/             initdb.log postgres.log nginx-error.log nginx-access.log uvicorn.log setup.log
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from .. import package, sample_data
from ..clients.stac import STRUCTURAL_RELS
from ..errors import ServiceUnavailableError
from . import _proc
from .base import JsonState, Progress, Rollback, nginx, nginx_command, owned_pid, quiet, sweep, write_secret
from .stac_app import TOKEN_FILE_ENV

__all__ = [
    "DEFAULT_API_PORT",
    "DEFAULT_ASSETS_PORT",
    "DEFAULT_PG_PORT",
    "CatalogContent",
    "Component",
    "StacStack",
    "StackStatus",
    "browser_dist",
    "browser_url",
    "default_data_dir",
    "default_state_dir",
    "down",
    "find_local_stack",
    "preflight",
    "published_location",
    "read_catalog",
    "status",
    "up",
    "write_token",
]

SERVICE = "STAC API"
DEFAULT_PG_PORT = 5439
DEFAULT_API_PORT = 8089
DEFAULT_ASSETS_PORT = 8090
DB_NAME = DB_USER = "stac"
PG_OS_USER = "postgres"  # root may not run initdb/postgres; Debian's postgresql-common creates this user
SETUP_FIX = "Run `make setup` as root: scripts/bootstrap.sh installs postgresql-15-postgis-3 and nginx."


# ------------------------------------------------------------------ public results


@dataclass(frozen=True)
class StacStack:
    """A running stack: where to search, where the assets are, and which processes serve them."""

    api_url: str
    assets_url: str
    pids: dict[str, int]
    state_dir: Path
    data_dir: Path
    dsn: str
    collections: tuple[str, ...] = ()
    tiles_url: str | None = None
    browser: str | None = None  # STAC Browser's root URL; None when it is not built


@dataclass(frozen=True)
class Component:
    """One process of the stack as seen from outside: ``status`` builds these from pid files."""

    name: str
    up: bool
    pid: int | None
    url: str | None


@dataclass(frozen=True)
class StackStatus:
    """Every component's state; ``up`` only when all of them are."""

    state_dir: Path
    components: tuple[Component, ...]

    @property
    def up(self) -> bool:
        return all(c.up for c in self.components)

    def as_dict(self) -> dict[str, Any]:
        """The ``status --json`` document (stable keys for scripts)."""
        return {
            "state_dir": str(self.state_dir),
            "up": self.up,
            "components": {c.name: {"up": c.up, "pid": c.pid, "url": c.url} for c in self.components},
        }


@dataclass(frozen=True)
class CatalogContent:
    """Collections and items ready for pgstac: asset hrefs absolute URLs, file-relative links dropped."""

    collections: list[dict[str, Any]]
    items: list[dict[str, Any]]

    @property
    def fingerprint(self) -> str:
        """Changes whenever what would be loaded changes (data or asset base URL)."""
        blob = json.dumps([self.collections, self.items], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


# ------------------------------------------------------------------ state directory


class _Layout:
    """Every path of a stack, derived from its state dir (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pgdata, self.pgsock, self.logs = root / "pgdata", root / "pgsock", root / "logs"
        self.nginx = root / "nginx"
        self.nginx_conf, self.nginx_pid = self.nginx / "nginx.conf", self.nginx / "nginx.pid"
        self.api = root / "api"
        self.uvicorn_pid = self.api / "uvicorn.pid"
        self.state_file = root / "stack.json"
        self.published = root / "published"
        self.tiler = root / "tiler"
        self.tiler_sock, self.tiler_pid = self.tiler / "tiler.sock", self.tiler / "uvicorn.pid"
        self.browser_config = self.nginx / "browser-config.js"


@dataclass
class _State(JsonState):
    """What ``stack.json`` remembers between commands."""

    pg_port: int = DEFAULT_PG_PORT
    api_port: int = DEFAULT_API_PORT
    assets_port: int = DEFAULT_ASSETS_PORT
    data_dir: str = ""
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    fingerprint: str = ""

    def dsn(self, dbname: str = DB_NAME) -> str:
        return f"postgresql://{DB_USER}:{quote(self.password)}@{_proc.LOOPBACK}:{self.pg_port}/{dbname}"


def default_state_dir() -> Path:
    """``<repo>/runs/services/stac``: next to the runs, ignored by git, removed by ``make clean``.

    As root, PostgreSQL runs as the postgres user, who must walk down to its data dir: a checkout in
    ``/root`` or in a mode-700 folder is closed to it, so the stack of such a checkout lives in
    ``/var/lib/eopack/stac-<hash of the checkout's path>`` instead (one per checkout).
    """
    local = package.repo_root() / "runs" / "services" / "stac"
    try:
        closed = bool(_traversal_problems(local))
    except KeyError:  # no postgres user: preflight says what to install
        closed = False
    if not closed:
        return local
    digest = hashlib.sha256(str(package.repo_root().resolve()).encode()).hexdigest()[:12]
    return Path("/var/lib/eopack") / f"stac-{digest}"


def default_data_dir() -> Path:
    """``<repo>/data/sample``: where ``eopack-sample-data`` writes the demo catalog."""
    return sample_data.default_dir()


# ------------------------------------------------------------------ binaries and permissions


def _pg_bindir() -> Path | None:
    """The newest Debian-layout PostgreSQL bin dir, else the one holding ``initdb`` on PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: _version_key(p.parent.parent)
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.name.split(".") if part.isdigit())


def _postgis_control(bindir: Path) -> Path | None:
    """Where the PostGIS extension control file is for this server, if installed."""
    candidates = [
        Path("/usr/share/postgresql") / bindir.parent.name / "extension" / "postgis.control",
        bindir.parent / "share" / "postgresql" / "extension" / "postgis.control",
        bindir.parent / "share" / "extension" / "postgis.control",
    ]
    return next((c for c in candidates if c.exists()), None)


def _nginx() -> Path | None:
    return nginx()


def _pg_os_user() -> str | None:
    """The OS user that runs postgres: ``postgres`` when we are root, else ourselves."""
    return PG_OS_USER if os.geteuid() == 0 else None


def preflight(state_dir: Path | None = None) -> list[str]:
    """Reasons the stack cannot start on this machine ([] when it can); the test fixture skips on these."""
    problems = _install_problems()
    if not problems and state_dir is not None:
        problems += _traversal_problems(state_dir)
    return problems


def _install_problems() -> list[str]:
    """Missing binaries, Python modules or OS user: all fixed by `make setup` as root."""
    problems = []
    bindir = _pg_bindir()
    if bindir is None:
        problems.append("PostgreSQL server binaries (initdb, pg_ctl) not found: apt package postgresql-15")
    elif _postgis_control(bindir) is None:
        problems.append(
            f"PostGIS is missing for PostgreSQL {bindir.parent.name}: apt package postgresql-15-postgis-3"
        )
    if _nginx() is None:
        problems.append("nginx not found: apt package nginx")
    for module in ("uvicorn", "stac_fastapi.pgstac", "pypgstac", "psycopg"):
        if not _importable(module):
            problems.append(f"Python module {module} is missing from {sys.prefix}: run `make setup`")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            problems.append(
                f"running as root, but initdb/postgres refuse root and there is no {PG_OS_USER!r} user "
                "(apt package postgresql-common creates it)"
            )
    return problems


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _traversal_problems(state_dir: Path) -> list[str]:
    """As root, the postgres user must be able to walk down to its data dir, socket dir and log file."""
    if os.geteuid() != 0:
        return []  # postgres runs as ourselves
    path = state_dir.resolve()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    pg_uid = pwd.getpwnam(PG_OS_USER).pw_uid
    for folder in (existing, *existing.parents):
        st = folder.stat()
        if not st.st_mode & 0o001 and st.st_uid != pg_uid:
            return [
                f"the {PG_OS_USER} user cannot enter {folder} (mode {st.st_mode & 0o777:o}) to reach {path}"
            ]
    return []


def _require_ready(state_dir: Path) -> None:
    """Fail before starting anything, with the fix for what is actually wrong."""
    problems = _install_problems()
    if problems:
        raise ServiceUnavailableError(SERVICE, "; ".join(problems), SETUP_FIX)
    if os.geteuid() == 0 and state_dir.stat().st_uid == 0:
        state_dir.chmod(state_dir.stat().st_mode | 0o011)  # our own dir: let postgres enter it
    problems = _traversal_problems(state_dir)
    if problems:
        raise ServiceUnavailableError(
            SERVICE,
            problems[0],
            "Allow others to enter that directory (chmod o+x) or use another --state-dir.",
        )


# ------------------------------------------------------------------ data


def ensure_catalog(data_dir: Path, progress: Progress) -> Path:
    """``data_dir/catalog.json``, generated by ``eopack-sample-data`` (eopack.sample_data) if missing."""
    catalog = data_dir / "catalog.json"
    if catalog.exists():
        return catalog
    progress(f"generating sample data into {data_dir} (eopack-sample-data)")
    printed = sample_data.generate(data_dir)
    if not catalog.exists():
        raise ServiceUnavailableError(
            SERVICE, f"eopack-sample-data printed {printed}, but {catalog} does not exist", "Pass --data DIR."
        )
    return catalog


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ServiceUnavailableError(
            SERVICE, f"cannot read STAC file {path}: {exc}", "Fix or regenerate the data."
        ) from exc
    if not isinstance(value, dict):
        raise ServiceUnavailableError(SERVICE, f"{path} is not a JSON object", "Fix or regenerate the data.")
    return value


def _linked(doc_path: Path, doc: dict[str, Any], rel: str) -> Iterator[Path]:
    for link in doc.get("links", []):
        href = link.get("href", "")
        if link.get("rel") == rel and not urlparse(href).scheme:
            yield (doc_path.parent / href).resolve()


def _publish_href(href: str, base: Path, data_dir: Path, assets_url: str, owner: str) -> str:
    """A local asset path → its URL on the asset server; remote URLs stay as they are."""
    if urlparse(href).scheme not in ("", "file"):
        return href
    local = (base / urlparse(href).path).resolve()
    try:
        rel = local.relative_to(data_dir)
    except ValueError:
        raise ServiceUnavailableError(
            SERVICE,
            f"asset {href} of {owner} is outside the data dir {data_dir}",
            "Keep assets inside the catalog folder.",
        ) from None
    return f"{assets_url}/{quote(rel.as_posix())}"


def _published(doc: dict[str, Any], path: Path, data_dir: Path, assets_url: str) -> dict[str, Any]:
    """A copy of a collection/item as pgstac should hold it: URLs for assets, no file-relative links."""
    doc = json.loads(json.dumps(doc))
    for asset in doc.get("assets", {}).values():
        asset["href"] = _publish_href(
            asset["href"], path.parent, data_dir, assets_url, doc.get("id", str(path))
        )
    doc["links"] = [
        link
        for link in doc.get("links", [])
        if link.get("rel") not in STRUCTURAL_RELS and urlparse(link.get("href", "")).scheme
    ]
    return doc


def read_catalog(catalog: Path, assets_url: str) -> CatalogContent:
    """Collections and items under a static catalog, with asset hrefs pointing at ``assets_url``.

    Follows ``child`` links (catalogs nest) and each collection's ``item`` links, as any STAC
    static catalog is laid out, so the sample-data generator's exact folder names do not matter.
    """
    data_dir = catalog.parent.resolve()
    collections: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    todo, seen = [catalog.resolve()], set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        doc = _read_json(path)
        todo += list(_linked(path, doc, "child"))
        if doc.get("type") != "Collection":
            continue
        collections.append(_published(doc, path, data_dir, assets_url))
        for item_path in _linked(path, doc, "item"):
            item = _published(_read_json(item_path), item_path, data_dir, assets_url)
            item["collection"] = doc["id"]
            items.append(item)
    if not collections:
        raise ServiceUnavailableError(
            SERVICE, f"{catalog} links to no STAC Collection", "pgstac stores items per collection; add one."
        )
    return CatalogContent(collections, items)


# ------------------------------------------------------------------ postgres


def _postmaster_pid(layout: _Layout) -> int | None:
    """The running postmaster of this state dir (its pid file can outlive a crash, so check the process)."""
    return _ours(layout.pgdata / "postmaster.pid", layout)


def _ours(pid_file: Path, layout: _Layout) -> int | None:
    """The pid in ``pid_file`` while it runs from this state dir (pid files can be stale or reused)."""
    return owned_pid(pid_file, layout.root)


def _chown_to_pg(*paths: Path) -> None:
    user = _pg_os_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)


# Issue 21 #4b: no "trust" anywhere, or any local user is superuser (COPY ... PROGRAM). Every client of
# ours connects over TCP with the password from stack.json; the socket is for nobody else either.
PG_HBA = """# generated by eopack stac up; edits are overwritten
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def _write_pg_hba(layout: _Layout) -> None:
    """Re-applied on every start, so clusters initialised with local trust are fixed too."""
    hba = layout.pgdata / "pg_hba.conf"
    hba.write_text(PG_HBA)
    hba.chmod(0o600)
    _chown_to_pg(hba)


def _initdb(layout: _Layout, state: _State, bindir: Path) -> None:
    """A fresh cluster whose superuser is ``stac``: password (scram) everywhere, see ``PG_HBA``."""
    layout.pgdata.mkdir(mode=0o700)
    pwfile = layout.pgsock / "initdb.pw"
    pwfile.write_text(state.password + "\n")
    pwfile.chmod(0o600)
    _chown_to_pg(layout.pgdata, pwfile)
    try:
        cmd = [str(bindir / "initdb"), "-D", str(layout.pgdata), "-U", DB_USER, f"--pwfile={pwfile}"]
        cmd += ["-E", "UTF8", "--locale=C.UTF-8", "--auth-local=scram-sha-256", "--auth-host=scram-sha-256"]
        _proc.run_checked(
            _proc.as_user(cmd, _pg_os_user()),
            service=SERVICE,
            what="initdb",
            log=layout.logs / "initdb.log",
            fix=f"Delete {layout.pgdata} and retry, or use another --state-dir.",
        )
    finally:
        pwfile.unlink(missing_ok=True)


def pg_options(layout: _Layout, port: int) -> str:
    """postgres's options: loopback TCP only, the socket in a private folder with mode 0700."""
    return (
        f"-c listen_addresses={_proc.LOOPBACK} -p {port} -k {layout.pgsock} -c unix_socket_permissions=0700"
    )


def _start_postgres(layout: _Layout, state: _State, bindir: Path) -> int:
    socket_path = layout.pgsock / f".s.PGSQL.{state.pg_port}"
    if len(str(socket_path)) > 100:
        raise ServiceUnavailableError(
            SERVICE,
            f"the socket path {socket_path} is too long for a unix socket",
            "Use a shorter --state-dir.",
        )
    for folder in (layout.pgsock, layout.logs):
        folder.mkdir(parents=True, exist_ok=True)
    log = layout.logs / "postgres.log"
    log.touch()
    _chown_to_pg(layout.pgsock, log)
    if not (layout.pgdata / "PG_VERSION").exists():
        _initdb(layout, state, bindir)
    _write_pg_hba(layout)
    layout.pgsock.chmod(0o700)  # only postgres (and root) may reach the socket
    options = pg_options(layout, state.pg_port)
    cmd = [
        str(bindir / "pg_ctl"),
        "-D",
        str(layout.pgdata),
        "-l",
        str(log),
        "-w",
        "-t",
        "60",
        "-o",
        options,
        "start",
    ]
    _proc.run_checked(
        _proc.as_user(cmd, _pg_os_user()),
        service=SERVICE,
        what=f"postgres start (log: {log})",
        log=layout.logs / "setup.log",
        fix=f"See {log}.",
        cwd=layout.root,
    )
    pid = _postmaster_pid(layout)
    if pid is None:
        raise ServiceUnavailableError(
            SERVICE, f"postgres exited right after starting: {_proc.tail(log, 3)}", f"See {log}."
        )
    return pid


def _stop_postgres(layout: _Layout) -> None:
    """``pg_ctl stop -m fast`` (the clean way), then signals if pg_ctl could not do it."""
    pid = _postmaster_pid(layout)
    bindir = _pg_bindir()
    if pid is None:
        return
    if bindir is not None:
        cmd = [str(bindir / "pg_ctl"), "-D", str(layout.pgdata), "-m", "fast", "-w", "-t", "30", "stop"]
        with contextlib.suppress(ServiceUnavailableError):  # fall through to signals
            _proc.run_checked(
                _proc.as_user(cmd, _pg_os_user()),
                service=SERVICE,
                what="pg_ctl stop",
                log=layout.logs / "setup.log",
                fix="",
                cwd=layout.root,
            )
    _proc.stop_pid(pid, timeout=10, group=False, sig=signal.SIGINT)  # SIGINT = fast shutdown


def _ensure_database(state: _State) -> None:
    import psycopg

    with psycopg.connect(state.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DB_NAME}" OWNER "{DB_USER}"')


# pgstac's default queryables $ref schemas.stacspec.org and geojson.org, which STAC Browser fetches at
# page load (its filter form): inlined, the local stack works offline (the browser test checks it).
OFFLINE_QUERYABLES = """
UPDATE pgstac.queryables SET definition = (definition - '$ref') || '{"type": "string", "minLength": 1}'
    WHERE name = 'id' AND definition ? '$ref';
UPDATE pgstac.queryables SET definition = (definition - '$ref') || '{"type": "object", "format": "geometry-any"}'
    WHERE name = 'geometry' AND definition ? '$ref';
"""


def _migrate_and_load(state: _State, content: CatalogContent, progress: Progress) -> bool:
    """Install/upgrade pgstac, turn on numberMatched, and upsert the data when it changed; True if loaded."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods
    from pypgstac.migrate import Migrate

    with PgstacDB(dsn=state.dsn()) as db:
        version = Migrate(db).run_migration()
        conn = db.connect()
        # pgstac counts matches (numberMatched, paging totals) only with its `context` setting on
        conn.execute("UPDATE pgstac.pgstac_settings SET value = 'on' WHERE name = 'context'")
        conn.execute(OFFLINE_QUERYABLES)
        ids = [c["id"] for c in content.collections]
        row = conn.execute("SELECT count(*) FROM pgstac.collections WHERE id = ANY(%s)", [ids]).fetchone()
        if state.fingerprint == content.fingerprint and row is not None and row[0] == len(ids):
            progress(f"pgstac {version}: data unchanged ({len(content.items)} items)")
            return False
        loader = Loader(db)
        loader.load_collections(iter(content.collections), Methods.upsert)
        loader.load_items(iter(content.items), Methods.upsert)
        for cid in ids:  # items deleted from the data dir leave the API too
            keep = [i["id"] for i in content.items if i["collection"] == cid]
            conn.execute("DELETE FROM pgstac.items WHERE collection = %s AND NOT (id = ANY(%s))", [cid, keep])
        progress(f"pgstac {version}: loaded {len(ids)} collection(s), {len(content.items)} items")
    return True


# ------------------------------------------------------------------ nginx


def _others_can_read(folder: Path) -> bool:
    """Every folder down to ``folder`` lets others in, and ``folder`` lets them list and read."""
    path = folder.resolve()
    if not path.is_dir() or path.stat().st_mode & 0o005 != 0o005:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in path.parents)


def _nginx_user_line(*folders: Path) -> str:
    """nginx's ``user``: as root, workers run as ``nobody`` when it can read the folders (issue 21 #17).

    Only when some folder is private to root do they stay root (a checkout under /root, say).
    """
    if os.geteuid() != 0:
        return ""  # nginx runs as ourselves; `user` is ignored
    if all(_others_can_read(f) for f in folders):
        nobody = pwd.getpwnam("nobody")
        return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};\n"
    return "user root root;  # the data folder is private to root: workers must read it as root\n"


def _served_folders(layout: _Layout, data_dir: Path) -> list[Path]:
    """What nginx's workers read: the data, the published assets and STAC Browser's build."""
    dist = browser_dist()
    return [data_dir, layout.published, *([dist] if dist else [])]


def _worker_group(layout: _Layout, data_dir: Path) -> int | None:
    """The group nginx's workers run in when that is not our own (root's workers as ``nobody``)."""
    # the same folders, as they will be, as nginx's `user` line is decided from (_start_nginx makes
    # published/): deciding before it exists gave a 700 socket folder to `nobody` workers
    layout.published.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not all(_others_can_read(f) for f in _served_folders(layout, data_dir)):
        return None
    return pwd.getpwnam("nobody").pw_gid


def _browser_locations(layout: _Layout) -> str:
    """``/browser/``: STAC Browser's static build, its runtime config from the state dir."""
    dist = browser_dist()
    if dist is None:
        return "        # STAC Browser is not built (scripts/stac-browser.sh, run by `make setup`)\n"
    return f"""        # STAC Browser (scripts/stac-browser.sh); config.js points it at this stack's API
        location = /browser/config.js {{ alias {layout.browser_config}; add_header Cache-Control no-store; }}
        location /browser/ {{
            alias {dist}/;
            try_files $uri $uri/ /browser/index.html;  # its routes are paths (history mode)
            limit_except GET HEAD {{ deny all; }}
        }}
"""


def _nginx_conf(layout: _Layout, data_dir: Path, port: int) -> str:
    """Self-contained config: includes nothing from /etc/nginx, writes nothing outside the state dir."""
    tmp = layout.nginx / "tmp"
    user = _nginx_user_line(*_served_folders(layout, data_dir))
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# generated by eopack stac up; edits are overwritten
{user}worker_processes 1;
daemon on;
pid {layout.nginx_pid};
error_log {layout.logs}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    types {{
        image/tiff tif tiff; image/png png; image/jpeg jpg jpeg; application/json json map;
        text/html html; text/javascript js; text/css css; image/svg+xml svg; image/x-icon ico;
        font/woff woff; font/woff2 woff2; font/ttf ttf;
    }}
    default_type application/octet-stream;
    access_log {layout.logs}/nginx-access.log;
{temp_paths}
    sendfile on;
    server {{
        listen {_proc.LOOPBACK}:{port};
        root {data_dir};
        # Files are public to browser viewers (CORS for GET); folder listings are not (issue 21 #17).
        add_header Access-Control-Allow-Origin *;
        autoindex off;
        # static files answer Range requests with 206 out of the box
        location / {{ limit_except GET HEAD {{ deny all; }} }}
        # what `eopack publish` copied: kept in the state dir so the data dir stays read-only
        location /published/ {{ alias {layout.published}/; limit_except GET HEAD {{ deny all; }} }}
        # titiler-pgstac on its unix socket: tiles of items, collections (mosaics), registered searches.
        # Reads only: registering a search (POST) stays on the socket, for eopack. No CORS here: STAC
        # Browser is on this origin, and a location's own add_header drops the server's CORS *.
        location /tiles/ {{
            limit_except GET HEAD {{ deny all; }}
            proxy_pass http://unix:{layout.tiler_sock}:/;  # /tiles/x -> /x, uvicorn --root-path /tiles
            proxy_set_header Host $http_host;
            proxy_read_timeout 120s;
            add_header X-Content-Type-Options nosniff;
        }}
{_browser_locations(layout)}    }}
}}
"""


def _nginx_pid(layout: _Layout) -> int | None:
    return _ours(layout.nginx_pid, layout)


def _start_nginx(layout: _Layout, data_dir: Path, port: int) -> int:
    """Start nginx, or reload it when it runs with an older config (e.g. another data dir)."""
    binary = _nginx()
    assert binary is not None  # preflight
    (layout.nginx / "tmp").mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.published.mkdir(parents=True, exist_ok=True)
    conf = _nginx_conf(layout, data_dir, port)
    changed = not layout.nginx_conf.exists() or layout.nginx_conf.read_text() != conf
    layout.nginx_conf.write_text(conf)
    running = _nginx_pid(layout)
    if running is not None:
        if changed:
            os.kill(running, signal.SIGHUP)
        return running
    cmd = nginx_command(binary, layout.nginx, layout.nginx_conf, layout.logs / "nginx-error.log")
    _proc.run_checked(
        cmd,
        service=SERVICE,
        what="nginx",
        log=layout.logs / "setup.log",
        fix=f"See {layout.nginx_conf}.",
        cwd=layout.root,
    )
    if not _proc.wait_until(lambda: _nginx_pid(layout) is not None, 5):
        raise ServiceUnavailableError(
            SERVICE, "nginx did not write its pid file", f"See {layout.logs / 'nginx-error.log'}."
        )
    pid = _nginx_pid(layout)
    assert pid is not None
    return pid


# ------------------------------------------------------------------ uvicorn


def _uvicorn_pid(layout: _Layout) -> int | None:
    return _ours(layout.uvicorn_pid, layout)


API_CORS = {"CORS_ORIGINS": "*", "CORS_METHODS": "GET,HEAD,OPTIONS"}


def _start_api(layout: _Layout, state: _State) -> int:
    """stac-fastapi-pgstac under uvicorn, configured only through the environment (no ./.env)."""
    running = _uvicorn_pid(layout)
    if running is not None:
        return running
    layout.api.mkdir(parents=True, exist_ok=True)
    env = _pg_env(state)
    env.update(
        ENABLE_TRANSACTIONS_EXTENSIONS="true",
        # Issue 21 #4c: browsers may read (STAC Browser), but no web page may make one write:
        # without POST/PUT/DELETE here the preflight of a JSON write fails, and FastAPI refuses
        # bodies that are not application/json (the only "simple" cross-site POSTs).
        **API_CORS,
    )
    token_file = layout.root / "write-token"
    if not token_file.exists():
        write_secret(token_file, secrets.token_urlsafe(24) + "\n")
    env[TOKEN_FILE_ENV] = str(token_file)
    # stac-fastapi-pgstac with its writes behind the token (services/stac_app.py).
    cmd = [sys.executable, "-m", "uvicorn", "eopack.services.stac_app:create_app", "--factory"]
    cmd += ["--host", _proc.LOOPBACK, "--port", str(state.api_port)]
    return _proc.spawn(
        cmd, log=layout.logs / "uvicorn.log", cwd=layout.api, env=env, pid_file=layout.uvicorn_pid
    )


def _wait_for_api(layout: _Layout, api_url: str, collections: list[str], timeout: float = 90) -> None:
    """Ready means the data is searchable, not just that the port is open."""
    log = layout.logs / "uvicorn.log"
    for cid in collections:
        url = f"{api_url}/collections/{quote(cid)}"

        def ready(url: str = url) -> bool:
            if _uvicorn_pid(layout) is None:
                raise ServiceUnavailableError(SERVICE, f"uvicorn exited:\n{_proc.tail(log)}", f"See {log}.")
            return _proc.http_status(url) == 200

        if not _proc.wait_until(ready, timeout, interval=0.2):
            raise ServiceUnavailableError(
                SERVICE, f"GET {url} did not answer 200 within {timeout:.0f} s", f"See {log}."
            )


# ------------------------------------------------------------------ tiles (titiler-pgstac)

TILES_PREFIX = "/tiles"
# GDAL reading COGs over HTTP from our own nginx: no directory probing, merged ranges, never a proxy
TILER_GDAL = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff",
}


def _pg_env(state: _State) -> dict[str, str]:
    """Our environment plus the libpq variables of the stack's database (the password never on a
    command line): what the API and the tiler connect with."""
    return {
        **os.environ,
        "PGUSER": DB_USER,
        "PGPASSWORD": state.password,
        "PGHOST": _proc.LOOPBACK,
        "PGPORT": str(state.pg_port),
        "PGDATABASE": DB_NAME,
    }


def _tiler_pid(layout: _Layout) -> int | None:
    return _ours(layout.tiler_pid, layout)


def _tiler_folder(layout: _Layout, worker_group: int | None) -> None:
    """The socket's folder: ours alone (700), or enterable by nginx's workers' group too (710)."""
    layout.tiler.mkdir(parents=True, exist_ok=True)
    os.chown(layout.tiler, -1, worker_group if worker_group is not None else os.getegid())
    layout.tiler.chmod(0o700 if worker_group is None else 0o710)


def _start_tiler(layout: _Layout, state: _State, worker_group: int | None) -> int:
    """titiler-pgstac under uvicorn on a unix socket that only nginx (and we) may reach.

    The socket's folder is mode 700, or 710 with the nginx workers' group when they run as
    ``nobody``: other local users cannot reach the tiler except through nginx's GET/HEAD front.
    """
    running = _tiler_pid(layout)
    if running is not None:
        return running
    if len(str(layout.tiler_sock)) > 100:
        raise ServiceUnavailableError(
            SERVICE,
            f"the socket path {layout.tiler_sock} is too long for a unix socket",
            "Use a shorter --state-dir.",
        )
    _tiler_folder(layout, worker_group)
    layout.tiler_sock.unlink(missing_ok=True)
    env = _pg_env(state)
    env.update(
        # only STAC Browser's origin (the asset server) may read with CORS; issue 21 allows no CORS *
        TITILER_PGSTAC_API_CORS_ORIGINS=f"http://{_proc.LOOPBACK}:{state.assets_port}",
        NO_PROXY=",".join(filter(None, [env.get("NO_PROXY"), _proc.LOOPBACK, "localhost"])),
        **TILER_GDAL,
    )
    env["no_proxy"] = env["NO_PROXY"]
    cmd = [sys.executable, "-m", "uvicorn", "titiler.pgstac.main:app", "--uds", str(layout.tiler_sock)]
    cmd += ["--root-path", TILES_PREFIX, "--no-access-log"]
    return _proc.spawn(
        cmd, log=layout.logs / "tiler.log", cwd=layout.tiler, env=env, pid_file=layout.tiler_pid
    )


def _wait_for_tiles(layout: _Layout, tiles_url: str, timeout: float = 120) -> None:
    """Ready when /healthz answers through nginx (importing titiler takes ~10-40 s on a busy machine)."""
    log = layout.logs / "tiler.log"

    def ready() -> bool:
        if _tiler_pid(layout) is None:
            raise ServiceUnavailableError(
                SERVICE, f"the tile server exited:\n{_proc.tail(log)}", f"See {log}."
            )
        return _proc.http_status(f"{tiles_url}/healthz") == 200

    if not _proc.wait_until(ready, timeout, interval=0.2):
        raise ServiceUnavailableError(
            SERVICE, f"GET {tiles_url}/healthz did not answer 200 within {timeout:.0f} s", f"See {log}."
        )


# ------------------------------------------------------------------ STAC Browser

BROWSER_VERSION = "4.0.1"  # scripts/stac-browser.sh builds this one


def browser_dist() -> Path | None:
    """STAC Browser's static build (``scripts/stac-browser.sh``, run by ``make setup``), if built."""
    cache = os.environ.get("EOPACK_STAC_BROWSER_CACHE")
    root = Path(cache) if cache else package.repo_root() / ".cache" / "stac-browser"
    dist = root / BROWSER_VERSION / "dist"
    return dist if (dist / "index.html").is_file() else None


def _write_browser_config(layout: _Layout, api_url: str, tiles_url: str) -> None:
    """STAC Browser's runtime config: this stack's API, nothing external."""
    config = {
        "catalogUrl": f"{api_url}/",
        "catalogTitle": "eopack local STAC",
        "allowExternalAccess": False,
        "allowedDomains": [],
        "detectLocaleFromBrowser": False,
        "socialSharing": [],
        "displayGeoTiffByDefault": False,
    }
    layout.nginx.mkdir(parents=True, exist_ok=True)
    layout.browser_config.write_text(
        "// generated by eopack stac up; edits are overwritten\n"
        f"window.STAC_BROWSER_CONFIG = {json.dumps(config, indent=2)};\n"
        f"window.EOPACK_TILES_URL = {json.dumps(tiles_url)};\n"
    )
    layout.browser_config.chmod(0o644)


def browser_url(stack: StacStack, collection: str | None = None, item: str | None = None) -> str | None:
    """STAC Browser's page of the catalog, a collection or an item; None when it is not built."""
    if stack.browser is None:
        return None
    if collection is None:
        return stack.browser
    path = f"collections/{quote(collection, safe='')}"
    if item is not None:
        path += f"/items/{quote(item, safe='')}"
    return f"{stack.browser}{path}"


# ------------------------------------------------------------------ up / down / status


def _resolve_ports(layout: _Layout, state: _State, requested: dict[str, int | None]) -> None:
    """Explicit ports win; a component already running elsewhere must be stopped first."""
    running = {
        "pg_port": _postmaster_pid(layout),
        "api_port": _uvicorn_pid(layout),
        "assets_port": _nginx_pid(layout),
    }
    for key, value in requested.items():
        if value is None or value == getattr(state, key):
            continue
        if running[key] is not None:
            raise ServiceUnavailableError(
                SERVICE,
                f"it already runs from {layout.root} with {key.replace('_', '-')} "
                f"{getattr(state, key)}, not {value}",
                f"Run `eopack stac down --state-dir {layout.root}` first.",
            )
        setattr(state, key, value)
    options = {
        "pg_port": ("PostgreSQL", "--pg-port"),
        "api_port": ("STAC API", "--api-port"),
        "assets_port": ("asset server", "--assets-port"),
    }
    for key, (name, option) in options.items():
        if running[key] is None:
            _proc.ensure_port_free(name, getattr(state, key), option)


def up(
    data_dir: Path | None = None,
    state_dir: Path | None = None,
    *,
    pg_port: int | None = None,
    api_port: int | None = None,
    assets_port: int | None = None,
    progress: Progress | None = None,
) -> StacStack:
    """Start (or reuse) the stack and load ``data_dir``'s catalog; idempotent.

    ``data_dir`` defaults to <repo>/data/sample (generated when missing); changed data is re-loaded.
    Ports left as None keep what this state dir used last time (defaults 5439/8089/8090). Whatever this
    call started is stopped again if a later step fails, so a failed ``up`` leaves no half stack.
    """
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    _require_ready(layout.root)
    state = _State.load(layout.state_file) or _State()
    _resolve_ports(layout, state, {"pg_port": pg_port, "api_port": api_port, "assets_port": assets_port})
    data = (data_dir or default_data_dir()).resolve()
    if data.is_file():
        data = data.parent
    content = read_catalog(ensure_catalog(data, say), f"http://{_proc.LOOPBACK}:{state.assets_port}")
    state.data_dir = str(data)
    state.save(layout.state_file)
    bindir = _pg_bindir()
    assert bindir is not None  # preflight
    say(f"state and logs in {layout.root} (logs/)")
    with Rollback() as undo:
        pids: dict[str, int] = {}
        if (pid := _postmaster_pid(layout)) is None:
            pid = _start_postgres(layout, state, bindir)
            undo.callback(lambda: _stop_postgres(layout))
            say(f"postgres started on {_proc.LOOPBACK}:{state.pg_port} (pid {pid})")
        pids["postgres"] = pid
        _ensure_database(state)
        if (pid := _uvicorn_pid(layout)) is None:
            pid = _start_api(layout, state)  # boots while the data loads
            undo.add(pid)
            say(f"uvicorn started on {_proc.LOOPBACK}:{state.api_port} (pid {pid})")
        pids["api"] = pid
        group = _worker_group(layout, data)
        _tiler_folder(layout, group)  # re-applied: nginx's workers may have changed user since
        if (pid := _tiler_pid(layout)) is None:
            pid = _start_tiler(layout, state, group)
            undo.add(pid)
            say(f"titiler-pgstac started on {layout.tiler_sock} (pid {pid})")
        pids["tiles"] = pid
        assets_url = f"http://{_proc.LOOPBACK}:{state.assets_port}"
        api_url = f"http://{_proc.LOOPBACK}:{state.api_port}"
        _write_browser_config(layout, api_url, f"{assets_url}{TILES_PREFIX}")
        nginx_was_up = _nginx_pid(layout) is not None
        pids["assets"] = _start_nginx(layout, data, state.assets_port)
        if not nginx_was_up:
            undo.add(pids["assets"])
            say(f"nginx serving {data} on {_proc.LOOPBACK}:{state.assets_port} (pid {pids['assets']})")
        _migrate_and_load(state, content, say)
        state.fingerprint = content.fingerprint
        state.save(layout.state_file)
        _wait_for_api(layout, api_url, [c["id"] for c in content.collections])
        _wait_for_tiles(layout, f"{assets_url}{TILES_PREFIX}")
    return StacStack(
        api_url=api_url,
        assets_url=assets_url,
        pids=pids,
        state_dir=layout.root,
        data_dir=data,
        dsn=state.dsn().replace(quote(state.password), "***"),
        collections=tuple(c["id"] for c in content.collections),
        tiles_url=f"{assets_url}{TILES_PREFIX}",
        browser=f"{assets_url}/browser/" if browser_dist() else None,
    )


LEFTOVER_NAMES = {"postgres", "postmaster", "nginx", "uvicorn"}


def _is_api(cmdline: str) -> bool:
    """A STAC API process: ours (services/stac_app.py) or one started before it (stac_fastapi directly)."""
    return "stac_fastapi" in cmdline or "eopack.services.stac_app" in cmdline


def _is_tiler(cmdline: str) -> bool:
    return "titiler.pgstac" in cmdline


def _leftovers(layout: _Layout) -> list[_proc.ProcInfo]:
    """Processes of this stack still alive, by name, so a user's shell cd'ed into the dir is not one."""
    return [
        p
        for p in _proc.processes_under(layout.root)
        if p.name in LEFTOVER_NAMES or _is_api(p.cmdline) or _is_tiler(p.cmdline)
    ]


def down(state_dir: Path | None = None, progress: Progress | None = None) -> StackStatus:
    """Stop uvicorn, the tiler, nginx and postgres of this state dir (idempotent); prove nothing is left."""
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    if (pid := _tiler_pid(layout)) is not None:
        _proc.stop_pid(pid)
        say(f"titiler-pgstac stopped (pid {pid})")
    layout.tiler_pid.unlink(missing_ok=True)
    if (pid := _uvicorn_pid(layout)) is not None:
        _proc.stop_pid(pid)
        say(f"uvicorn stopped (pid {pid})")
    layout.uvicorn_pid.unlink(missing_ok=True)
    if (pid := _nginx_pid(layout)) is not None:
        _proc.stop_pid(pid, sig=signal.SIGTERM)
        say(f"nginx stopped (pid {pid})")
    if (pid := _postmaster_pid(layout)) is not None:
        _stop_postgres(layout)
        say(f"postgres stopped (pid {pid})")
    sweep(SERVICE, layout.root, lambda: _leftovers(layout))
    return status(layout.root)


def status(state_dir: Path | None = None) -> StackStatus:
    """Each component up/down with its pid and URL, from the state dir alone (cheap: no HTTP)."""
    layout = _Layout((state_dir or default_state_dir()).resolve())
    state = _State.load(layout.state_file) or _State(password="")
    pg, api, assets = _postmaster_pid(layout), _uvicorn_pid(layout), _nginx_pid(layout)
    tiles = _tiler_pid(layout)
    host = _proc.LOOPBACK
    return StackStatus(
        layout.root,
        (
            Component(
                "postgres", pg is not None, pg, f"postgresql://{DB_USER}@{host}:{state.pg_port}/{DB_NAME}"
            ),
            Component(
                "api",
                api is not None and _proc.port_in_use(state.api_port),
                api,
                f"http://{host}:{state.api_port}",
            ),
            Component("assets", assets is not None, assets, f"http://{host}:{state.assets_port}"),
            Component(
                "tiles",
                tiles is not None and layout.tiler_sock.exists(),
                tiles,
                f"http://{host}:{state.assets_port}{TILES_PREFIX}",
            ),
        ),
    )


# ------------------------------------------------------------------ publishing (eopack.publish)

LOCAL_HOSTS = {_proc.LOOPBACK, "localhost"}


def _running_stack(root: Path, port: int) -> StacStack | None:
    """The stack of state dir ``root`` if its API listens on ``port`` and its asset server runs."""
    layout = _Layout(root.resolve())
    state = _State.load(layout.state_file)
    if state is None or state.api_port != port:
        return None
    api, assets = _uvicorn_pid(layout), _nginx_pid(layout)
    if api is None or assets is None:
        return None
    pg, tiles = _postmaster_pid(layout), _tiler_pid(layout)
    assets_url = f"http://{_proc.LOOPBACK}:{state.assets_port}"
    return StacStack(
        api_url=f"http://{_proc.LOOPBACK}:{state.api_port}",
        assets_url=assets_url,
        pids={"postgres": pg or 0, "api": api, "assets": assets, "tiles": tiles or 0},
        state_dir=layout.root,
        data_dir=Path(state.data_dir),
        dsn=state.dsn().replace(quote(state.password), "***"),
        tiles_url=f"{assets_url}{TILES_PREFIX}" if tiles else None,
        browser=f"{assets_url}/browser/" if browser_dist() and layout.browser_config.exists() else None,
    )


def write_token(stack: StacStack) -> str | None:
    """The token a local stack wants for writes (``<state>/write-token``), None for an older stack."""
    try:
        return (stack.state_dir / "write-token").read_text().strip() or None
    except OSError:
        return None


def find_local_stack(api_url: str, state_dir: Path | None = None) -> StacStack | None:
    """The running local stack that serves ``api_url``, or None when the URL is someone else's API.

    ``eopack publish`` needs the stack's state dir to copy assets where its nginx serves them, but
    users only know the API URL, and stacks run from any state dir on any port (tests use free
    ports in /tmp). So: the given (or default) state dir first, then whoever listens on the URL's
    port, read from /proc (uvicorn runs in ``<state>/api``).
    """
    parsed = urlparse(api_url)
    if parsed.hostname not in LOCAL_HOSTS or parsed.port is None or parsed.path.strip("/"):
        return None
    found = _running_stack(state_dir or default_state_dir(), parsed.port)
    if found is None:
        owner = _proc.port_owner(parsed.port)
        if owner is not None and owner.cwd and _is_api(owner.cmdline):
            found = _running_stack(Path(owner.cwd).parent, parsed.port)
    return found


def published_location(stack: StacStack) -> tuple[Path, str]:
    """(folder, base URL) where published assets go: ``<state>/published`` at ``<assets>/published``.

    A stack started before the ``/published/`` location existed gets its nginx config rewritten
    and reloaded here, so publishing never depends on having restarted the stack.
    """
    layout = _Layout(stack.state_dir)
    state = _State.load(layout.state_file)
    if state is None:
        raise ServiceUnavailableError(SERVICE, f"no {layout.state_file}", "Run `eopack stac up`.")
    _start_nginx(layout, Path(state.data_dir), state.assets_port)
    return layout.published, f"{stack.assets_url}/published"
