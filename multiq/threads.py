"""How many threads torch's CPU ops use (`torch_threads`), set for the length of a call.

Torch's default is one intra-op thread per core. On a machine that also runs something else
those threads wait for each other on busy cores and small networks slow down many times, so
multiq runs with `torch_threads` (the config key, `--torch-threads` on the command line) and
puts torch's setting back afterwards: the process keeps its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Runs the block with `count` intra-op threads (0: torch's current setting), then restores
    the previous count."""
    if count <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def usable_cores() -> int:
    """CPU cores this process may run on (respects taskset and cgroup CPU sets)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
