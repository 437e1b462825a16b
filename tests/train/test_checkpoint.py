"""Checkpoint files: atomic writes, safe loading (no arbitrary unpickling), clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from multiq.errors import CheckpointError
from multiq.train import checkpoint as ckpt

# --- helpers --------------------------------------------------------------------------------


def _tensors(value: float = 1.0) -> dict:
    return {
        "agent": {
            "online": {"w": torch.full((3, 2), value), "b": torch.arange(4, dtype=torch.int64)},
            "optimizer": {"step": 7, "lr": 1e-3, "nested": [torch.zeros(2), 3]},
        },
        "torch_rng": torch.get_rng_state(),
    }


def _meta() -> dict:
    return {
        "config": {"tasks": "classic:CartPole", "learning_rate": 1e-3, "task_weights": None},
        "state": {"env_steps": 400, "updates": 75, "last_eval": {"CartPole": {"x": 1.5}}},
        "numpy_rng": np.random.default_rng(3).bit_generator.state,
    }


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


class _Marker:
    """Unpickling an instance of this class creates the marker file (arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- round trips ----------------------------------------------------------------------------


def test_save_load_tensors_round_trip(tmp_path):
    path = tmp_path / "sub" / "checkpoint.pt"  # the parent folder is created
    tensors = _tensors(2.5)
    ckpt.save_tensors(path, "checkpoint", _meta(), tensors)

    meta, payload = ckpt.load_tensors(path, "checkpoint")

    assert meta == _meta()
    assert payload["kind"] == "checkpoint"
    online = payload["agent"]["online"]
    assert torch.equal(online["w"], tensors["agent"]["online"]["w"])
    assert torch.equal(online["b"], tensors["agent"]["online"]["b"])
    assert online["b"].dtype == torch.int64
    assert payload["agent"]["optimizer"]["step"] == 7
    assert payload["agent"]["optimizer"]["lr"] == 1e-3
    assert torch.equal(payload["agent"]["optimizer"]["nested"][0], torch.zeros(2))
    assert torch.equal(payload["torch_rng"], tensors["torch_rng"])
    assert _leftovers(path.parent, {"checkpoint.pt"}) == []


def test_save_overwrites_previous_file(tmp_path):
    path = tmp_path / "model.pt"
    ckpt.save_tensors(path, "model", {"v": 1}, {"online": {"w": torch.ones(2)}})
    ckpt.save_tensors(path, "model", {"v": 2}, {"online": {"w": torch.full((2,), 5.0)}})
    meta, payload = ckpt.load_tensors(path, "model")
    assert meta == {"v": 2}
    assert torch.equal(payload["online"]["w"], torch.full((2,), 5.0))
    assert _leftovers(tmp_path, {"model.pt"}) == []


def test_save_load_arrays_round_trip(tmp_path):
    path = tmp_path / "replay.npz"
    arrays = {
        "0/obs": np.random.default_rng(0).random((5, 1, 4)).astype(np.float32),
        "0/actions": np.arange(5, dtype=np.int64).reshape(5, 1),
        "0/done": np.array([[True], [False], [False], [True], [False]]),
        "env_steps": np.array(400),
    }
    ckpt.save_arrays(path, arrays)
    loaded = ckpt.load_arrays(path)
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)
    assert _leftovers(tmp_path, {"replay.npz"}) == []


def test_bool_arrays_are_saved_as_bits_and_come_back_whole(tmp_path):
    path = tmp_path / "replay.npz"
    rng = np.random.default_rng(0)
    obs = rng.random((1000, 1, 4, 10, 10)) < 0.05  # MinAtar-like: sparse bool channels
    arrays = {"Asterix/obs": obs, "Asterix/done": np.array([[True], [False], [True]]),
              "empty": np.zeros((0, 3), bool), "env_steps": np.array(7)}  # fmt: skip
    ckpt.save_arrays(path, arrays)
    with np.load(path) as raw:
        assert raw["Asterix/obs#bits"].dtype == np.uint8
        assert raw["Asterix/obs#bits"].size == obs.size // 8
        assert "Asterix/obs" not in raw.files
    assert path.stat().st_size < obs.nbytes / 8
    loaded = ckpt.load_arrays(path)
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key], value)


def test_replay_files_of_earlier_versions_still_load(tmp_path):
    path = tmp_path / "replay.npz"
    arrays = {"a/obs": np.array([[True, False, True]]), "a/actions": np.arange(3)}
    np.savez(path, **arrays)  # uncompressed, bools one per byte
    loaded = ckpt.load_arrays(path)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype


def test_packed_array_without_its_shape_is_corrupt(tmp_path):
    path = tmp_path / "replay.npz"
    np.savez(path, **{"a/obs#bits": np.packbits(np.ones(8, bool))})
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        ckpt.load_arrays(path)


# --- interrupted writes ---------------------------------------------------------------------


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_interrupted_torch_save_keeps_previous_file(tmp_path, monkeypatch, error):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_tensors(path, "checkpoint", {"round": 1}, _tensors(1.0))
    before = path.read_bytes()

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial zip bytes")  # half a file, then the process "dies"
        f.flush()
        raise error("killed during the write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(error):
        ckpt.save_tensors(path, "checkpoint", {"round": 2}, _tensors(2.0))
    monkeypatch.undo()

    assert path.read_bytes() == before
    meta, payload = ckpt.load_tensors(path, "checkpoint")
    assert meta == {"round": 1}
    assert torch.equal(payload["agent"]["online"]["w"], torch.full((3, 2), 1.0))
    assert _leftovers(tmp_path, {"checkpoint.pt"}) == []


def test_atomic_write_callback_error_keeps_previous_file(tmp_path):
    path = tmp_path / "summary.json"
    ckpt.atomic_write(path, lambda f: f.write(b'{"old": true}'))

    def failing(f):
        f.write(b'{"new": tr')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.atomic_write(path, failing)
    assert path.read_bytes() == b'{"old": true}'
    assert _leftovers(tmp_path, {"summary.json"}) == []


def test_interrupted_array_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "replay.npz"
    ckpt.save_arrays(path, {"a": np.arange(3)})

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_arrays(path, {"a": np.arange(10)})
    monkeypatch.undo()

    np.testing.assert_array_equal(ckpt.load_arrays(path)["a"], np.arange(3))
    assert _leftovers(tmp_path, {"replay.npz"}) == []


# --- corrupt and foreign files --------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(CheckpointError, match="no model file") as info:
        ckpt.load_tensors(path, "model")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_file_is_a_checkpoint_error(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_tensors(path, "checkpoint", _meta(), _tensors())
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        path.write_bytes(b"")

    with pytest.raises(CheckpointError) as info:
        ckpt.load_tensors(path, "checkpoint")
    message = str(info.value)
    assert str(path) in message
    assert "corrupt" in message


@pytest.mark.parametrize("how", ["torch_save", "plain_pickle"])
def test_arbitrary_objects_are_not_unpickled(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    evil = {"format": "multiq", "version": 1, "kind": "model", "meta_json": "{}"}
    evil["online"] = {"w": torch.ones(2), "payload": _Marker(marker)}
    if how == "torch_save":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil, protocol=2))
    assert not marker.exists()

    with pytest.raises(CheckpointError) as info:
        ckpt.load_tensors(path, "model")

    assert not marker.exists(), "loading ran code from the file"
    assert str(path) in str(info.value)


def test_plain_torch_file_is_not_a_multiq_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)  # a valid, safe torch file, but not ours
    with pytest.raises(CheckpointError, match="not a multiq model"):
        ckpt.load_tensors(path, "model")


@pytest.mark.parametrize(("saved", "wanted"), [("model", "checkpoint"), ("checkpoint", "model")])
def test_wrong_kind(tmp_path, saved, wanted):
    path = tmp_path / "file.pt"
    ckpt.save_tensors(path, saved, {}, {"online": {"w": torch.ones(1)}})
    with pytest.raises(CheckpointError) as info:
        ckpt.load_tensors(path, wanted)
    message = str(info.value)
    assert str(path) in message
    assert saved in message and wanted in message


def test_other_format_version(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 99)
    ckpt.save_tensors(path, "model", {}, {})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="version 99"):
        ckpt.load_tensors(path, "model")


def test_load_arrays_refuses_object_arrays(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "replay.npz"
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = _Marker(marker), "text"
    np.savez(path, obs=np.zeros(3), evil=objects)
    assert not marker.exists()

    with pytest.raises(CheckpointError) as info:
        ckpt.load_arrays(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_load_arrays_corrupt_file(tmp_path):
    path = tmp_path / "replay.npz"
    path.write_bytes(b"not an npz at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.load_arrays(path)
