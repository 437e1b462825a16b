"""Stepping the active tasks' envs: in process, in worker processes, or on EnvPool.

`multi` steps several tasks together (`MultiTaskEnvs`); `backends` picks how one task's envs
run (`inprocess`, `workers`, `pool`); `checks` holds each step's results to the env's declared
spaces.
"""

from typing import Any

from multiq.moved import forward_attribute


def __getattr__(name: str) -> Any:
    """0.1's `multiq.envs` module lives on in `multiq.envs.multi` (removed in 0.3)."""
    return forward_attribute(__name__, "multiq.envs.multi", name)
