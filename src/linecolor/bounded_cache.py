"""A least-recently-used cache bounded by the bytes its values hold, for the caches of decoded or analysed inputs
(:class:`~linecolor.raster.regions.AnalysisCache`, :class:`~linecolor.inference.reference.ReferenceCache`).

:func:`functools.lru_cache` bounds by entry count, and one 4096² analysis holds as much as a thousand small ones:
these caches must bound by memory, so the size of each value is asked for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Values by key, least recently used dropped first, while their ``size`` (bytes) sums over ``max_bytes``.
    Thread-safe. A value larger than ``max_bytes`` on its own is dropped as soon as it is put."""

    def __init__(self, max_bytes: int, size: Callable[[V], int]):
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(self._size(v) for v in self._items.values())

    def get(self, key: K) -> V | None:
        """The value kept for ``key`` (now the most recently used), or None."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` (replacing what was there), drop the least recently used values while the
        total is over the bound, and return ``value``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            total = sum(self._size(v) for v in self._items.values())
            while self._items and total > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                total -= self._size(dropped)
        return value
