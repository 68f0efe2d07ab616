"""An href modifier for tests (``EOPACK_HREF_MODIFIER=hrefsign:add_token``): signs like a SAS URL."""

from __future__ import annotations

import os

__all__ = ["add_token"]


def add_token(href: str) -> str:
    """``href?token=<EOPACK_TEST_TOKEN>`` for http(s) hrefs; others unchanged."""
    if not href.startswith(("http://", "https://")):
        return href
    return f"{href}?token={os.environ['EOPACK_TEST_TOKEN']}"
