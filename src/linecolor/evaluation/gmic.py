"""G'MIC's "Colorize Lineart [Smart Coloring]" (Fourey, Tschumperlé & Revoy 2018) as an evaluation peer.

Runs the ``gmic`` command-line program (Debian package ``gmic``; G'MIC 2.9) in a subprocess: its filter
``fx_colorize_lineart_smart`` in mode 1, "extrapolate colour spots on a transparent top layer", with the
plug-in's default parameters (:data:`PARAMETERS`). The filter reads two layers — the colour spots (RGBA; only fully
opaque pixels are spots) above the line art — and returns a flat colour layer without lines (every pixel coloured:
regions without a spot take a neighbour's colour); the line art is multiplied on afterwards, as for every method
here. Nothing of G'MIC is copied into linecolor: it is only called.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from linecolor.errors import LinecolorError

__all__ = ["PARAMETERS", "gmic_available", "gmic_colorize"]

PARAMETERS = "1,95,0,0,1,24,200,0,75,2,60,20,90,1,10,1"
"""Mode 1 and the plug-in's defaults, in the filter's order: colorize mode, contour detection 95 %, keep contour
guides, no region delimiters, the random-mode settings (unused), no shading, end-point rate 75 %, end-point
connectivity 2, spline max length 60 px, segment max length 20 px, spline max angle 90°, spline roundness 1,
min region area 10 px, self-intersections allowed."""
TIMEOUT_S = 600.0


def gmic_available() -> bool:
    """Whether the ``gmic`` program is on the PATH."""
    return shutil.which("gmic") is not None


def gmic_colorize(line: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """G'MIC's smart colouring of ``line`` (uint8 (H, W)) from the hint pixels → uint8 (H, W, 3), lines
    multiplied on. Without hints it returns the bare line art (the filter needs at least one spot).

    Raises:
        LinecolorError: ``gmic`` is not installed or failed.
    """
    if not gmic_available():
        raise LinecolorError("G'MIC is not installed (Debian package 'gmic'); the G'MIC baseline is skipped")
    if not hint_mask.any():
        return np.repeat(line[..., None], 3, axis=2)
    spots = np.zeros(line.shape + (4,), np.uint8)
    spots[hint_mask, :3] = hint_rgb[hint_mask]
    spots[hint_mask, 3] = 255
    with tempfile.TemporaryDirectory(prefix="linecolor-gmic-") as tmp:
        folder = Path(tmp)
        Image.fromarray(spots, "RGBA").save(folder / "spots.png")
        Image.fromarray(np.repeat(line[..., None], 3, axis=2)).save(folder / "line.png")
        command = ["gmic", "-v", "-1", str(folder / "spots.png"), str(folder / "line.png"),
                   "fx_colorize_lineart_smart", PARAMETERS, "output[2]", str(folder / "colours.png")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        out = folder / "colours.png"
        if result.returncode != 0 or not out.is_file():
            raise LinecolorError(f"gmic failed (exit {result.returncode}): {result.stderr.strip()[-300:]}")
        colours = np.asarray(Image.open(out).convert("RGB"), dtype=np.uint16)
    multiplied = (colours * line[..., None].astype(np.uint16) + 127) // 255
    return multiplied.astype(np.uint8)
