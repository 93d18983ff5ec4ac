"""The package version (recorded with every tracked search)."""

__version__ = "0.1.0"
