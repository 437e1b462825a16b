"""Checkpoints and saved models: written atomically, read without unpickling arbitrary objects.

Tensors go through `torch.save` and come back with `torch.load(weights_only=True)`, which only
rebuilds tensors and plain containers; everything else (config, counters, numpy RNG state, task
specs) is JSON. Format 2 names its tasks: each task's name, source entry, observation and
action spaces are saved (`spec_record`), and every weight is keyed by task name, so a model
loads without building envs and loads by name into another task set. Replay buffers are
compressed `.npz` files read with `allow_pickle=False`; bool arrays (MinAtar's observation
channels) are stored eight to a byte (`np.packbits`); with
`multiq.replay.buffers.without_successor_obs` the replay of the five MinAtar games (5 x 100k
transitions, 627 MB of arrays) takes 3.4 MB. Each file is written with
`multiq.runio.files.atomic_write` (a temp file in the same folder moved into place with
`os.replace`), so a kill or a full disk during a write leaves the previous file intact.

A file that loads but holds something odd (metadata that is not a JSON object, an entry the
caller needs missing) is refused with a `CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.errors import CheckpointError
from multiq.replay.buffers import with_successor_obs, without_successor_obs
from multiq.runio.files import atomic_write
from multiq.runio.layout import CHECKPOINT_FILE, MODEL_FILE, REPLAY_FILE

__all__ = [
    "CHECKPOINT_FILE",
    "MODEL_FILE",
    "REPLAY_FILE",
    "atomic_write",
    "load_arrays",
    "load_replay",
    "load_tensors",
    "save_arrays",
    "save_replay",
    "save_tensors",
]

FORMAT = "multiq"
FORMAT_VERSION = 2  # 2: tasks and weights keyed by task name, task specs saved


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


def load_tensors(
    path: Path,
    kind: str,
    map_location: str | torch.device = "cpu",
    required: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads a file written by `save_tensors`; returns (meta, payload).

    Args:
        path: the file.
        kind: what it must hold: "model" or "checkpoint".
        map_location: where the tensors go.
        required: names that must be present, each a top-level payload entry (e.g.
            "online", "learner", "torch_rng") or a meta entry (e.g. "config", "state", "tasks").

    Raises:
        CheckpointError: missing, corrupt, not a multiq file, of another kind or format
            version, with metadata that is not a JSON object, or lacking a required entry.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {kind} file at {path}")
    payload = _torch_load(path, kind, map_location)
    _check_header(payload, path, kind)
    meta = _read_meta(payload, path, kind)
    missing = [name for name in required if name not in payload and name not in meta]
    if missing:
        raise CheckpointError(
            f"{path} is a multiq {kind} without {', '.join(map(repr, missing))}: the file is "
            "incomplete or was not written by multiq; restore it from a copy or start a new run"
        )
    return meta, payload


def _torch_load(path: Path, kind: str, map_location: str | torch.device) -> Any:
    """`torch.load` with `weights_only=True`: tensors and plain containers, nothing else."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is corrupt or not a multiq {kind} ({type(error).__name__}: "
            f"{(str(error).splitlines() or [''])[0][:200]}); "
            "restore it from a copy or start a new run"
        ) from error


def _check_header(payload: Any, path: Path, kind: str) -> None:
    """Refuses a file that is not a multiq file of `kind` in this format version."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a multiq {kind} file; give a {kind} file that multiq wrote"
        )
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
            f"version {FORMAT_VERSION}: use the multiq version that wrote it"
        )


def _read_meta(payload: Mapping[str, Any], path: Path, kind: str) -> dict[str, Any]:
    """The payload's `meta_json` entry, which must be a JSON object."""
    fix = "the file is damaged: restore it from a copy or start a new run"
    text = payload.get("meta_json")
    if not isinstance(text, str):
        raise CheckpointError(f"{path} is a multiq {kind} without its metadata (meta_json); {fix}")
    try:
        meta = json.loads(text)
    except ValueError as error:
        raise CheckpointError(
            f"{path}: the {kind}'s metadata (meta_json) is not valid JSON ({error}); {fix}"
        ) from error
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{path}: the {kind}'s metadata (meta_json) is a JSON {type(meta).__name__}, "
            f"not an object; {fix}"
        )
    return meta


BITS_SUFFIX = "#bits"  # a bool array `x` is saved as `x#bits` (np.packbits) and `x#shape`
SHAPE_SUFFIX = "#shape"


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes numpy arrays to a compressed .npz file atomically, bool arrays as bits."""
    stored: dict[str, Any] = {}  # name -> array (Any: numpy's stub reads **kwds as allow_pickle)
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype == np.bool_:
            stored[name + BITS_SUFFIX] = np.packbits(array.ravel())
            stored[name + SHAPE_SUFFIX] = np.array(array.shape, dtype=np.int64)
        else:
            stored[name] = array
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **stored))


def _unpacked(data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays `save_arrays` was given: bit-packed bool arrays unpacked to their shapes
    (files of earlier versions, without packed arrays, come back as they are)."""
    arrays = {}
    for key, value in data.items():
        if key.endswith(SHAPE_SUFFIX):
            continue
        if key.endswith(BITS_SUFFIX):
            name = key[: -len(BITS_SUFFIX)]
            shape = tuple(int(n) for n in data[name + SHAPE_SUFFIX])
            count = int(np.prod(shape, dtype=np.int64))
            value = np.unpackbits(value, count=count).view(np.bool_).reshape(shape)
            key = name
        arrays[key] = value
    return arrays


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Reads an .npz written by `save_arrays` (no pickled objects allowed).

    Raises:
        CheckpointError: the file is missing, corrupt, or holds pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no replay file at {path}; restore it from a copy, or resume without it "
            "(the replay buffers then refill)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return _unpacked({key: data[key] for key in data.files})
    except Exception as error:
        raise CheckpointError(
            f"replay file {path} is corrupt or unreadable ({type(error).__name__}: {error}); "
            "delete it to resume without the saved replay"
        ) from error


def save_replay(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes `MultiTaskReplay.state()` arrays (plus scalars) as `save_arrays` does, each
    `next_obs` kept only where it is not the next row's `obs` (`without_successor_obs`)."""
    save_arrays(path, without_successor_obs(arrays))


def load_replay(path: Path) -> dict[str, np.ndarray]:
    """Reads a file written by `save_replay` (or, whole, by earlier versions).

    Raises:
        CheckpointError: as `load_arrays`, or saved rows that do not fit their arrays.
    """
    return with_successor_obs(load_arrays(path))
