"""ndvi: cloud-masked Sentinel-2 L2A NDVI over an area and time range, as COGs, quicklooks and STAC."""

__all__ = ["cli", "core"]
