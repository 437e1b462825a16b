"""Acting and learning side by side: a child process steps the envs while the learner updates.

With `async_updates: true` (or ``auto`` where it pays,
`multiq.collect.choice.collector_kind`) the in-process `Collector` is replaced by an
`AsyncCollector`: one
child process (started with ``spawn``, one torch thread) holds the phase's envs and a copy of
the policy whose weights live in shared memory; the training process keeps the replay, the
learner and everything else. Each call of `step`:

1. takes the child's answer to the request sent by the previous call (`async_chunk` vector
   steps of the tasks the step allocator picked: actions, rewards, next observations, flags,
   finished episodes) and puts it in the replay and the step counts, as the sequential loop
   does;
2. copies the learner's current weights into the shared memory (when updates have run since the
   last copy) and sends the next request, unless the phase's budget is reached.

The child then acts and steps the envs while the training loop runs the updates that are due.
A chunk of several vector steps keeps the child busy between the updates (at `train_freq` 4
only one vector step in four has an update) and spreads a request's cost over its steps.

- **Replay ratio.** The env steps that reach the replay, and so the updates that are due, are
  exactly those of the sequential loop over a phase (each task the same env steps, the run the
  same updates): the same number of samples per env step. Within a chunk the updates run after
  its steps are stored, and a target update due inside it comes after them.
- **Staleness.** A chunk acts with the weights from before the updates of the previous chunk
  (those run while it steps): with chunks of K vector steps, at most 2K - 1 vector steps (and
  their updates, `gradient_steps` per update round) behind the sequential loop. Its epsilon and
  task-schedule shares are those at its request.
- **Reproducible.** The exchange is in lock step and the child's exploration noise has its own
  seed, so a run is bit-identical run to run (for given thread counts). It differs from the
  sequential loop's run, whose acting sees one vector step more of learning.
- **Checkpoints are exact.** A request in flight is taken in and kept (not stored) when a
  checkpoint is written; the checkpoint holds the child's envs after that step and the kept
  step, which a resume stores first, so a resumed run goes on as an uninterrupted one would.
- **Errors.** An env error in the child is raised in the training process at the next `step`
  (the envs' records are rolled back to the last consistent step, as in-process); a child that
  dies is a `MultiqError` naming its exit code. The child ignores SIGINT: Ctrl-C reaches the
  training loop, which checkpoints and stops it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from multiq.collect.args import CollectorArgs
from multiq.collect.chunks import Chunk, ChunkStore, CollectorWorker, cpu_snapshot
from multiq.envs.backends import EnvSettings
from multiq.errors import ConfigError, EnvError, MultiqError, NonFiniteError
from multiq.phases.state import TrainState

START_TIMEOUT_S = 300.0  # the child imports torch and builds the envs
POLL_S = 1.0  # how often a wait for the child checks that it is alive
CHUNK_FIELDS = ("obs", "actions", "rewards", "terminated", "truncated", "valid")


class StepWorker(CollectorWorker):
    """The child's collector: `CollectorWorker` plus an exact record and restore."""

    def restore(self, record: Mapping[str, Any], expected_obs: Mapping[str, np.ndarray]) -> None:
        """Brings the envs, the exploration noise and the reported episodes to a record."""
        self.obs = self.envs.restore(record["envs"], expected_obs)
        if record.get("noise") is not None:  # an in-process collector's record has none
            self.rng.bit_generator.state = record["noise"]
        self._reported = {n: len(self.envs.episodes[n].finished) for n in self.names}

    def record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(the envs' records and the noise state, current observations)."""
        meta = {"envs": self.envs.record(), "noise": self.rng.bit_generator.state}
        return meta, {name: np.array(obs) for name, obs in self.obs.items()}


def serve(conn, worker_args: tuple, record: Mapping[str, Any] | None) -> None:
    """The child process: builds a `StepWorker` and answers requests until told to close.

    Requests: ``("step", counts, epsilon, progress, popart_state)``, ``("record",)``,
    ``("close",)``. Answers: ``("ok", payload)`` or ``("error", exception)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training loop's to handle
    torch.set_num_threads(1)
    try:
        worker = StepWorker(*worker_args)
        if record is not None:
            worker.restore(record, record["obs"])
    except Exception as error:  # noqa: BLE001 - sent to the training process, which raises it
        conn.send(("error", error))
        return
    conn.send(("ok", None))
    handlers: dict[str, Callable[..., Any]] = {"step": _step, "record": StepWorker.record}
    while True:
        request = conn.recv()
        if request[0] == "close":
            break
        try:
            conn.send(("ok", handlers[request[0]](worker, *request[1:])))
        except Exception as error:  # noqa: BLE001 - e.g. an EnvError: raised in the parent
            conn.send(("error", error))
    worker.close()


def _step(worker: StepWorker, counts, epsilon: float, progress: float, popart_state) -> Chunk:
    worker.policy.net.set_progress(progress)
    if popart_state is not None:
        worker.policy.popart.load_state_dict(popart_state, strict=False)
    return worker.collect(counts, epsilon)


class AsyncCollector(ChunkStore):
    """Steps a phase's envs in a child process, one chunk ahead of the learner.

    The in-process `Collector`'s interface (see the module docstring for the rules).

    Args:
        args: the phase's tasks, envs per task, seed (task k's env i: seed + 10,000 k + i),
            replay, the learner's live policy (its weights are copied to the child's), the rng
            seeding the child's exploration noise, restarts, and a saved `record()` (of this
            or the in-process collector) to continue from (`CollectorArgs`).
        budget: the phase's env steps per task (no request goes past it).
        chunk: vector steps per request (`async_chunk`).
        env_settings: how the child's envs run (``inprocess`` or ``envpool``: the child is a
            daemon process, which cannot start env workers).
    """

    def __init__(
        self,
        args: CollectorArgs,
        *,
        budget: int,
        chunk: int = 1,
        env_settings: EnvSettings | None = None,
    ):
        tasks, n_envs, policy, record = args.tasks, args.n_envs, args.policy, args.record
        super().__init__(tasks, n_envs, args.replay)
        self.policy, self.budget, self.chunk = policy, budget, chunk
        self.seed = args.start_seed()
        self._pending: Chunk | None = None  # an answer taken in but not stored yet
        self._in_flight = False
        self._credit_before = self.allocator.credit.copy()  # before the request in flight
        self._synced_updates: int | None = None
        snapshot = cpu_snapshot(policy)
        self._shared = [t.share_memory_() for t in snapshot.net.state_dict().values()]
        self._source = list(policy.net.state_dict().values())
        child_record = self._restore_async(record) if record is not None else None
        # a resumed child takes its noise state from the record: the run's rng is not drawn
        resumed = child_record is not None and child_record["noise"] is not None
        noise_seed = (0, 0) if resumed else (int(args.rng.integers(2**31)), 0)
        worker_args = (
            list(tasks), n_envs, self.seed, snapshot, noise_seed, args.restarts, env_settings
        )  # fmt: skip
        self._start(worker_args, child_record)

    # --- the child -----------------------------------------------------------------------------

    def _start(self, worker_args: tuple, record: Mapping[str, Any] | None) -> None:
        context = mp.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=serve, args=(child_conn, worker_args, record), daemon=True
        )
        try:
            self._process.start()
        except Exception as error:
            self._conn.close()
            raise ConfigError(start_failure(error)) from None
        finally:
            child_conn.close()
        self._starting = True  # its first answer says it is ready: not waited for here

    def _receive(self, timeout_s: float | None = None) -> Any:
        """The child's next answer (after its ready message, the first time); raises what it
        raised, or MultiqError if it died."""
        if self._starting:
            self._starting = False
            self._answer(START_TIMEOUT_S)
        return self._answer(timeout_s)

    def _answer(self, timeout_s: float | None = None) -> Any:
        """One answer of the child; raises what it raised, or MultiqError if it died."""
        waited = 0.0
        while not self._conn.poll(POLL_S):
            waited += POLL_S
            if not self._process.is_alive():
                raise self._died()
            if timeout_s is not None and waited >= timeout_s:
                raise MultiqError(f"the collector process did not answer in {timeout_s:.0f} s")
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):  # its end of the pipe closed or reset: it died
            self._process.join(timeout=5)
            raise self._died() from None
        if kind == "error":
            raise payload
        return payload

    def _send(self, request: tuple) -> None:
        try:
            self._conn.send(request)
        except OSError:  # a broken pipe: it died
            self._process.join(timeout=5)
            raise self._died() from None

    def _died(self) -> MultiqError:
        return MultiqError(
            f"the collector process (async_updates) died with exit code "
            f"{self._process.exitcode}; set async_updates: false to step the envs in the "
            "training process"
        )

    # --- stepping ------------------------------------------------------------------------------

    def step(self, epsilon: float, shares: np.ndarray, state: TrainState) -> None:
        """Stores the vector step requested by the previous call (or takes one now), then asks
        the child for the next one with the learner's current weights.

        Raises:
            EnvError, NonFiniteError: an env raised or returned a non-finite value in the
                child; nothing of that step is recorded.
            MultiqError: the child died.
        """
        if self._pending is None and not self._in_flight:
            self._request(epsilon, shares, state)
        self._store(self._take(state), state)
        if state.phase_env_steps < self.budget:
            self._request(epsilon, shares, state)

    def _take(self, state: TrainState) -> Chunk:
        if self._pending is not None:
            chunk, self._pending = self._pending, None
            return chunk
        self._in_flight = False
        try:
            return self._receive()
        except (EnvError, NonFiniteError) as error:
            self.allocator.credit = self._credit_before
            raise type(error)(f"{error} (at env step {state.env_steps})") from error

    def _request(self, epsilon: float, shares: np.ndarray, state: TrainState) -> None:
        self._credit_before = self.allocator.credit.copy()
        counts = self._counts(shares, state)
        popart = self._sync_weights(state.updates)
        progress = state.phase_env_steps / max(self.budget, 1)
        self._send(("step", counts, float(epsilon), progress, popart))
        self._in_flight = True

    def _counts(self, shares: np.ndarray, state: TrainState) -> dict[str, int]:
        """Task name -> vector steps of the next request (`chunk` runs of the allocator)."""
        taken = sum(state.phase_task_env_steps[n] for n in self.names)
        counts = self._allocate(shares, taken, self.budget, self.chunk)
        return {n: int(c) for n, c in zip(self.names, counts, strict=True) if c}

    def _sync_weights(self, updates: int) -> dict | None:
        """Copies the learner's weights to the child's when updates ran since the last copy;
        returns PopArt's state to send along (None: unchanged or no PopArt)."""
        if updates == self._synced_updates:
            return None
        with torch.no_grad():
            if self.policy.device.type == "cpu":
                torch._foreach_copy_(self._shared, self._source)
            else:  # one device-to-host copy per tensor
                for shared, source in zip(self._shared, self._source, strict=True):
                    shared.copy_(source)
        self._synced_updates = updates
        popart = self.policy.popart
        return None if popart is None else popart.state_dict()

    # --- state ---------------------------------------------------------------------------------

    def record(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON meta, tensors): the child's envs (after the step in flight, which is kept and
        saved with them), its noise, the allocator's credit and the episode returns; without
        the envs' states when the child died (a resume starts new episodes)."""
        meta = {
            "seed": self.seed,
            "tasks": list(self.names),
            "credit": self.allocator.credit.tolist(),
            "finished": {n: list(r) for n, r in self.finished.items()},
        }
        try:
            child, obs = self._child_record()
        except MultiqError:  # the child died: its envs' states are lost
            return meta, {}
        meta.update(envs=child["envs"], noise=child["noise"])
        tensors = {name: torch.from_numpy(o) for name, o in obs.items()}
        if self._pending is not None:
            meta["pending"] = pending_meta(self._pending)
            tensors.update(pending_tensors(self._pending))
        return meta, tensors

    def _child_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._in_flight:
            self._in_flight = False
            self._pending = self._receive()
        self._send(("record",))
        return self._receive()

    def _restore_async(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """Takes a record's credit, returns and kept step; returns what the child restores
        (None for a record without the envs' states, e.g. of Ray collectors)."""
        self._restore(record)
        if "pending" in record:  # its finished episodes are not in record["finished"] yet
            self._pending = pending_chunk(record["pending"], record["obs"])
        if "envs" not in record:
            return None
        obs = {n: np.asarray(record["obs"][n]) for n in self.names}
        return {"envs": record["envs"], "noise": record.get("noise"), "obs": obs}

    def close(self) -> None:
        """Stops the child (waits for it briefly, then terminates it)."""
        with contextlib.suppress(Exception):
            self._conn.send(("close",))
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._conn.close()


def main_is_multiq_command() -> bool:
    """True when the main module is the `multiq` command (``multiq ...`` or ``python -m
    multiq.cli``), whose `main()` is guarded by ``__main__``: a spawned child imports it without
    training again. A user's script may not be guarded."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name.split(".")[0] == "multiq"
    return Path(getattr(main, "__file__", "") or "").name == "multiq"


def start_failure(error: Exception) -> str:
    """What to do when the collector process cannot start."""
    if "bootstrapping phase" in str(error):
        return (
            "async_updates starts the collector process with 'spawn', which imports the main "
            'script again: put the code that trains under `if __name__ == "__main__":`, or set '
            "async_updates: false"
        )
    return (
        f"async_updates: the collector process could not start ({type(error).__name__}: "
        f"{error}); tasks built in Python must be picklable (module-level functions, not "
        "lambdas), or set async_updates: false"
    )


def pending_meta(chunk: Chunk) -> dict[str, Any]:
    """The JSON part of a kept step."""
    return {
        "tasks": list(chunk.actions),
        "finished": chunk.finished,
        "restarts": chunk.restarts,
        "vector_steps": chunk.vector_steps,
    }


def pending_tensors(chunk: Chunk) -> dict[str, torch.Tensor]:
    """The arrays of a kept step, keyed ``pending/<field>/<task>``."""
    return {
        f"pending/{field}/{name}": torch.from_numpy(np.ascontiguousarray(array))
        for field in CHUNK_FIELDS
        for name, array in getattr(chunk, field).items()
    }


def pending_chunk(meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> Chunk:
    """A kept step from `pending_meta` and `pending_tensors`."""
    chunk = Chunk(
        finished={n: list(r) for n, r in meta["finished"].items()},
        restarts=dict(meta["restarts"]),
        vector_steps=int(meta["vector_steps"]),
    )
    for field in CHUNK_FIELDS:
        for name in meta["tasks"]:
            getattr(chunk, field)[name] = np.asarray(tensors[f"pending/{field}/{name}"])
    return chunk
