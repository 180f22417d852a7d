"""Torch's import-time scratch directories, kept out of a shared TMPDIR.

Importing ``torch._dynamo`` creates ``$TMPDIR/torchinductor_<user>`` (torch 2.13, ``torch/_dynamo/package.py``)
unless ``TORCHINDUCTOR_CACHE_DIR`` names a place. Code of ours that first imports it (building a model on the meta
device, where ``torch._refs`` pulls it in; ``torch.onnx.export``) runs inside :func:`torch_scratch_removed_afterwards`,
so a server leaves nothing behind in TMPDIR.
"""

from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["torch_scratch_removed_afterwards"]

TORCH_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
_LOCK = threading.RLock()  # the variable is process-wide: one block at a time, so none removes another's directory


@contextmanager
def torch_scratch_removed_afterwards() -> Iterator[None]:
    """Within the block torch's cache directory is a fresh temporary directory, removed with everything in it on
    exit; a caller's own ``TORCHINDUCTOR_CACHE_DIR`` is respected and left alone. Not for code that wants torch's
    compile caches to persist (the ``compile`` backend runs outside it)."""
    with _LOCK:
        if TORCH_CACHE_ENV in os.environ:
            yield
            return
        with tempfile.TemporaryDirectory(prefix="linecolor-torch-") as scratch:
            os.environ[TORCH_CACHE_ENV] = scratch
            try:
                yield
            finally:
                os.environ.pop(TORCH_CACHE_ENV, None)
