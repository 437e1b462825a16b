"""Distributed collection: Ray actors step the envs, the training process keeps the replay.

With `collectors: N` (N >= 1) the active tasks are split into N contiguous blocks (N is cut to
the number of tasks), one `CollectorWorker` per block runs as a Ray actor with a frozen CPU copy
of the policy, and a `RayCollector` in the training process stands where the in-process
`Collector` does: the training loop calls its `step` and gets whole chunks of transitions.

- **What each actor does.** A request asks it for `collector_chunk` vector steps' worth of env
  steps per task, counted out by the same step allocator the in-process collector uses, so a
  phase gives every task the same number of transitions either way. The actor answers with the
  observations, actions, rewards and flags of each of its tasks, [k + 1, n_envs, ...] and
  [k, n_envs] arrays (next_obs of step i is obs i + 1: envs autoreset on the next step), and
  the returns of the episodes that ended.
- **Side by side.** Every actor always has one request in flight: while the learner adds one
  actor's chunk to the replay and runs the updates it is due, the other actors step.
- **Replay ratio.** Updates are counted on the env steps that reach the replay, exactly as in
  the sequential loop (`train_freq * n_envs * T` env steps per update), however large a chunk.
- **Staleness.** A fresh snapshot of the learner's weights goes to the actors every
  `broadcast_interval` updates, with their next request; an actor's policy is at most
  `broadcast_interval` updates plus one chunk behind the learner.
- **Not exact.** Envs are seeded as in-process (task k's env i: seed + 10,000 k + i), but an
  actor's exploration noise is its own; a resumed run's actors start new episodes (the
  checkpoint keeps the step counts, the episode statistics and the allocator's credit, not
  the envs' states). Runs with collectors are reproducible in their counts, not bit for bit.

Ray is started on this machine when it is not running yet (`ray_address` names a cluster);
actors are killed when the phase ends, Ray itself stays up for the next phase.
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
from multiq.env_backends import EnvSettings
from multiq.envs import RECENT_EPISODES, MultiTaskEnvs
from multiq.errors import MultiqError
from multiq.mtl.schedules import StepAllocator, TaskStats
from multiq.replay import MultiTaskReplay
from multiq.scale.cluster import start_ray
from multiq.tasks.spec import TaskSpec
from multiq.train.state import TrainState

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
        self.recent = {n: deque(maxlen=RECENT_EPISODES) for n in self.names}
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


class RayCollector(ChunkStore):
    """Collects a phase's transitions with Ray actors; the in-process `Collector`'s interface.

    Args:
        tasks: the phase's active tasks.
        n_envs: envs per task.
        seed: seed of the envs' first reset.
        replay: holds a buffer for each active task.
        policy: the learner's live policy (snapshots of it go to the actors).
        rng: seeds the actors' exploration noise.
        restarts: envs rebuilt per task after raising before an env error stops the run.
        record: a saved `record()`: its episode statistics and credit are kept (the envs start
            new episodes).
        collectors: actors (cut to the number of tasks).
        chunk: vector steps per request.
        broadcast_interval: updates between weight snapshots sent to the actors.
        budget: the phase's env steps per task (no request goes past it).
        address: a Ray cluster ("" = this machine).
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        n_envs: int,
        seed: int,
        replay: MultiTaskReplay,
        policy: Policy,
        rng: np.random.Generator,
        restarts: int = 0,
        record: Mapping[str, Any] | None = None,
        *,
        collectors: int,
        chunk: int,
        broadcast_interval: int,
        budget: int,
        address: str = "",
    ):
        import ray

        start_ray(address, collectors)
        super().__init__(tasks, n_envs, replay)
        self.chunk, self.budget = chunk, budget
        self.policy = policy
        self.broadcast_interval = broadcast_interval
        self.seed = int(record["seed"]) if record is not None else seed
        if record is not None:
            self._restore(record)
        self.blocks = blocks(len(tasks), collectors)
        noise = int(rng.integers(2**31))
        remote = ray.remote(num_cpus=1, max_restarts=0)(CollectorWorker)
        snapshot = ray.put(cpu_snapshot(policy))
        self.actors = [
            remote.remote([tasks[i] for i in block], n_envs,
                          self.seed + TASK_SEED_STRIDE * block[0], snapshot, (noise, k), restarts)
            for k, block in enumerate(self.blocks)
        ]  # fmt: skip
        self._in_flight: dict[Any, int] = {}  # future -> actor
        # [T] vector steps per task within the phase: given out by the allocator, and sent
        self._assigned: np.ndarray | None = None
        self._issued: np.ndarray | None = None
        self._snapshot_at: int | None = None  # the learner's update count of the actors' weights
        self._pending: dict[int, Any] = {}  # actor -> a newer snapshot for its next request

    # --- stepping ------------------------------------------------------------------------------

    def step(self, epsilon: float, shares: np.ndarray, state: TrainState) -> None:
        """Waits for one actor's chunk, puts it in the replay and counts its env steps (at the
        start of a phase: for chunks until every task has transitions to sample).

        Idle actors get new requests first (while the phase's budget lasts), with a fresh
        weight snapshot when `broadcast_interval` updates have passed.

        Raises:
            EnvError, NonFiniteError: an actor's env raised or returned a non-finite value;
                nothing of that chunk is recorded.
            MultiqError: an actor died.
        """
        self._broadcast(state.updates)
        self._request(epsilon, shares, state)
        self._store(self._next_chunk(), state)
        while self._in_flight and not all(len(self.replay.buffers[n]) for n in self.names):
            self._request(epsilon, shares, state)
            self._store(self._next_chunk(), state)

    def _next_chunk(self) -> Chunk:
        """The first chunk an actor finishes."""
        import ray

        (done,), _ = ray.wait(list(self._in_flight), num_returns=1)
        actor = self._in_flight.pop(done)
        try:
            return ray.get(done)
        except ray.exceptions.RayTaskError as error:
            raise _cause(error, actor) from None
        except ray.exceptions.RayActorError as error:
            raise MultiqError(f"collector {actor} died: {error}") from None

    def _broadcast(self, updates: int) -> None:
        """Queues a fresh snapshot for every actor when `broadcast_interval` updates passed."""
        if self._snapshot_at is None:
            self._snapshot_at = updates  # the actors started with these weights
        elif updates - self._snapshot_at >= self.broadcast_interval:
            import ray

            snapshot = ray.put(cpu_snapshot(self.policy))
            self._pending = dict.fromkeys(range(len(self.actors)), snapshot)
            self._snapshot_at = updates

    def _request(self, epsilon: float, shares: np.ndarray, state: TrainState) -> None:
        """Gives every idle actor its next request: up to `chunk` vector steps of each of its
        tasks, out of what the step allocator has assigned them and they have not taken yet."""
        if self._assigned is None:
            steps = [state.phase_task_env_steps.get(n, 0) // self.n_envs for n in self.names]
            self._assigned, self._issued = np.array(steps), np.array(steps)
        busy = set(self._in_flight.values())
        for k, block in enumerate(self.blocks):
            if k in busy:
                continue
            while not (self._assigned[block] > self._issued[block]).any() and self._assign(shares):
                pass
            counts = np.minimum(self._assigned[block] - self._issued[block], self.chunk)
            if not counts.any():
                continue  # the phase's budget is given out
            self._issued[block] += counts
            mine = {self.names[i]: int(n) for i, n in zip(block, counts, strict=True) if n}
            future = self.actors[k].collect.remote(mine, epsilon, self._pending.pop(k, None))
            self._in_flight[future] = k

    def _assign(self, shares: np.ndarray) -> bool:
        """Runs the step allocator `chunk` vector steps further while the phase's budget
        (`budget * T` env steps of all tasks, as in the sequential loop) lasts; False when it
        is given out."""
        taken = int(self._assigned.sum()) * self.n_envs
        if taken >= self.budget * len(self.names):
            return False
        self._assigned += self._allocate(shares, taken, self.budget, self.chunk)
        return True

    # --- state ---------------------------------------------------------------------------------

    def record(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON meta, no tensors): the seed, the allocator's credit and the episode returns."""
        meta = {
            "seed": self.seed,
            "tasks": list(self.names),
            "credit": self.allocator.credit.tolist(),
            "finished": {n: list(r) for n, r in self.finished.items()},
        }
        return meta, {}

    def close(self) -> None:
        """Kills the actors (Ray stays up for the next phase)."""
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors, self._in_flight = [], {}


def _cause(error: Exception, actor: int) -> Exception:
    """The exception an actor raised (a multiq error keeps its type), naming the actor."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, MultiqError):
        return type(cause)(f"{cause} (in collector {actor})")
    return MultiqError(f"collector {actor} failed: {cause or error}")
