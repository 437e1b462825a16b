"""Corrupt, foreign and hostile model/checkpoint/replay files: each is a CheckpointError that
names the file and what is wrong, and nothing in a file runs as code."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from multiq.errors import CheckpointError
from multiq.replay.buffers import MultiTaskReplay
from multiq.tasks.spec import TaskSpec
from multiq.train import checkpoint as ckpt

MARKER = "pwned"


def _touch(path: str) -> None:
    Path(path).touch()


class _Hostile:
    """Unpickling this runs `_touch(marker)`: arbitrary code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def _payload(**changes: object) -> dict:
    payload = {
        "format": "multiq",
        "version": ckpt.FORMAT_VERSION,
        "kind": "checkpoint",
        "meta_json": '{"config": {}, "state": {}, "tasks": []}',
        "online": {"w": torch.ones(2)},
        "learner": {"step": 1},
        "torch_rng": torch.get_rng_state(),
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not None}


def _good_bytes(tmp_path: Path) -> bytes:
    scratch = tmp_path / "good.pt"
    torch.save(_payload(), scratch)
    return scratch.read_bytes()


# name -> (writes the file at `path`, a fragment the message must hold)
TENSOR_CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (
        lambda path, tmp: path.write_bytes(_good_bytes(tmp)[: len(_good_bytes(tmp)) // 2]),
        "is corrupt or not a multiq checkpoint",
    ),
    "random_bytes": (
        lambda path, tmp: path.write_bytes(np.random.default_rng(0).bytes(4096)),
        "is corrupt or not a multiq checkpoint",
    ),
    "empty": (lambda path, tmp: path.write_bytes(b""), "is corrupt or not a multiq checkpoint"),
    "not_multiq": (
        lambda path, tmp: torch.save({"w": torch.ones(2)}, path),
        "is not a multiq checkpoint file",
    ),
    "bad_meta_json": (
        lambda path, tmp: torch.save(_payload(meta_json='{"config": {'), path),
        "metadata (meta_json) is not valid JSON",
    ),
    "meta_a_list": (
        lambda path, tmp: torch.save(_payload(meta_json="[1, 2]"), path),
        "meta_json) is a JSON list, not an object",
    ),
    "meta_a_number": (
        lambda path, tmp: torch.save(_payload(meta_json="7"), path),
        "meta_json) is a JSON int, not an object",
    ),
    "meta_not_text": (
        lambda path, tmp: torch.save(_payload(meta_json=torch.ones(1)), path),
        "without its metadata (meta_json)",
    ),
    "meta_missing": (
        lambda path, tmp: torch.save(_payload(meta_json=None), path),
        "without its metadata (meta_json)",
    ),
    "payload_key_missing": (
        lambda path, tmp: torch.save(_payload(learner=None), path),
        "without 'learner'",
    ),
    "meta_key_missing": (
        lambda path, tmp: torch.save(_payload(meta_json='{"config": {}, "tasks": []}'), path),
        "without 'state'",
    ),
    "wrong_kind": (
        lambda path, tmp: torch.save(_payload(kind="model"), path),
        "holds a multiq model, not a checkpoint",
    ),
    "format_1": (
        lambda path, tmp: torch.save(_payload(version=1), path),
        "format 1 file (multiq 0.1, tasks stored by position)",
    ),
    "future_version": (
        lambda path, tmp: torch.save(_payload(version=99), path),
        "has format version 99; this multiq reads version 2",
    ),
    "hostile_torch_pickle": (
        lambda path, tmp: torch.save(_payload(online={"w": _Hostile(tmp / MARKER)}), path),
        "is corrupt or not a multiq checkpoint (UnpicklingError",
    ),
    "hostile_plain_pickle": (
        lambda path, tmp: path.write_bytes(
            pickle.dumps(_payload(learner=_Hostile(tmp / MARKER)), protocol=2)
        ),
        "is corrupt or not a multiq checkpoint",
    ),
}
REQUIRED = ("online", "learner", "torch_rng", "config", "state", "tasks")


@pytest.mark.parametrize("case", sorted(TENSOR_CASES))
def test_bad_tensor_file_is_a_checkpoint_error(tmp_path: Path, case: str) -> None:
    write, fragment = TENSOR_CASES[case]
    path = tmp_path / "checkpoint.pt"
    write(path, tmp_path)
    assert not (tmp_path / MARKER).exists()
    with pytest.raises(CheckpointError) as info:
        ckpt.load_tensors(path, "checkpoint", required=REQUIRED)
    message = str(info.value)
    assert str(path) in message
    assert fragment in message
    assert not (tmp_path / MARKER).exists(), "loading ran code from the file"


def test_hostile_pickle_would_run_code(tmp_path: Path) -> None:
    """The hostile payload is live: plain unpickling creates the marker."""
    pickle.loads(pickle.dumps(_Hostile(tmp_path / MARKER)))
    assert (tmp_path / MARKER).exists()


def test_required_entries_found_in_payload_or_meta(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save(_payload(), path)
    meta, payload = ckpt.load_tensors(path, "checkpoint", required=REQUIRED)
    assert meta == {"config": {}, "state": {}, "tasks": []}
    assert torch.equal(payload["online"]["w"], torch.ones(2))


def test_missing_entries_are_all_named(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    ckpt.save_tensors(path, "model", {"config": {}}, {"spaces": {}})
    with pytest.raises(CheckpointError, match="without 'online', 'tasks'.*restore it"):
        ckpt.load_tensors(path, "model", required=("online", "config", "tasks"))
    assert ckpt.load_tensors(path, "model")[0] == {"config": {}}  # nothing required


def test_folder_instead_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "model.pt").mkdir()
    with pytest.raises(CheckpointError, match="no model file at"):
        ckpt.load_tensors(tmp_path / "model.pt", "model")


# --- replay.npz -----------------------------------------------------------------------------


def _spec(name: str) -> TaskSpec:
    space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
    return TaskSpec(name, f"{name}-v0", None, space, gym.spaces.Discrete(2))


def _replay() -> MultiTaskReplay:
    return MultiTaskReplay([_spec("a"), _spec("b")], 8, n_envs=2, n_step=1, gamma=0.9)


def _saved_replay(tmp_path: Path) -> Path:
    replay = _replay()
    ones = np.ones(2, bool)
    for _ in range(3):
        obs = np.ones((2, 3), np.float32)
        replay.buffers["a"].add(obs, np.zeros(2), np.ones(2), obs, ~ones, ~ones, ones)
    path = tmp_path / "replay.npz"
    ckpt.save_arrays(path, {**replay.state(), "env_steps": np.array(6)})
    return path


def _npz_bytes(tmp_path: Path) -> bytes:
    return _saved_replay(tmp_path).read_bytes()


ARRAY_CASES: dict[str, Callable[[Path, Path], None]] = {
    "truncated": lambda path, tmp: path.write_bytes(_npz_bytes(tmp)[:300]),
    "random_bytes": lambda path, tmp: path.write_bytes(np.random.default_rng(1).bytes(2048)),
    "empty": lambda path, tmp: path.write_bytes(b""),
    "pickled_object_array": lambda path, tmp: np.savez(
        path, obs=np.zeros(3), evil=np.array([_Hostile(tmp / MARKER), "x"], dtype=object)
    ),
}


@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_bad_replay_file_is_a_checkpoint_error(tmp_path: Path, case: str) -> None:
    path = tmp_path / "damaged.npz"
    ARRAY_CASES[case](path, tmp_path)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_arrays(path)
    message = str(info.value)
    assert str(path) in message and "corrupt or unreadable" in message
    assert "delete it to resume without the saved replay" in message
    assert not (tmp_path / MARKER).exists()


def test_missing_replay_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no replay file at .*missing.npz"):
        ckpt.load_arrays(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"drop": "a/actions"}, "replay array 'a/actions' is missing"),
        ({"drop": "b/size"}, "replay array 'b/size' is missing"),
        ({"a/obs": np.zeros((4, 2, 3), np.float64)}, "'a/obs' is float64 (4, 2, 3)"),
        ({"a/obs": np.zeros((8, 2, 3), np.float32)}, "'a/obs' is float32 (8, 2, 3)"),
        ({"a/size": np.array([9, 9])}, "a/size [9, 9] do not fit"),
        ({"a/pos": np.array([1, 3])}, "a/pos [1, 3] and a/size [3, 3]"),
    ],
)
def test_replay_arrays_that_do_not_fit_are_refused(
    tmp_path: Path, change: dict, fragment: str
) -> None:
    arrays = ckpt.load_arrays(_saved_replay(tmp_path))
    change = dict(change)
    arrays.pop(change.pop("drop", None), None)
    arrays.update(change)
    replay = _replay()
    with pytest.raises(CheckpointError) as info:
        replay.load_state(arrays)
    message = str(info.value)
    assert fragment in message
    assert "replay.npz does not belong to this checkpoint" in message
    assert "delete it to resume without the saved replay" in message
    assert len(replay.buffers["a"]) == 0


def test_saved_replay_round_trip(tmp_path: Path) -> None:
    arrays = ckpt.load_arrays(_saved_replay(tmp_path))
    assert int(arrays.pop("env_steps")) == 6
    replay = _replay()
    replay.load_state(arrays)
    assert len(replay.buffers["a"]) == 6 and len(replay.buffers["b"]) == 0
