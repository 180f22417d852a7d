"""Training checkpoints: one directory per step, committed atomically.

Layout of ``<run>/checkpoints/step-00001000/``:
    weights.safetensors   generator+style encoder ("colorizer.*"), discriminator ("discriminator.*"), EMA ("ema.*")
    state.pt              optimisers, schedulers, step, RNG states, counters (torch.save of tensors and plain
                          containers only; loaded with ``weights_only=True``, never a full unpickle)
    config.json           the full ExperimentConfig of the run
    COMMITTED             written last: JSON with the step and the SHA-256 of every file above

A checkpoint is first written to ``.tmp-step-…`` in the same directory, every file fsync'ed, the commit marker
written, and only then the directory renamed to its final name (``os.replace`` is atomic on one file system).
A SIGKILL at any moment therefore leaves either the previous checkpoints or the new complete one, never a
partial directory under a final name. Old checkpoints are deleted only after the new one is committed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from linecolor.errors import WeightsError
from linecolor.models.saved import file_sha256

CHECKPOINT_DIR = "checkpoints"
COMMIT_MARKER = "COMMITTED"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint directory and its contents (loaded lazily by :func:`load_checkpoint`)."""

    path: Path
    step: int


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                    config: dict[str, Any], keep: int) -> Path:
    """Write and commit the checkpoint of ``step``; then prune all but the newest ``keep`` committed ones."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp / "weights.safetensors"),
              metadata={"format": "pt", "step": str(step)})
    torch.save(state, tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    files = ("weights.safetensors", "state.pt", "config.json")
    for name in files:
        _fsync_file(tmp / name)
    marker = {"step": step, "sha256": {name: file_sha256(tmp / name) for name in files}}
    (tmp / COMMIT_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
    _fsync_file(tmp / COMMIT_MARKER)
    _fsync_dir(tmp)
    if final.exists():  # a re-run of the same step (e.g. after a resume): replace it only now, when complete
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    prune_checkpoints(run_dir, keep)
    return final


def remove_stale_partials(run_dir: Path) -> list[Path]:
    """Delete ``.tmp-step-*-PID`` directories left by writers that died (PID no longer running); return them.

    A partial checkpoint is never under a final name, so it is never loaded; this only reclaims its disk space.
    The PID check keeps the partial of a writer that is still running (another rank, another process) alone.
    """
    root = checkpoint_root(run_dir)
    removed = []
    for path in root.glob(".tmp-step-*") if root.is_dir() else ():
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or (int(pid) != os.getpid() and _pid_alive(int(pid))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Committed checkpoints (with a commit marker), oldest first. Temporary and unmarked directories are ignored."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and child.is_dir() and (child / COMMIT_MARKER).is_file():
            found.append(Checkpoint(child, int(m.group(1))))
    return sorted(found, key=lambda c: c.step)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete committed checkpoints beyond the newest ``keep`` and stale temporary directories of dead writers."""
    committed = list_checkpoints(run_dir)
    for old in committed[:-keep] if keep > 0 else []:
        shutil.rmtree(old.path, ignore_errors=True)
    root = checkpoint_root(run_dir)
    for child in root.iterdir():
        if child.name.startswith(".tmp-step-") and not child.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(child, ignore_errors=True)


def verify_checkpoint(path: Path) -> int:
    """Check the commit marker and every file's SHA-256; return the step. Raises :class:`WeightsError`."""
    path = Path(path)
    marker_path = path / COMMIT_MARKER
    if not marker_path.is_file():
        raise WeightsError(f"{path} is not a committed checkpoint (no {COMMIT_MARKER} marker)")
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
        for name, digest in marker["sha256"].items():
            if not (path / name).is_file() or file_sha256(path / name) != digest:
                raise WeightsError(f"checkpoint {path}: {name} is missing or does not match its recorded SHA-256")
        return int(marker["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"checkpoint {path}: unreadable commit marker ({exc})") from exc


def find_latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest committed checkpoint that verifies (``--resume auto``); corrupted ones are skipped."""
    for ckpt in reversed(list_checkpoints(run_dir)):
        try:
            verify_checkpoint(ckpt.path)
        except WeightsError:
            continue
        return ckpt
    return None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Verify and load (tensors, trainer state, config dict) of a committed checkpoint directory."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        tensors = load_file(str(path / "weights.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"checkpoint {path}: weights unreadable ({exc})") from exc
    # weights_only=True: only tensors and plain containers are rebuilt; no code from the file runs.
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return tensors, state, config


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The sub-dict of ``tensors`` under ``prefix.`` with the prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def add_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}
