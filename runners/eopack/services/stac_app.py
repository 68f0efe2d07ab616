"""The local STAC API app: stac-fastapi-pgstac with its write endpoints behind a token.

Started by ``eopack stac up`` as ``uvicorn eopack.services.stac_app:create_app --factory``. Reads stay
open (and CORS allows any page to read); every other request except ``POST .../search`` (a read)
needs ``Authorization: Bearer <token>``, the token being the content of the mode-600 file named by
``EOPACK_STAC_WRITE_TOKEN_FILE`` (``<state>/write-token``). ``eopack publish`` reads it from there
for a local stack, or from ``EOPACK_STAC_TOKEN`` (issue 21 #4c: any local user could write before).
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["TOKEN_FILE_ENV", "create_app", "needs_token"]

TOKEN_FILE_ENV = "EOPACK_STAC_WRITE_TOKEN_FILE"  # noqa: S105 - a variable name, not a secret
READ_METHODS = {"GET", "HEAD", "OPTIONS"}

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def needs_token(method: str, path: str) -> bool:
    """Writes need the token; reads, including ``POST /search``, do not."""
    return method.upper() not in READ_METHODS and not path.rstrip("/").endswith("/search")


def guard(app: Asgi, token: str) -> Asgi:
    """Wrap ``app``: a write without the right bearer token gets 401 and never reaches it."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and needs_token(scope["method"], scope["path"]):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                body = json.dumps(
                    {"code": "Unauthorized", "description": "writes need the stack's token"}
                ).encode()
                await send({
                    "type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                (b"content-length", str(len(body)).encode())],
                })  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def create_app() -> Asgi:
    from stac_fastapi.pgstac.app import create_app as stac_app

    token = Path(os.environ[TOKEN_FILE_ENV]).read_text().strip()
    if not token:
        raise SystemExit(f"{os.environ[TOKEN_FILE_ENV]} is empty")
    return guard(stac_app(), token)
