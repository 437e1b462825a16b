"""Chunks: how a collector whose envs step elsewhere (a child process, Ray actors) works.

A `CollectorWorker` steps a block of tasks' envs with a policy snapshot and answers each request
with a `Chunk` of transitions; a `ChunkStore` in the training process puts chunks into the
replay and keeps the step counts, the step allocator and the finished episodes' returns.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from multiq.agents.policy import Policy
from multiq.envs.backends import EnvSettings
from multiq.envs.multi import RECENT_EPISODES, MultiTaskEnvs
from multiq.mtl.schedules import StepAllocator, TaskStats
from multiq.phases.state import TrainState
from multiq.replay.buffers import MultiTaskReplay
from multiq.tasks.spec import TaskSpec

TASK_SEED_STRIDE = 10_000  # MultiTaskEnvs seeds task k's envs from seed + 10_000 k


@dataclass
class Chunk:
    """An actor's answer to one request; each mapping is keyed by task name.

    Attributes:
        obs: [k_t + 1, n_envs, *obs_shape]: the observations before each step and after the last.
        actions, rewards, terminated, truncated, valid: [k_t, n_envs] each.
        finished: the returns of the episodes that ended, in order.
        restarts: envs rebuilt after raising, since the actor started.
        vector_steps: inner vector steps the request took (max over tasks of k_t).
    """

    obs: dict[str, np.ndarray] = field(default_factory=dict)
    actions: dict[str, np.ndarray] = field(default_factory=dict)
    rewards: dict[str, np.ndarray] = field(default_factory=dict)
    terminated: dict[str, np.ndarray] = field(default_factory=dict)
    truncated: dict[str, np.ndarray] = field(default_factory=dict)
    valid: dict[str, np.ndarray] = field(default_factory=dict)
    finished: dict[str, list[float]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    vector_steps: int = 0

    def env_steps(self, name: str, n_envs: int) -> int:
        return len(self.actions[name]) * n_envs


class CollectorWorker:
    """Steps a block of tasks' envs with a policy snapshot; a Ray actor's body (plain Python).

    Args:
        tasks: the block's tasks.
        n_envs: envs per task.
        seed: seed of the block's first task's envs (see `TASK_SEED_STRIDE`).
        policy: a CPU snapshot of the policy.
        noise_seed: seeds the exploration noise.
        restarts: envs rebuilt per task after raising before an env error stops the run.
        env_settings: how the envs run (`env_backend`); default in this process.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        n_envs: int,
        seed: int,
        policy: Policy,
        noise_seed: Sequence[int],
        restarts: int = 0,
        env_settings: EnvSettings | None = None,
    ):
        torch.set_num_threads(1)  # this process is one collector: one core
        self.names = [t.name for t in tasks]
        self.policy = policy
        self.rng = np.random.default_rng(list(noise_seed))
        self.envs = MultiTaskEnvs(tasks, n_envs, seed, restarts=restarts, settings=env_settings)
        self.obs = self.envs.reset()
        self._reported = {name: 0 for name in self.names}  # finished episodes sent so far

    def collect(
        self, counts: Mapping[str, int], epsilon: float, policy: Policy | None = None
    ) -> Chunk:
        """Takes `counts[name]` vector steps of each task (all together while they last).

        Args:
            counts: task name -> vector steps (tasks left out take none).
            epsilon: exploration of this request.
            policy: newer weights to act with from now on (None: keep the current ones).
        """
        if policy is not None:
            self.policy = policy
        left = {n: int(counts.get(n, 0)) for n in self.names}
        trace: dict[str, list[tuple]] = {n: [] for n in self.names}
        first = {n: self.obs[n] for n in self.names if left[n] > 0}
        vector_steps = 0
        while any(left.values()):
            stepped = [n for n in self.names if left[n] > 0]
            actions = self.policy.act({n: self.obs[n] for n in stepped}, epsilon, self.rng)
            step = self.envs.step(actions, stepped)
            for name in stepped:
                trace[name].append(
                    (actions[name], step.rewards[name], step.obs[name], step.terminated[name],
                     step.truncated[name], step.valid[name])
                )  # fmt: skip
                self.obs[name] = step.obs[name]
                left[name] -= 1
            vector_steps += 1
        return self._chunk(first, trace, vector_steps)

    def _chunk(self, first: Mapping[str, np.ndarray], trace, vector_steps: int) -> Chunk:
        chunk = Chunk(vector_steps=vector_steps, restarts=self.envs.restarts())
        for name, obs in first.items():
            columns = [np.stack(column) for column in zip(*trace[name], strict=True)]
            actions, rewards, next_obs, terminated, truncated, valid = columns
            chunk.obs[name] = np.concatenate([np.asarray(obs)[None], next_obs])
            chunk.actions[name], chunk.rewards[name] = actions, rewards
            chunk.terminated[name], chunk.truncated[name] = terminated, truncated
            chunk.valid[name] = valid
        for name in self.names:
            finished = self.envs.episodes[name].finished
            chunk.finished[name] = finished[self._reported[name] :]
            self._reported[name] = len(finished)
        return chunk

    def close(self) -> None:
        self.envs.close()


def blocks(n_tasks: int, collectors: int) -> list[range]:
    """The contiguous blocks of task positions the collectors take (at most one per task)."""
    cuts = np.array_split(np.arange(n_tasks), min(collectors, n_tasks))
    return [range(int(c[0]), int(c[-1]) + 1) for c in cuts]


def cpu_snapshot(policy: Policy) -> Policy:
    """A frozen copy of a policy on the CPU (what goes to the actors)."""
    snapshot = Policy.snapshot(policy.net, policy.popart)
    snapshot.net.to("cpu")
    if snapshot.popart is not None:
        snapshot.popart.to("cpu")
    return snapshot


class ChunkStore:
    """What a collector whose envs step elsewhere keeps: the replay writes of each chunk, the
    step counts, the step allocator and the returns of the episodes that ended.

    Args:
        tasks: the phase's active tasks.
        n_envs: envs per task.
        replay: holds a buffer for each active task.
    """

    def __init__(self, tasks: Sequence[TaskSpec], n_envs: int, replay: MultiTaskReplay):
        self.names = [t.name for t in tasks]
        self.n_envs, self.replay = n_envs, replay
        self.allocator = StepAllocator(len(tasks))
        self.finished: dict[str, list[float]] = {n: [] for n in self.names}
        self.recent: dict[str, deque[float]] = {
            n: deque(maxlen=RECENT_EPISODES) for n in self.names
        }
        self._restarts = {n: 0 for n in self.names}

    def _allocate(
        self, shares: np.ndarray, taken: int, budget: int, vector_steps: int
    ) -> np.ndarray:
        """[T] vector steps per task of the next `vector_steps` runs of the step allocator,
        stopping where the sequential loop would: when the phase's env steps of all tasks
        (`taken` so far) reach `budget * T`."""
        limit, counts = budget * len(self.names), np.zeros(len(self.names), dtype=np.int64)
        for _ in range(vector_steps):
            if taken + int(counts.sum()) * self.n_envs >= limit:
                break
            counts += self.allocator.active(shares)
        return counts

    def _store(self, chunk: Chunk, state: TrainState) -> None:
        for name, actions in chunk.actions.items():
            buffer, obs = self.replay.buffers[name], chunk.obs[name]
            for i in range(len(actions)):
                buffer.add(
                    obs[i], actions[i], chunk.rewards[name][i], obs[i + 1],
                    chunk.terminated[name][i], chunk.truncated[name][i], chunk.valid[name][i],
                )  # fmt: skip
            steps = chunk.env_steps(name, self.n_envs)
            state.task_env_steps[name] = state.task_env_steps.get(name, 0) + steps
            state.phase_task_env_steps[name] += steps
        for name, returns in chunk.finished.items():
            self.finished[name].extend(returns)
            self.recent[name].extend(returns)
        self._restarts.update(chunk.restarts)
        state.vector_steps += chunk.vector_steps
        phase_steps = sum(state.phase_task_env_steps[n] for n in self.names) // len(self.names)
        state.env_steps = state.phase_start + phase_steps

    # --- what the loop reads -------------------------------------------------------------------

    def stats(self, state: TrainState, weights: np.ndarray, window: int) -> TaskStats:
        """What the task schedule looks at, for the active tasks in order."""
        return TaskStats(
            env_steps=np.array([state.phase_task_env_steps[n] for n in self.names]),
            transitions=np.array([len(self.replay.buffers[n]) for n in self.names]),
            episodes=np.array([len(self.finished[n]) for n in self.names]),
            recent_returns=[self.finished[n][-window:] for n in self.names],
            weights=weights,
        )

    def recent_returns(self) -> dict[str, float]:
        return {n: float(np.mean(r)) if r else math.nan for n, r in self.recent.items()}

    def restarts(self) -> dict[str, int]:
        return dict(self._restarts)

    def _restore(self, record: Mapping[str, Any]) -> None:
        """Keeps a record's credit and episode returns (one of an in-process collector too)."""
        self.allocator.credit = np.array(record["credit"], dtype=np.float64)
        finished = record.get("finished") or {
            name: task["episodes"]["finished"] for name, task in record.get("envs", {}).items()
        }
        for name, returns in finished.items():
            if name in self.finished:
                self.finished[name] = list(returns)
                self.recent[name].extend(returns[-RECENT_EPISODES:])
