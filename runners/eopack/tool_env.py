"""The variables a user's environment gives the tools: one list each, shared by every runner and the
WES workers (the runners forward them, ``services/wes`` hands them to its workers).

Secrets are never on a command line, in a run copy or a log: each runner passes them by name only
where nothing logs them, else as a mode-600 file named by ``<NAME>_FILE`` (runners/secret_files.py,
wes/eopack_wes_engine.py); eo-common reads either at each tool's start.
"""

from __future__ import annotations

__all__ = ["ASSET_ENV", "DASK_SECRET_ENV", "SECRET_ENV", "SETTINGS_ENV"]

# Settings the tools read, no secret among them.
SETTINGS_ENV = ("EOPACK_ALLOW_PRIVATE_URLS", "DASK_CLUSTER", "DASK_GATEWAY_USER")
# Asset access (issue 20): the object store's endpoint and options, the href modifier.
ASSET_ENV = (
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_HTTPS",
    "AWS_VIRTUAL_HOSTING",
    "AWS_NO_SIGN_REQUEST",
    "EOPACK_HREF_MODIFIER",
)
# Every credential a tool may need: the gateway password, object-store keys, headers for private
# HTTP and STAC APIs, Planetary Computer's key.
SECRET_ENV = (
    "DASK_GATEWAY_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "EOPACK_ASSET_HEADERS",
    "EOPACK_STAC_HEADERS",
    "GDAL_HTTP_HEADERS",
    "GDAL_HTTP_BEARER",
    "GDAL_HTTP_USERPWD",
    "PC_SDK_SUBSCRIPTION_KEY",
)
# Of those, the ones only a tool with a Dask requirement gets; the others go to every tool.
DASK_SECRET_ENV = ("DASK_GATEWAY_PASSWORD",)
