"""eopack: run Earth-observation application packages (CWL) on any runner."""

__all__ = ["__version__"]

__version__ = "0.1.0"
