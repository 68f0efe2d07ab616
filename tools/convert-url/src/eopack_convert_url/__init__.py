"""convert-url: fetch an image by URL, transform it, publish the result with a STAC catalog."""

__all__ = ["cli", "core"]
