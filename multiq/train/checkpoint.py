"""Checkpoints and saved models: written atomically, read without unpickling arbitrary objects.

Tensors go through `torch.save` and come back with `torch.load(weights_only=True)`, which only
rebuilds tensors and plain containers; everything else (config, counters, numpy RNG state, task
specs) is JSON. Format 2 names its tasks: each task's name, source entry, observation and
action spaces are saved (`spec_record`), and every weight is keyed by task name, so a model
loads without building envs and loads by name into another task set. Replay buffers are `.npz`
files read with `allow_pickle=False`. Each file is written to a
temporary name in the same folder and moved into place with `os.replace`, so a kill during a
write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.errors import CheckpointError
from multiq.rundir import CHECKPOINT_FILE, MODEL_FILE, REPLAY_FILE

__all__ = [
    "CHECKPOINT_FILE",
    "MODEL_FILE",
    "REPLAY_FILE",
    "atomic_write",
    "load_arrays",
    "load_tensors",
    "save_arrays",
    "save_tensors",
]

FORMAT = "multiq"
FORMAT_VERSION = 2  # 2: tasks and weights keyed by task name, task specs saved


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Calls `write(binary_file)` on a temp file, fsyncs it and renames it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_tensors(path: Path, kind: str, meta: dict[str, Any], tensors: dict[str, Any]) -> None:
    """Writes `tensors` (nested dicts of tensors and numbers) plus JSON `meta` to `path`."""
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "meta_json": json.dumps(meta),
        **tensors,
    }
    atomic_write(Path(path), lambda f: torch.save(payload, f))


def load_tensors(path: Path, kind: str, map_location: str | torch.device = "cpu"):
    """Reads a file written by `save_tensors`; returns (meta, payload).

    Raises:
        CheckpointError: missing, corrupt, not a multiq file, or of another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {kind} file at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is corrupt or not a multiq {kind} ({type(error).__name__}: "
            f"{(str(error).splitlines() or [''])[0][:200]}); "
            "restore it from a copy or start a new run"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a multiq {kind} file")
    if payload.get("kind") != kind:
        raise CheckpointError(f"{path} holds a multiq {payload.get('kind')}, not a {kind}")
    if payload.get("version") == 1:
        raise CheckpointError(
            f"{path} is a multiq checkpoint format 1 file (multiq 0.1, tasks stored by position); "
            f"this multiq reads format {FORMAT_VERSION} (tasks stored by name) and cannot convert "
            "it. Train the run again with this multiq, or evaluate the old file with "
            "multiq 0.1.0 (pip install multiq==0.1.0)"
        )
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {payload.get('version')}; this multiq reads "
            f"version {FORMAT_VERSION}"
        )
    return json.loads(payload["meta_json"]), payload


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes numpy arrays to an .npz file atomically."""
    atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Reads an .npz written by `save_arrays` (no pickled objects allowed)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as error:
        raise CheckpointError(f"replay file {path} is corrupt or unreadable: {error}") from error
