"""cloudless-mosaic: monthly cloud-free median mosaics of Sentinel-2 L2A, masked per pixel."""

__all__ = ["blocks", "cli", "core"]
