"""Reaching assets the way archives serve them, without ever showing a credential.

* local paths and ``http(s)://`` (GDAL ``/vsicurl``: Range reads) need nothing;
* ``s3://bucket/key`` is read by GDAL's ``/vsis3`` with the standard environment: credentials in
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or ``AWS_NO_SIGN_REQUEST=YES`` for public
  buckets), another endpoint in ``AWS_S3_ENDPOINT`` with ``AWS_HTTPS=NO`` and
  ``AWS_VIRTUAL_HOSTING=FALSE`` for a plain-HTTP, path-style server;
* private HTTP APIs: ``EOPACK_ASSET_HEADERS`` (e.g. ``Authorization: Bearer <token>``; several
  headers separated by newlines) is handed to GDAL as ``GDAL_HTTP_HEADERS``;
* signed URLs: ``EOPACK_HREF_MODIFIER`` names a function applied to every asset href after the
  search — ``planetary-computer`` (Microsoft's SAS signing; needs the optional
  ``planetary-computer`` package, ``eopack-eo-common[pc]``) or ``package.module:function`` taking
  and returning an href.

Credentials come only from the environment (the runners pass them like the gateway password) and
:func:`redact` takes them, and every URL query string, out of anything a tool prints or logs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pystac

from .errors import ToolError, ToolInputError

__all__ = [
    "HEADERS_ENV",
    "HREF_MODIFIER_ENV",
    "SECRET_ENVS",
    "STAC_HEADERS_ENV",
    "WORKER_PATHS_ENV",
    "RedactingFilter",
    "asset_errors",
    "configure_gdal",
    "load_secret_files",
    "map_worker_paths",
    "modify_hrefs",
    "parse_headers",
    "redact",
    "stac_headers",
]

log = logging.getLogger(__name__)

HEADERS_ENV = "EOPACK_ASSET_HEADERS"
# Headers for the STAC API (pystac-client), e.g. ``Authorization: Bearer <token>``; same format.
STAC_HEADERS_ENV = "EOPACK_STAC_HEADERS"
HREF_MODIFIER_ENV = "EOPACK_HREF_MODIFIER"
# Set by the runner when a containerised tool's Dask workers share the host's files (eopack.locality):
# a JSON list of the host folders of the staged inputs the workers read.
WORKER_PATHS_ENV = "EOPACK_WORKER_PATHS"
# Variables whose values are secrets: never printed, whatever the message.
SECRET_ENVS = (
    HEADERS_ENV,
    STAC_HEADERS_ENV,
    "AWS_ACCESS_KEY_ID",
    "DASK_GATEWAY_PASSWORD",
    "GDAL_HTTP_HEADERS",
    "GDAL_HTTP_USERPWD",
    "GDAL_HTTP_BEARER",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PC_SDK_SUBSCRIPTION_KEY",
)
_QUERY = re.compile(r"((?:https?|s3|gs|az)://[^\s?'\"<>]+)\?[^\s'\"<>]*")
MASK = "<redacted>"
_SCHEMES = {"bearer", "basic", "digest", "token"}


def load_secret_files() -> list[str]:
    """Set each secret ``NAME`` from the file named by ``NAME_FILE`` (unless ``NAME`` is set).

    In container mode (and with Toil) the runners hand secrets over as mode-600 files, never as
    variables, so they stay off ``docker run`` lines and logs; the tool reads them here, once, at
    start. Returns the names loaded (never their values).
    """
    loaded = []
    for name in SECRET_ENVS:
        path = os.environ.get(f"{name}_FILE")
        if not path or os.environ.get(name):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read()
        except OSError as err:
            raise ToolInputError(f"cannot read {name}_FILE ({err.strerror})") from None
        if value.endswith("\n") and "\n" not in value[:-1]:
            value = value[:-1]
        if value:
            os.environ[name] = value
            loaded.append(name)
    return loaded


def parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` lines (GDAL_HTTP_HEADERS' format) as a dict; a bad line is an input error."""
    headers = {}
    for line in re.split(r"\r?\n", text.strip()):
        name, sep, value = line.partition(":")
        if not line.strip():
            continue
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise ToolInputError(
                "headers must be 'Name: value' lines (EOPACK_ASSET_HEADERS, EOPACK_STAC_HEADERS)"
            )
        headers[name.strip()] = value.strip()
    return headers


def stac_headers() -> dict[str, str] | None:
    """The headers of ``EOPACK_STAC_HEADERS`` for every STAC API request, or None."""
    text = os.environ.get(STAC_HEADERS_ENV, "")
    return parse_headers(text) if text.strip() else None


def _secrets() -> list[str]:
    """Every secret value in the environment, longest first, and the parts of header values."""
    found: set[str] = set()
    for name in SECRET_ENVS:
        value = os.environ.get(name)
        if not value:
            continue
        found.add(value)
        for line in re.split(r"\r?\n", value):
            _, sep, rest = line.partition(":")
            if sep and rest.strip():
                found.add(rest.strip())
                found.update(w for w in rest.split() if len(w) >= 6 and w.lower() not in _SCHEMES)
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` without credential values from the environment and without URL query strings.

    Query strings carry the signatures of signed URLs (``?sig=…``, ``X-Amz-Signature=…``).

    >>> redact("https://a.blob.core.windows.net/c/B04.tif?sv=2021&sig=abc: HTTP 403")
    'https://a.blob.core.windows.net/c/B04.tif?<redacted> HTTP 403'
    """
    for secret in _secrets():
        text = text.replace(secret, MASK)
    return _QUERY.sub(rf"\1?{MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record once and redacts it (see :func:`redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


@contextlib.contextmanager
def asset_errors() -> Iterator[None]:
    """Turn a failed asset read (GDAL/rasterio, possibly re-raised by a Dask worker) into one line.

    The message says what GDAL said (redacted: a signed URL's query never shows) and where access
    is configured; exit code 1 (``ToolError``).
    """
    try:
        yield
    except ToolError:
        raise
    except Exception as err:
        text = f"{type(err).__name__}: {err}"
        if "Rasterio" not in text and "CPLE_" not in text and "HTTP response code" not in text:
            raise
        detail = redact(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        raise ToolError(
            f"cannot read the input assets ({detail}); check the asset hrefs and their access: "
            f"{HEADERS_ENV}, {HREF_MODIFIER_ENV} or the AWS_* variables for s3://"
        ) from None


def configure_gdal() -> None:
    """Hand ``EOPACK_ASSET_HEADERS`` to GDAL (``GDAL_HTTP_HEADERS``) unless that is set already.

    Environment, not ``rasterio.Env``: Dask workers of a local cluster inherit it, and GDAL reads
    its configuration from the environment in every thread.
    """
    headers = os.environ.get(HEADERS_ENV)
    if headers and not os.environ.get("GDAL_HTTP_HEADERS"):
        os.environ["GDAL_HTTP_HEADERS"] = headers
        log.info("asset requests carry the headers of %s", HEADERS_ENV)


def _modifier(spec: str) -> Callable[[pystac.Item], None]:
    """The in-place item modifier named by ``spec``."""
    if spec == "planetary-computer":
        try:
            import planetary_computer
        except ImportError:
            raise ToolInputError(
                f"{HREF_MODIFIER_ENV}=planetary-computer needs the planetary-computer package; "
                "install eopack-eo-common[pc] (pip install planetary-computer)"
            ) from None

        def sign(item: pystac.Item) -> None:
            signed = planetary_computer.sign(item)
            for key, asset in signed.assets.items():
                item.assets[key].href = asset.href

        return sign
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ToolInputError(
            f"{HREF_MODIFIER_ENV} must be planetary-computer or package.module:function; got {spec!r}"
        )
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ToolInputError(f"{HREF_MODIFIER_ENV}={spec!r} cannot be imported: {err}") from None

    def apply(item: pystac.Item) -> None:
        for asset in item.assets.values():
            asset.href = str(function(asset.href))

    return apply


def modify_hrefs(items: Iterable[pystac.Item]) -> None:
    """Apply ``EOPACK_HREF_MODIFIER`` (if set) to every asset href of ``items``, in place."""
    spec = os.environ.get(HREF_MODIFIER_ENV, "").strip()
    if not spec:
        return
    modify = _modifier(spec)
    count = 0
    for item in items:
        modify(item)
        count += 1
    log.info("asset hrefs of %d item(s) modified by %s", count, spec)


def map_worker_paths(items: Iterable[pystac.Item], staged: Path) -> None:
    """Asset paths inside ``staged`` (a staged Directory, where this tool sees it) rewritten to the
    host folder of the same name from ``EOPACK_WORKER_PATHS``, in place: the Dask workers open the
    host's files, not the container's staging folder (``/var/lib/cwl/stg*/<name>``). Nothing to do
    without the variable, or when the tool already sees the host path (no container)."""
    raw = os.environ.get(WORKER_PATHS_ENV, "").strip()
    if not raw:
        return
    try:
        folders = [Path(str(p)) for p in json.loads(raw)]
    except (ValueError, TypeError):
        raise ToolInputError(f"{WORKER_PATHS_ENV} must be a JSON list of folders; got {raw[:80]!r}") from None
    here = staged.resolve()
    host = next((f for f in folders if f.name == here.name), None)
    if host is None or host == here:
        return
    prefix, count = f"{here}/", 0
    for item in items:
        for asset in item.assets.values():
            if asset.href.startswith(prefix):
                asset.href = f"{host}/{asset.href.removeprefix(prefix)}"
                count += 1
    log.info(
        "%d asset path(s) of %s handed to the Dask workers as %s (a shared filesystem)", count, here, host
    )
