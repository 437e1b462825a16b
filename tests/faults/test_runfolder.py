"""RunFolder (the lock, clean-up and checks on entry), file modes, claim_run_dir, run.json."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from tmpfs import mounted_tmpfs

import multiq
import multiq.runio.folder
import multiq.runio.layout
from multiq.errors import RunDirError
from multiq.runio.files import atomic_write, atomic_write_text
from multiq.runio.folder import RunFolder, git_commit, run_id, write_run_record
from multiq.runio.layout import claim_run_dir, new_run_dir

REPO_ROOT = Path(multiq.__file__).resolve().parents[1]
HOLDER = """
import sys, time
from multiq.runio.folder import RunFolder
RunFolder(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


@contextlib.contextmanager
def _holder_process(run_dir: Path) -> Iterator[subprocess.Popen]:
    """A python process that holds `run_dir`'s lock until killed."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


# --- the lock -------------------------------------------------------------------------------


def test_second_runfolder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with RunFolder(run_dir) as first:
        assert first.held
        with pytest.raises(RunDirError) as info:
            RunFolder(run_dir).acquire()
        message = str(info.value)
        assert str(run_dir) in message
        assert f"process {os.getpid()} (this process)" in message
        assert "choose another --run-dir" in message
    with RunFolder(run_dir):  # released on exit
        pass


def test_lock_held_by_another_process_names_its_pid(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with _holder_process(run_dir) as holder:
        with pytest.raises(RunDirError) as info:
            RunFolder(run_dir).acquire()
        message = str(info.value)
        assert f"in use by process {holder.pid} on host" in message
        assert "wait for it to finish or choose another --run-dir" in message


def test_stale_lock_of_a_killed_run_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    with _holder_process(run_dir) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert json.loads((run_dir / ".lock").read_text())["pid"] == holder.pid  # left behind
    with caplog.at_level(logging.INFO, logger="multiq.runio.folder"), RunFolder(run_dir):
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    assert any(f"process {holder.pid}" in r.getMessage() for r in caplog.records)
    assert (run_dir / ".lock").read_text() == ""  # released: the file stays, empty


def test_release_then_acquire_again(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.acquire()
    folder.acquire()  # already held: a no-op
    folder.release()
    folder.release()
    assert not folder.held
    with RunFolder(tmp_path / "run"):
        pass


# --- clean-up and checks on entry -----------------------------------------------------------


def test_leftover_temp_files_are_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    leftovers = [".checkpoint.pt.k3j2_x9a.tmp", ".config.yaml.4242.deadbeef.tmp"]
    kept = ["checkpoint.pt", "notes.tmp", ".hidden", ".x.tmp"]
    for name in leftovers + kept:
        (run_dir / name).write_text("x")
    with caplog.at_level(logging.INFO, logger="multiq.runio.folder"), RunFolder(run_dir):
        names = {p.name for p in run_dir.iterdir()}
    assert names == {*kept, ".lock"}
    assert any("removed 2 temp file" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", ["metrics.csv", "checkpoint.pt", "run.json", "tb"])
def test_symbolic_link_at_a_run_file_is_refused(tmp_path: Path, name: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / name).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunDirError, match=f"{name} is a symbolic link.*remove it"):
        RunFolder(run_dir).acquire()
    (run_dir / name).unlink()
    with RunFolder(run_dir):  # the refusal released the lock
        pass


def test_symbolic_link_at_the_lock_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(tmp_path / "target")
    with pytest.raises(RunDirError, match=r"\.lock is a symbolic link"):
        RunFolder(run_dir).acquire()
    assert not (tmp_path / "target").exists()


def test_read_only_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):  # root writes through chmod 555
        if Path(path).parent == run_dir and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    with pytest.raises(RunDirError) as info:
        RunFolder(run_dir).acquire()
    assert str(info.value) == (
        f"cannot write to {run_dir}: Read-only file system; choose another --run-dir"
    )


def test_read_only_mount_is_refused(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "mnt") as mount:
        run_dir = mount / "run"
        with RunFolder(run_dir):
            atomic_write_text(run_dir / "summary.json", "{}")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(RunDirError, match="cannot write to .*Read-only file system"):
            RunFolder(run_dir).acquire()
        with pytest.raises(RunDirError, match="summary.json: Read-only file system"):
            atomic_write_text(run_dir / "summary.json", '{"new": 1}')
        assert (run_dir / "summary.json").read_text() == "{}"
        with pytest.raises(RunDirError, match="cannot create"):
            RunFolder(mount / "other").acquire()


# --- file modes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "model.pt", lambda f: f.write(b"weights"))
        atomic_write_text(tmp_path / "summary.json", "{}")
        with RunFolder(tmp_path):
            pass
    finally:
        os.umask(old)
    for name in ("model.pt", "summary.json", ".lock"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


# --- claim_run_dir --------------------------------------------------------------------------


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 11, 22, 10, 15, 0)


def test_claims_in_the_same_second_get_distinct_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multiq.runio.layout, "datetime", _FrozenClock)
    assert new_run_dir("minatar", tmp_path) == new_run_dir("minatar", tmp_path)  # the race
    first, second = claim_run_dir("minatar", tmp_path), claim_run_dir("minatar", tmp_path)
    assert first.name == "20261122-101500-minatar"
    assert second.name == "20261122-101500-minatar-2"
    assert first.is_dir() and second.is_dir()


def test_claims_from_threads_get_distinct_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multiq.runio.layout, "datetime", _FrozenClock)
    start = threading.Barrier(8)
    claimed: list[Path] = []

    def claim() -> None:
        start.wait()
        claimed.append(claim_run_dir("a b/c", tmp_path / "runs"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 8
    assert all(path.is_dir() and path.name.startswith("20261122-101500-a-b-c") for path in claimed)


def test_claim_in_an_unwritable_root_is_a_run_dir_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunDirError, match="cannot create a run folder"):
        claim_run_dir("x", tmp_path / "file" / "runs")


# --- run.json -------------------------------------------------------------------------------


def test_run_record_appends_sessions_and_keeps_the_run_id(tmp_path: Path) -> None:
    assert run_id(tmp_path) is None
    first = write_run_record(tmp_path, {"device": "cpu", "torch_version": "2.5.0"})
    second = write_run_record(tmp_path, {"device": "cuda:0", "torch_version": "2.5.0"})
    document = json.loads((tmp_path / "run.json").read_text())
    assert first == second == document["run_id"] == run_id(tmp_path)
    assert len(first) == 32 and int(first, 16) >= 0
    sessions = document["sessions"]
    assert [s["device"] for s in sessions] == ["cpu", "cuda:0"]
    for session in sessions:
        assert session["pid"] == os.getpid()
        assert session["python_version"] == ".".join(map(str, sys.version_info[:3]))
        assert {"start_time", "host", "multiq_version", "git_commit", "torch_version"} <= set(
            session
        )
        datetime.fromisoformat(session["start_time"])


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"sessions": []}', "\udcff"])
def test_bad_run_record_is_a_run_dir_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "run.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(RunDirError, match="run.json is not a multiq run record"):
        write_run_record(tmp_path, {})
    with pytest.raises(RunDirError, match="run.json"):
        run_id(tmp_path)


def test_git_commit_of_this_checkout() -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if head.returncode != 0 or not (REPO_ROOT / "multiq" / "__init__.py").is_file():
        pytest.skip("multiq does not run from a git checkout here")
    assert git_commit() == head.stdout.strip()


@pytest.mark.parametrize(
    "failure",
    [FileNotFoundError("git"), subprocess.TimeoutExpired("git", 5.0)],
)
def test_git_commit_never_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def failing_run(*args, **kwargs):
        raise failure

    monkeypatch.setattr(multiq.runio.folder.subprocess, "run", failing_run)
    assert git_commit() is None
    write_run_record(tmp_path, {})
    assert json.loads((tmp_path / "run.json").read_text())["sessions"][0]["git_commit"] is None
