"""stage-in: STAC items (Item URLs, a STAC API search, a catalog) into a local self-contained catalog."""

__all__ = ["cli", "core"]
