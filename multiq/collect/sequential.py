"""The collector: a phase's envs, stepped with a policy, their transitions into the replay.

It owns the envs of the active tasks only. Per vector step, one batched forward of the policy
chooses every env's action, the envs of the tasks the task schedule picks step, and their
transitions go to each task's buffer. It never updates a network.

Its state (`record`) makes a resume exact: each env's episode seed and the actions since
(replayed on `restore`), the episode statistics the task schedule reads, the step allocator's
credit and the current observations. A non-finite observation or reward stops the run before it
reaches the replay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from multiq.collect.args import CollectorArgs
from multiq.envs.backends import EnvSettings
from multiq.envs.multi import MultiTaskEnvs
from multiq.errors import EnvError, NonFiniteError
from multiq.mtl.schedules import StepAllocator, TaskStats
from multiq.phases.state import TrainState

log = logging.getLogger(__name__)


class Collector:
    """Steps the active tasks' envs and stores their transitions.

    Args:
        args: the phase's tasks, envs per task, seed, replay, policy, rng, restarts and record
            (`CollectorArgs`).
        env_settings: how the envs run (`env_backend`, `env_workers`); default in this process.
    """

    def __init__(self, args: CollectorArgs, env_settings: EnvSettings | None = None):
        tasks = args.tasks
        self.names = [t.name for t in tasks]
        self.n_envs = args.n_envs
        self.replay, self.policy, self.rng = args.replay, args.policy, args.rng
        self.seed = args.start_seed()
        self.envs = MultiTaskEnvs(
            tasks, self.n_envs, self.seed, restarts=args.restarts, settings=env_settings
        )
        try:
            self.allocator = StepAllocator(len(tasks))
            self.obs = self.envs.reset()
            if args.record is not None:
                self._restore(args.record)
        except BaseException:
            self.envs.close()  # worker processes must not outlive a collector that never was
            raise

    def step(self, epsilon: float, shares: np.ndarray, state: TrainState) -> None:
        """One vector step of the tasks the shares pick; counts their env steps in `state`.

        Raises:
            EnvError: an env raised (restarts used up); nothing of this step is recorded.
            NonFiniteError: an env returned a NaN or infinite observation or reward.
        """
        credit = self.allocator.credit.copy()
        active = self.allocator.active(shares)
        stepped = [n for n, a in zip(self.names, active, strict=True) if a]
        actions = self.policy.act(self.obs, epsilon, self.rng)
        try:
            step = self.envs.step(actions, stepped)
        except (EnvError, NonFiniteError) as error:
            self.allocator.credit = credit
            raise type(error)(f"{error} (at env step {state.env_steps})") from error
        for name in stepped:
            self.replay.buffers[name].add(
                self.obs[name], actions[name], step.rewards[name], step.obs[name],
                step.terminated[name], step.truncated[name], step.valid[name],
            )  # fmt: skip
            self.obs[name] = step.obs[name]  # CRUCIAL: continue from the new observations
            state.task_env_steps[name] = state.task_env_steps.get(name, 0) + self.n_envs
            state.phase_task_env_steps[name] += self.n_envs
        state.vector_steps += 1
        phase_steps = sum(state.phase_task_env_steps[n] for n in self.names) // len(self.names)
        state.env_steps = state.phase_start + phase_steps

    def stats(self, state: TrainState, weights: np.ndarray, window: int) -> TaskStats:
        """What the task schedule looks at, for the active tasks in order."""
        episodes = [self.envs.episodes[n] for n in self.names]
        return TaskStats(
            env_steps=np.array([state.phase_task_env_steps[n] for n in self.names]),
            transitions=np.array([len(self.replay.buffers[n]) for n in self.names]),
            episodes=np.array([len(e.finished) for e in episodes]),
            recent_returns=[e.finished[-window:] for e in episodes],
            weights=weights,
        )

    def recent_returns(self) -> dict[str, float]:
        return self.envs.recent_returns()

    def restarts(self) -> dict[str, int]:
        """Task name -> envs rebuilt after raising (`on_env_error: restart`)."""
        return self.envs.restarts()

    # --- state ---------------------------------------------------------------------------------

    def record(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON meta, tensors) of the collector's state: what `restore` needs."""
        meta = {
            "seed": self.seed,
            "tasks": list(self.names),
            "envs": self.envs.record(),
            "credit": self.allocator.credit.tolist(),
        }
        tensors = {name: torch.from_numpy(np.array(obs)) for name, obs in self.obs.items()}
        return meta, tensors

    def _restore(self, record: Mapping[str, Any]) -> None:
        self.allocator.credit = np.array(record["credit"], dtype=np.float64)
        if "envs" not in record:
            return  # saved by Ray collectors (`collectors: N`): the envs start new episodes
        expected = {name: np.asarray(record["obs"][name]) for name in self.names}
        self.obs = self.envs.restore(record["envs"], expected)
        if "pending" in record:
            log.warning(
                "the checkpoint holds a vector step taken with async_updates and not stored "
                "yet; without async_updates it is left out (one transition per env)"
            )

    def close(self) -> None:
        self.envs.close()
