"""The data sources by name and where each lives in the shared data folder (stdlib only: the CLI's ``--help``
lists them without loading the data modules)."""

from __future__ import annotations

__all__ = ["EVALUATION_SOURCES", "PREPARE_SOURCES", "SOURCES", "SOURCE_FOLDERS"]

SOURCE_FOLDERS = {"openmoji": "openmoji-17.0.0.tgz", "dicebear": "dicebear-adventurer", "fluent": "fluent-emoji",
                  "bigheads": "bigheads", "toonhead": "dicebear-toon-head"}
"""Source name → its tarball or folder under the data root (the layout of ``../shared/data``)."""
SOURCES = tuple(SOURCE_FOLDERS)
"""The built-in line/colour pair sources (:func:`linecolor.data.sources.iter_source`)."""
EVALUATION_SOURCES = ("openmoji", "dicebear", "fluent")
"""The sources ``linecolor evaluate`` measures by default (the ones every published table of this project uses)."""
PREPARE_SOURCES = (*SOURCES, "paired", "colors", "safebooru")
"""What ``linecolor prepare`` reads: a built-in source, a folder of your own pairs or colour images, or the
Safebooru metadata CSV."""
