"""openeo-graph: run an openEO process graph as a portable application package (openeo-processes-dask)."""

__all__ = ["cli", "core", "graph", "load", "processes", "save"]
