"""linecolor: hint-guided line-art colourisation.

>>> from linecolor import ColorizationPipeline
>>> pipe = ColorizationPipeline.from_pretrained("path/to/weights")   # doctest: +SKIP
>>> out = pipe("drawing.png", hints=[(120, 80, "#e03c31", 6)])       # doctest: +SKIP
>>> out.save("coloured.png")                                          # doctest: +SKIP

Heavy modules (torch, the networks) are imported lazily so that ``import linecolor`` stays cheap.
"""

from __future__ import annotations

from linecolor.version import __version__

__all__ = ["ColorizationPipeline", "Colorizer", "__version__"]


def __getattr__(name: str):
    # Lazy exports (PEP 562): the CLI's --help and the server's import must not pay for torch twice.
    if name == "ColorizationPipeline":
        from linecolor.inference.pipeline import ColorizationPipeline

        return ColorizationPipeline
    if name == "Colorizer":
        from linecolor.models.colorizer import Colorizer

        return Colorizer
    raise AttributeError(f"module 'linecolor' has no attribute {name!r}")
