"""A colour image with its line art: the unit every data source yields and every dataset stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from linecolor.errors import InputImageError

__all__ = ["Pair", "PairSource"]


@dataclass
class Pair:
    """A colour image and its line art.

    Attributes:
        color: uint8 ``(H, W, 3)`` RGB, 0..255.
        lines: uint8 ``(L, H, W)`` with L >= 1 line styles of the same drawing; 255 paper, 0 ink.
        name: identifier (file stem, emoji hexcode, ...).
    """

    color: np.ndarray
    lines: np.ndarray
    name: str

    def __post_init__(self) -> None:
        c, lines = self.color, self.lines
        if not (isinstance(c, np.ndarray) and c.dtype == np.uint8 and c.ndim == 3 and c.shape[2] == 3):
            raise InputImageError(f"{self.name}: colour must be a uint8 (H, W, 3) array, got "
                                  f"{getattr(c, 'dtype', type(c).__name__)} {getattr(c, 'shape', '')}")
        if not (isinstance(lines, np.ndarray) and lines.dtype == np.uint8 and lines.ndim == 3 and lines.shape[0] >= 1):
            raise InputImageError(f"{self.name}: lines must be a uint8 (L, H, W) array with L >= 1, got "
                                  f"{getattr(lines, 'dtype', type(lines).__name__)} {getattr(lines, 'shape', '')}")
        if lines.shape[1:] != c.shape[:2]:
            raise InputImageError(f"{self.name}: line art is {lines.shape[2]}×{lines.shape[1]} but the colour image "
                                  f"is {c.shape[1]}×{c.shape[0]} (width×height); they must be the same size")


@runtime_checkable
class PairSource(Protocol):
    """Anything indexable that yields :class:`Pair` objects (``IndexError`` past the end)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Pair: ...
