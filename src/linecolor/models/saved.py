"""A saved model directory, read without torch: ``config.json`` (the :class:`~linecolor.config.ModelConfig`, the
format tag, the linecolor version and the SHA-256 of the weights) beside ``model.safetensors``.

Kept apart from :mod:`linecolor.models.colorizer` so that a cold start that finds the model's exported graph in the
cache (:mod:`linecolor.inference.graph`) can check the directory and run it without importing torch, which alone
takes 2–3 s on a 2-core CPU.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from linecolor.config import ModelConfig, from_dict, to_dict
from linecolor.errors import ConfigError, WeightsError
from linecolor.limits import MAX_CONFIG_FILE_BYTES

__all__ = ["CONFIG_NAME", "FORMAT_TAG", "WEIGHTS_NAME", "config_digest", "file_sha256", "load_model_config",
           "read_model_config"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_TAG = "linecolor-colorizer"
"""The ``_format`` entry of every linecolor ``config.json``."""


def load_model_config(directory: str | Path) -> ModelConfig:
    """Read and validate ``config.json`` of a saved model directory."""
    return read_model_config(directory)[0]


def config_digest(config: ModelConfig) -> str:
    """SHA-256 of the canonical JSON of ``config`` (sorted keys, no spaces): stored in the weights' metadata."""
    text = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_model_config(directory: str | Path) -> tuple[ModelConfig, str | None]:
    """The validated config of a model directory and the weights' SHA-256 it records (``None`` if absent).

    Raises:
        WeightsError: no such directory, no config, a config too large, not JSON, not linecolor's, or out of bounds.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsError(f"model directory not found: {directory}")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise WeightsError(f"{CONFIG_NAME} missing in {directory} (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
    try:
        if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
            raise WeightsError(f"{path} is larger than {MAX_CONFIG_FILE_BYTES // 1024} KiB: not a linecolor model config")
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
        raise WeightsError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("_format") != FORMAT_TAG:
        raise WeightsError(f"{path} is not a linecolor model config")
    data = {k: v for k, v in raw.items() if not k.startswith("_")}
    try:
        config = from_dict(ModelConfig, data)
    except ConfigError as exc:
        raise WeightsError(f"{path}: {exc}") from exc
    expected = raw.get("_weights_sha256")
    return config, expected if isinstance(expected, str) else None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
