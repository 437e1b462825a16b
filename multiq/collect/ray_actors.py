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

from typing import Any

import numpy as np
import torch

from multiq.collect.args import CollectorArgs
from multiq.collect.chunks import (
    TASK_SEED_STRIDE,
    Chunk,
    ChunkStore,
    CollectorWorker,
    blocks,
    cpu_snapshot,
)
from multiq.collect.cluster import start_ray
from multiq.errors import MultiqError
from multiq.phases.state import TrainState


class RayCollector(ChunkStore):
    """Collects a phase's transitions with Ray actors; the in-process `Collector`'s interface.

    Args:
        args: the phase's tasks, envs per task, seed, replay, the learner's live policy
            (snapshots of it go to the actors), the rng seeding the actors' exploration noise,
            restarts, and a saved `record()` whose episode statistics and credit are kept (the
            envs start new episodes) (`CollectorArgs`).
        collectors: actors (cut to the number of tasks).
        chunk: vector steps per request.
        broadcast_interval: updates between weight snapshots sent to the actors.
        budget: the phase's env steps per task (no request goes past it).
        address: a Ray cluster ("" = this machine).
    """

    def __init__(
        self,
        args: CollectorArgs,
        *,
        collectors: int,
        chunk: int,
        broadcast_interval: int,
        budget: int,
        address: str = "",
    ):
        import ray

        start_ray(address, collectors)
        tasks, n_envs, restarts = args.tasks, args.n_envs, args.restarts
        super().__init__(tasks, n_envs, args.replay)
        self.chunk, self.budget = chunk, budget
        self.policy = policy = args.policy
        self.broadcast_interval = broadcast_interval
        self.seed = args.start_seed()
        if args.record is not None:
            self._restore(args.record)
        self.blocks = blocks(len(tasks), collectors)
        noise = int(args.rng.integers(2**31))
        remote = ray.remote(num_cpus=1, max_restarts=0)(CollectorWorker)
        snapshot = ray.put(cpu_snapshot(policy))
        self.actors: list[Any] = [  # Ray actor handles
            remote.remote([tasks[i] for i in block], n_envs,
                          self.seed + TASK_SEED_STRIDE * block[0], snapshot, (noise, k), restarts)
            for k, block in enumerate(self.blocks)
        ]  # fmt: skip
        self._in_flight: dict[Any, int] = {}  # future -> actor
        # [T] vector steps per task within the phase: given out by the allocator, and sent
        # (empty until the first step counts what the phase has taken)
        self._assigned = np.zeros(0, dtype=np.int64)
        self._issued = np.zeros(0, dtype=np.int64)
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
        if not len(self._assigned):
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
