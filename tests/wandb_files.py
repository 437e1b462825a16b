"""Reading a W&B offline run file that wandb's service process may still be writing."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

WRITE_WAIT_S = 60.0


def record_with(record: Path, needles: Iterable[bytes], wait_s: float = WRITE_WAIT_S) -> bytes:
    """The bytes of `record` once every needle is in them, or as they are after `wait_s`
    (the caller's assertion then fails with what was written): `wandb.finish` can return before
    the service process has flushed the file, which a loaded machine shows."""
    needles = list(needles)
    deadline = time.monotonic() + wait_s
    data = record.read_bytes()
    while not all(n in data for n in needles) and time.monotonic() < deadline:
        time.sleep(0.5)
        data = record.read_bytes()
    return data
