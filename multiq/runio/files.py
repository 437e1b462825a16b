"""Writing run-folder files safely: atomic replaces, append without following links, and
OS errors turned into `RunDirError`s that name the file and the fix.

Torch-free, so config, tracking and the trainer share it.

- `atomic_write` writes a temp file `.<name>.<random>.tmp` next to the target, fsyncs it and
  renames it over the target: a kill or a full disk leaves the previous file intact. The temp
  file is created with mode 0o666 and the kernel applies the umask (0o644 under umask 022),
  so other users can read a shared run folder (`tempfile.mkstemp` would make it 0o600).
- `open_append_nofollow` opens a text file for appending and refuses a symbolic link, so a
  link planted in a run folder cannot redirect multiq's writes.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TextIO

from multiq.errors import RunDirError

__all__ = [
    "FULL_ERRNOS",
    "RUN_DIR_ERRNOS",
    "atomic_write",
    "atomic_write_text",
    "is_temp_name",
    "make_folder",
    "open_append_nofollow",
    "run_dir_error",
]

FILE_MODE = 0o666  # the kernel takes the umask off: 0o644 under umask 022
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
RUN_DIR_ERRNOS = FULL_ERRNOS | {errno.EROFS, errno.EACCES, errno.EPERM}
TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Calls `write(binary_file)` on a temp file next to `path`, fsyncs it and renames it.

    Args:
        path: the file to (re)place; its folder is created if missing.
        write: writes the content to the binary file it is given.

    Raises:
        RunDirError: the disk is full, the quota exceeded, or the folder read-only or not
            writable (the temp file is removed, a previous file at `path` stays intact).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _create_temp(path)
    except OSError as error:
        raise run_dir_error(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        cause = _run_dir_os_error(error) if isinstance(error, Exception) else None
        if cause is not None:
            raise run_dir_error(path, cause) from error
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes `text` (UTF-8) to `path` with `atomic_write`."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def open_append_nofollow(path: str | Path) -> TextIO:
    """Opens a UTF-8 text file for appending (created with mode 0o666 minus the umask).

    The file object has `newline=""` (no newline translation, as the csv module wants).

    Raises:
        RunDirError: `path` is a symbolic link, or the file cannot be opened for writing.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RunDirError(
                f"{path} is a symbolic link; multiq does not write through links: remove it"
            ) from error
        raise run_dir_error(path, error) from error
    return open(fd, "a", newline="", encoding="utf-8")  # noqa: SIM115 (the caller closes it)


def make_folder(path: str | Path) -> None:
    """Creates the folder `path` and its parents when missing.

    Raises:
        RunDirError: it cannot be created (read-only, no permission, a file in the way).
    """
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(
            f"cannot create {path}: {error.strerror or error}; choose another --run-dir"
        ) from error


def run_dir_error(path: Path, error: OSError) -> RunDirError:
    """A `RunDirError` for an OS error writing `path`: the file, the OS reason and the fix."""
    reason = error.strerror or str(error)
    name = errno.errorcode.get(error.errno or 0)
    if name:
        reason = f"{reason} ({name})"
    if error.errno in FULL_ERRNOS:
        fix = "free space on the disk (or raise the quota) or choose another --run-dir"
    else:
        fix = "make the folder writable or choose another --run-dir"
    return RunDirError(f"cannot write {path}: {reason}; {fix}")


def is_temp_name(name: str) -> bool:
    """Whether `name` is a temp file of an interrupted atomic write: `.<name>.<random>.tmp`.

    Covers `atomic_write` and multiq.config's writer (`.<name>.<pid>.<hex>.tmp`).
    """
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and name.count(".") >= 3


def _create_temp(path: Path) -> tuple[Path, int]:
    """Creates `.<name>.<random>.tmp` next to `path` exclusively; returns (its path, fd)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return tmp, os.open(tmp, flags, FILE_MODE)
        except FileExistsError:
            continue


def _run_dir_os_error(error: BaseException) -> OSError | None:
    """The OSError with a run-folder errno in `error`'s chain (torch wraps write errors)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in RUN_DIR_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None
