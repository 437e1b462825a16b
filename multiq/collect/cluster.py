"""Connecting to Ray: a cluster at an address, or a local instance started on this machine.

A local Ray runs its workers at normal priority (`worker_niceness: 0`): Ray's default (15)
starves them on a busy machine, where a collector actor then took seconds per chunk and a
minute to start.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from multiq.errors import MultiqError

CONNECT_TIMEOUT_S = 5.0
WORKER_ENV = {"OMP_NUM_THREADS": "1"}  # one intra-op thread per worker process


def check_address(address: str) -> None:
    """Refuses within seconds a Ray address nothing answers at (`ray.init` can hang on one).

    Raises:
        MultiqError: not HOST:PORT, or the host does not accept a connection within
            `CONNECT_TIMEOUT_S`.
    """
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise MultiqError(f"Ray address {address!r} must look like HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as error:
        raise MultiqError(
            f"no Ray cluster answers at {address!r} ({error}); start one with `ray start --head` "
            "there, or leave the address out to run on this machine"
        ) from error


def start_ray(address: str | None = None, min_cpus: int = 1) -> None:
    """Connects to the Ray cluster at `address`, or starts one on this machine (None or "");
    nothing when Ray is already running in this process (e.g. inside a Tune trial).

    Args:
        address: HOST:PORT, ``auto``, or None / "" for a local Ray.
        min_cpus: a local Ray gets at least this many logical CPUs (so that that many one-CPU
            actors are placed even on a machine with fewer cores; they then share them).

    Raises:
        MultiqError: an address nothing answers at.
    """
    try:
        import ray
    except ImportError as error:
        raise MultiqError(
            f"Ray is not installed ({error}): pip install 'multiq[ray]' (collectors and sweeps "
            "run on it), or set collectors: 0"
        ) from error
    if ray.is_initialized():
        return
    init: dict[str, Any] = {"runtime_env": {"env_vars": dict(WORKER_ENV)}}
    if address:
        check_address(address)
        init["address"] = address
    else:
        init["num_cpus"] = max(os.cpu_count() or 1, min_cpus)
        init["_system_config"] = {"worker_niceness": 0}
    ray.init(**init, include_dashboard=False, log_to_driver=False)
