"""The package version, on its own so that every module can stamp files with it without importing the package's
public facade (``linecolor/__init__.py``)."""

__version__ = "0.1.0"
