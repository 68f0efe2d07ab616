"""Code shared by eopack tools: errors and exit codes, staged outputs, STAC, Dask, downloads.

Runners never import this package (DESIGN.md §2); the CWL file is the only contract between them.
"""

__all__ = ["cli", "dask_cluster", "download", "errors", "output", "raster", "s2", "search", "stac"]
