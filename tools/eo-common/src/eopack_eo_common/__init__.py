"""Code shared by eopack tools: errors and exit codes, staged outputs, STAC, Dask, the URL guard.

Runners never import this package (DESIGN.md §2); the CWL file is the only contract between them.
"""

__all__ = [
    "access",
    "archive",
    "cli",
    "dask_cluster",
    "download",
    "errors",
    "output",
    "progress",
    "raster",
    "remote",
    "s2",
    "search",
    "stac",
    "urlguard",
]
