"""A full (or read-only) disk while writing: RunDirError naming the file, previous file intact,
no temp file left."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from tmpfs import mounted_tmpfs

from multiq.errors import RunDirError
from multiq.runio.files import atomic_write, atomic_write_text
from multiq.runio.tracking import Tracker
from multiq.train import checkpoint as ckpt

BIG = {"online": {"w": torch.zeros(64 * 1024)}}  # 256 KiB of weights


def _assert_full_disk_error(error: RunDirError, path: Path) -> None:
    message = str(error)
    assert f"cannot write {path}: " in message
    assert "No space left on device (ENOSPC)" in message
    assert "free space on the disk" in message and "choose another --run-dir" in message


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- a real full file system ----------------------------------------------------------------


def test_checkpoint_bigger_than_the_disk(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "mnt", "64k") as disk:
        path = disk / "checkpoint.pt"
        ckpt.save_tensors(path, "checkpoint", {"round": 1}, {"online": {"w": torch.ones(4)}})
        with pytest.raises(RunDirError) as info:
            ckpt.save_tensors(path, "checkpoint", {"round": 2}, BIG)
        _assert_full_disk_error(info.value, path)
        meta, payload = ckpt.load_tensors(path, "checkpoint")
        assert meta == {"round": 1} and torch.equal(payload["online"]["w"], torch.ones(4))
        assert _names(disk) == {"checkpoint.pt"}


def test_replay_bigger_than_the_disk(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "mnt", "64k") as disk:
        path = disk / "replay.npz"
        ckpt.save_arrays(path, {"a": np.arange(3)})
        with pytest.raises(RunDirError) as info:
            noise = np.random.default_rng(0).random(64 * 1024)  # 512 KiB that do not compress
            ckpt.save_arrays(path, {"a": noise})
        _assert_full_disk_error(info.value, path)
        np.testing.assert_array_equal(ckpt.load_arrays(path)["a"], np.arange(3))
        assert _names(disk) == {"replay.npz"}


def test_metrics_row_on_a_full_disk(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "mnt", "64k") as disk:
        tracker = Tracker(disk, ["A"], 100, tensorboard=False, progress_bar=False)
        with open(disk / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:  # fill the disk
                filler.write(b"\0" * 4096)
        with pytest.raises(RunDirError) as info:
            for step in range(1000):
                tracker.log(step, {f"train/{'x' * 200}": 1.0})
        _assert_full_disk_error(info.value, disk / "metrics.csv")
        (disk / "filler").unlink()
        with contextlib.suppress(RunDirError):
            tracker.close()


# --- patched OS errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOSPC, "free space on the disk"),
        (errno.EDQUOT, "raise the quota"),
        (errno.EROFS, "make the folder writable"),
        (errno.EACCES, "make the folder writable"),
        (errno.EPERM, "make the folder writable"),
    ],
)
def test_os_error_while_writing_is_a_run_dir_error(tmp_path: Path, code: int, fix: str) -> None:
    path = tmp_path / "summary.json"
    atomic_write_text(path, '{"old": true}')

    def failing(handle) -> None:
        handle.write(b'{"new": tr')
        raise OSError(code, os.strerror(code))

    with pytest.raises(RunDirError) as info:
        atomic_write(path, failing)
    message = str(info.value)
    assert f"cannot write {path}: {os.strerror(code)} ({errno.errorcode[code]})" in message
    assert fix in message and "--run-dir" in message
    assert isinstance(info.value.__cause__, OSError)
    assert path.read_text() == '{"old": true}'
    assert _names(tmp_path) == {"summary.json"}


def test_full_disk_inside_torch_save_is_a_run_dir_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save reports a failed write as a RuntimeError; the OSError is in its context."""
    path = tmp_path / "model.pt"
    ckpt.save_tensors(path, "model", {"v": 1}, {"online": {"w": torch.ones(2)}})
    before = path.read_bytes()
    real_save = torch.save

    class FullFile:
        def __init__(self, handle) -> None:
            self.handle = handle

        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str):
            return getattr(self.handle, name)

    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, FullFile(f)))
    with pytest.raises(RunDirError) as info:
        ckpt.save_tensors(path, "model", {"v": 2}, BIG)
    _assert_full_disk_error(info.value, path)
    assert path.read_bytes() == before
    assert _names(tmp_path) == {"model.pt"}


def test_full_disk_at_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "replay.npz"
    ckpt.save_arrays(path, {"a": np.arange(3)})

    def full_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_fsync)
    with pytest.raises(RunDirError) as info:
        ckpt.save_arrays(path, {"a": np.arange(10)})
    monkeypatch.undo()
    _assert_full_disk_error(info.value, path)
    np.testing.assert_array_equal(ckpt.load_arrays(path)["a"], np.arange(3))
    assert _names(tmp_path) == {"replay.npz"}


def test_other_errors_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"

    def failing(handle) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(path, failing)
    assert _names(tmp_path) == set()
