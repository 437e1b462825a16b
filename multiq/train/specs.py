"""Task specs in saved files: what a model needs to know of its tasks without building envs.

`spec_record` gives a task's JSON part (name, env id, source entry, shapes, dtype, action count)
and its tensor part (the observation bounds); `spec_from_record` turns them back into a TaskSpec
whose `make_env` rebuilds the env from the source entry only when an env is asked for.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from multiq.errors import CheckpointError, TaskError
from multiq.tasks.spec import TaskSpec


def spec_record(spec: TaskSpec) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON-safe description, {"low", "high"} tensors) of a task."""
    space = spec.observation_space
    info = {
        "name": spec.name,
        "env_id": spec.env_id,
        "source": spec.source,
        "obs_shape": list(spec.obs_shape),
        "obs_dtype": spec.obs_dtype.name,
        "num_actions": spec.num_actions,
        "frame_stack": spec.frame_stack,
    }
    bounds = {
        "low": torch.from_numpy(np.array(space.low)),
        "high": torch.from_numpy(np.array(space.high)),
    }
    return info, bounds


def spec_from_record(info: Mapping[str, Any], bounds: Mapping[str, torch.Tensor]) -> TaskSpec:
    """The TaskSpec of a saved task; its env is built from the source entry when needed.

    Raises:
        CheckpointError: the record is malformed.
    """
    try:
        dtype = np.dtype(info["obs_dtype"])
        low, high = bounds["low"].numpy().astype(dtype), bounds["high"].numpy().astype(dtype)
        space = gym.spaces.Box(low=low, high=high, dtype=dtype)
        if list(space.shape) != list(info["obs_shape"]):
            raise ValueError(f"bounds of shape {space.shape}, expected {info['obs_shape']}")
        actions = gym.spaces.Discrete(int(info["num_actions"]))
        source = dict(info.get("source") or {})
        make_env = functools.partial(_make_saved_env, json.dumps(source, sort_keys=True), info)
        frames = int(info.get("frame_stack", 1))  # saved before frame_stack: 1
        return TaskSpec(info["name"], info["env_id"], make_env, space, actions, source, frames)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"a saved task record is malformed ({error}): {dict(info)}"
        ) from error


@functools.lru_cache(maxsize=64)
def _rebuilt_spec(source_json: str) -> TaskSpec:
    from multiq.tasks.suites import make_taskset  # the suites import envs' plugins

    source = json.loads(source_json)
    if not source:
        raise TaskError("this saved task has no source entry, so its env cannot be rebuilt")
    return make_taskset([source])[0]


def _make_saved_env(source_json: str, info: Mapping[str, Any], evaluation: bool = False) -> gym.Env:
    """Builds a saved task's env from its source entry and checks its spaces still match."""
    spec = _rebuilt_spec(source_json)
    if list(spec.obs_shape) != list(info["obs_shape"]) or spec.num_actions != info["num_actions"]:
        raise TaskError(
            f"task {info['name']!r}: its env now has observations {spec.obs_shape} and "
            f"{spec.num_actions} actions, but the saved model expects "
            f"{tuple(info['obs_shape'])} and {info['num_actions']}"
        )
    return spec.make_env(evaluation=evaluation)


def specs_to_record(specs) -> tuple[list[dict[str, Any]], dict[str, dict[str, torch.Tensor]]]:
    """Records of several tasks: (JSON list, name -> bounds tensors)."""
    infos, bounds = [], {}
    for spec in specs:
        info, b = spec_record(spec)
        infos.append(info)
        bounds[spec.name] = b
    return infos, bounds


def specs_from_record(infos, bounds) -> list[TaskSpec]:
    """The TaskSpecs of `specs_to_record`'s output."""
    try:
        return [spec_from_record(info, bounds[info["name"]]) for info in infos]
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"the saved task list is malformed ({error})") from error
