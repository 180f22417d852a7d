"""Exception types shared by the library, the CLI and the server.

Every error a user can cause derives from :class:`LinecolorError`; the CLI prints its message and exits
non-zero instead of showing a traceback, and the server maps it to a 4xx JSON answer.
"""

from __future__ import annotations


class LinecolorError(Exception):
    """Base class for errors caused by input or configuration (not by a bug in linecolor)."""


class ConfigError(LinecolorError, ValueError):
    """A configuration value or file is invalid. The message lists every problem found, not just the first."""

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} configuration problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class InputImageError(LinecolorError, ValueError):
    """An input image is missing, undecodable, of a refused format, too large, or of the wrong size."""


class UnsupportedImageFormat(InputImageError):
    """The bytes are an image in a format linecolor refuses to open (only PNG, JPEG and WebP are opened)."""


class ImageTooLarge(InputImageError):
    """The image declares more pixels than the configured cap (checked before any pixel is decoded)."""


class WeightsError(LinecolorError):
    """Model weights are missing, truncated, not safetensors, or do not match the configuration."""
