"""stage-out: a result folder's STAC catalog and assets into an S3 bucket, hrefs rewritten to it."""

__all__ = ["cli", "core"]
