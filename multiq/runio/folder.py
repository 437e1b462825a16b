"""One writer per run folder: the `RUN/.lock` lock, clean-up on entry, and `RUN/run.json`.

`RunFolder` is held for the whole time a run writes its folder. While it is held, no other
process (and no other `RunFolder` in this process) can take the folder, so what it finds on
entry is known to be left over: temp files of interrupted atomic writes are removed. It also
refuses symbolic links at the names multiq writes and a folder it cannot write to, before any
training starts.

`write_run_record` appends one entry per session (a start, each resume) to `RUN/run.json`:
what the session actually used. The first session creates the run's `run_id`; later ones keep
it. Torch-free: the caller passes the device and the torch version in the record.
"""

from __future__ import annotations

import errno
import fcntl
import importlib.metadata
import json
import logging
import os
import platform
import secrets
import socket
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from multiq.errors import RunDirError
from multiq.runio.files import atomic_write_text, is_temp_name, make_folder, run_dir_error
from multiq.runio.layout import LOCK_FILE, RUN_FILES, RUN_RECORD_FILE

__all__ = ["RunFolder", "git_commit", "run_id", "session_record", "write_run_record"]

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 5.0
LOCK_MODE = 0o666  # minus the umask


class RunFolder:
    """Holds `RUN/.lock` while a run writes `RUN`; a context manager (acquire, then release).

    Acquiring creates the folder, takes an exclusive `fcntl.flock` on `RUN/.lock` and writes
    the holder into it (`{"pid", "host", "since"}` JSON), removes temp files of interrupted
    atomic writes (`.<name>.<random>.tmp`) and refuses symbolic links at the names multiq
    writes (`multiq.runio.layout.RUN_FILES`). A lock file that names a holder but whose lock is free
    was left by a killed run: it is taken over (logged at INFO).

    Release empties the lock file and unlocks it; the file stays. Removing it would let a
    process that opened the old file before the removal lock it while another creates and
    locks a new one: two holders. An empty, unlocked `.lock` means the last run ended cleanly.

    Args:
        run_dir: the run folder; created if missing.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    @property
    def lock_path(self) -> Path:
        """The lock file, `RUN/.lock`."""
        return self.run_dir / LOCK_FILE

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunFolder:
        """Takes the folder (a no-op when this object holds it already); returns self.

        Raises:
            RunDirError: another process or RunFolder holds the folder; the folder cannot be
                created or written; a file multiq writes there is a symbolic link.
        """
        if self._fd is not None:
            return self
        make_folder(self.run_dir)
        fd = _open_lock(self.lock_path, self.run_dir)
        try:
            _lock(fd, self.run_dir)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            self._take(fd)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Empties the lock file and unlocks it (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError as error:
            log.warning("could not empty %s: %s", self.lock_path, error)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _take(self, fd: int) -> None:
        """Records this process as the holder, then cleans and checks the folder."""
        previous = _read_holder(fd)
        if previous is not None:
            log.info(
                "%s: taking over the lock left by process %s on host %s (since %s), "
                "which no longer holds it",
                self.run_dir, previous.get("pid"), previous.get("host"), previous.get("since"),
            )  # fmt: skip
        _write_holder(fd, self.lock_path)
        _check_writable(self.run_dir)
        _refuse_links(self.run_dir)
        _remove_temp_files(self.run_dir)

    def __enter__(self) -> RunFolder:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def write_run_record(run_dir: str | Path, record: dict[str, Any]) -> str:
    """Appends one session to `RUN/run.json` (created by the first session); returns the run_id.

    run.json is `{"run_id": <uuid4 hex>, "sessions": [...]}`. Each session holds
    `session_record()` (start time, host, PID, Python, multiq version, git commit) updated
    with `record`, where the caller puts what only it knows (e.g. `device`, `torch_version`).
    Values JSON cannot hold are written as text. Call it while holding the `RunFolder`: two
    writers at once could lose a session.

    Args:
        run_dir: the run folder.
        record: this session's entries.

    Raises:
        RunDirError: run.json exists but is not a run record, or cannot be written.
    """
    path = Path(run_dir) / RUN_RECORD_FILE
    document = _read_run_record(path) or {"run_id": uuid.uuid4().hex, "sessions": []}
    document["sessions"].append({**session_record(), **record})
    atomic_write_text(path, json.dumps(document, indent=2, default=str) + "\n")
    return str(document["run_id"])


def run_id(run_dir: str | Path) -> str | None:
    """The run's id from `RUN/run.json`; None when the folder has no run.json.

    Raises:
        RunDirError: run.json is not a run record.
    """
    document = _read_run_record(Path(run_dir) / RUN_RECORD_FILE)
    return None if document is None else str(document["run_id"])


def session_record() -> dict[str, Any]:
    """What this process is: start time, host, PID, Python, multiq version and git commit."""
    return {
        "start_time": _now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python_version": platform.python_version(),
        "multiq_version": _multiq_version(),
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    """HEAD of the git checkout the multiq package sits in (its folder at the checkout's root).

    None when git is missing, slow (`GIT_TIMEOUT_S`) or fails, or the package is installed
    outside a checkout (in site-packages, even when that lies inside another repository).
    """
    package_dir = Path(__file__).resolve().parents[1]  # multiq/, this file is multiq/runio/
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=package_dir,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("no git commit for %s: %s", package_dir, error)
        return None
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) != 2:
        return None
    top, commit = lines
    return commit if Path(top).resolve() == package_dir.parent else None


# --- the lock ------------------------------------------------------------------------------


def _open_lock(path: Path, run_dir: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, LOCK_MODE)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RunDirError(
                f"{path} is a symbolic link; multiq does not write through links: remove it"
            ) from error
        raise _unwritable(run_dir, error) from error


def _lock(fd: int, run_dir: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        raise RunDirError(_in_use_message(run_dir, _read_holder(fd))) from error
    except OSError as error:
        raise RunDirError(
            f"cannot lock {run_dir / LOCK_FILE}: {error.strerror or error}; the file system "
            "may not support locks: choose another --run-dir"
        ) from error


def _in_use_message(run_dir: Path, holder: dict[str, Any] | None) -> str:
    fix = "wait for it to finish or choose another --run-dir"
    if holder is None:
        return f"{run_dir} is in use by another multiq process; {fix}"
    pid, host = holder.get("pid"), holder.get("host")
    this = " (this process)" if pid == os.getpid() and host == socket.gethostname() else ""
    since = holder.get("since")
    return f"{run_dir} is in use by process {pid}{this} on host {host} since {since}; {fix}"


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The holder the lock file names; None when it is empty or unreadable."""
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _write_holder(fd: int, path: Path) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
    except OSError as error:
        raise run_dir_error(path, error) from error


# --- checks and clean-up on entry ----------------------------------------------------------


def _check_writable(run_dir: Path) -> None:
    """Creates and removes a temp file, so an unwritable folder fails now, not mid-run."""
    probe = run_dir / f".write-check.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        probe.unlink()
    except OSError as error:
        raise _unwritable(run_dir, error) from error


def _unwritable(run_dir: Path, error: OSError) -> RunDirError:
    return RunDirError(
        f"cannot write to {run_dir}: {error.strerror or error}; choose another --run-dir"
    )


def _refuse_links(run_dir: Path) -> None:
    for name in RUN_FILES:
        if (run_dir / name).is_symlink():
            raise RunDirError(
                f"{run_dir / name} is a symbolic link; multiq does not write through links: "
                "remove it"
            )


def _remove_temp_files(run_dir: Path) -> None:
    """Removes `.<name>.<random>.tmp` files: the lock proves no write is under way."""
    removed = 0
    for entry in os.scandir(run_dir):
        if is_temp_name(entry.name) and not entry.is_dir(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("%s: removed %d temp file(s) left by interrupted writes", run_dir, removed)


# --- run.json ------------------------------------------------------------------------------


def _read_run_record(path: Path) -> dict[str, Any] | None:
    """run.json's content; None when the file does not exist."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise _bad_record(path, f"{type(error).__name__}: {error}") from error
    if not isinstance(document, dict):
        raise _bad_record(path, f"a JSON {type(document).__name__}, not an object")
    if not isinstance(document.get("run_id"), str) or not document["run_id"]:
        raise _bad_record(path, "no run_id text")
    if not isinstance(document.get("sessions"), list):
        raise _bad_record(path, "no sessions list")
    return document


def _bad_record(path: Path, what: str) -> RunDirError:
    return RunDirError(
        f"{path} is not a multiq run record ({what}); move it out of the folder (the run "
        "then gets a new run_id) and start again"
    )


def _now() -> str:
    """The local time with its UTC offset, e.g. `2026-11-22T10:15:00+01:00`."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _multiq_version() -> str | None:
    try:
        return importlib.metadata.version("multiq")
    except importlib.metadata.PackageNotFoundError:
        return None
