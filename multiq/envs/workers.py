"""The ``subprocess`` env backend: one task's envs stepped in worker processes.

`SubprocessTaskEnvs` splits a task's `n_envs` envs into `workers` contiguous slices, each a
`TaskEnvs` in a process of its own, and stands where a `TaskEnvs` does:

- **Same transitions.** Each worker runs `TaskEnvs` on its slice with the slice's seeds, so the
  observations, rewards and flags are the ones the in-process envs give. The parent keeps the
  task's `EnvHistory` itself (from the actions it sends and the flags it gets back): `record`,
  `mark` and `rollback` cost no message, and a checkpoint can be written after a worker died.
- **Restarts.** The parent holds the task's restart budget and sends what is left with every
  step; the errors the step's workers met are walked in env order, so the error that stops a
  run, and the restarts counted, are those of the in-process envs.
- **Per step** one message to each worker (its actions and the budget left) and one back (obs,
  rewards, terminated, truncated, failed, the step's restart errors, its log records), numpy
  arrays pickled through a pipe. Every task's workers step before any is waited for
  (`step_async` / `step_wait`), so tasks run side by side.
- **Start.** ``forkserver`` where the platform has it, else ``spawn``: a worker is never a fork
  of a process that holds torch's threads. The fork server preloads this module, so a worker
  starts without importing gymnasium again.
- **Failure.** A parent waiting for a reply checks every `POLL_S` that the worker lives: a
  worker that died (a crash in an env's C code, the OOM killer) is an EnvError naming the task,
  its envs and the exit code, never a hang.
- **Close.** Workers ignore SIGINT (Ctrl-C reaches the whole process group; the training
  process stops at a consistent point and closes them), leave when their pipe closes (the
  parent died), and `close` joins them, terminating one that does not leave in `JOIN_S`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
import weakref
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np

from multiq.envs.inprocess import RESTART_MESSAGE, EnvHistory, TaskEnvs, started_actions
from multiq.errors import EnvError
from multiq.tasks.gym_ids import import_env_modules

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often a parent waiting for a reply checks that the worker lives
JOIN_S = 2.0  # how long `close` waits for a worker to leave before terminating it
# Imported once by the fork server, before it forks any worker (see `_context`).
PRELOAD = ("multiq.api", "minatar.gym", "ale_py", "minigrid")


# --- the worker process ---------------------------------------------------------------------


class _LogBuffer(logging.Handler):
    """Keeps a worker's multiq log records; each reply carries them to the parent."""

    def __init__(self):
        super().__init__()
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))

    def take(self) -> list[tuple[str, int, str]]:
        records, self.records = self.records, []
        return records


def _step(envs: TaskEnvs, payload: tuple[np.ndarray, int]) -> tuple:
    """(obs, rewards, terminated, truncated, failed, restart errors, error or None)."""
    actions, envs.restarts_left = payload
    first = len(envs.restart_errors)
    try:
        result = envs.step(actions)
    except EnvError as error:  # out of restarts: the parent decides (see `_check_restarts`)
        return (None,) * 5 + (envs.restart_errors[first:], str(error))
    return (*result, envs.restart_errors[first:], None)


def _restore(envs: TaskEnvs, payload: tuple[Mapping[str, Any], np.ndarray]) -> tuple:
    obs = envs.restore(*payload)
    return obs, envs.record()


_COMMANDS: dict[str, Callable[[TaskEnvs, Any], Any]] = {
    "reset": TaskEnvs.reset,
    "step": _step,
    "restore": _restore,
}


def _describe(error: BaseException, name: str) -> str:
    """An EnvError's own message (it names task and env), else one naming the task."""
    if isinstance(error, EnvError):
        return str(error)
    return f"task {name!r}: an env worker raised {type(error).__name__}: {error}"


def _serve(
    conn: Connection,
    name: str,
    make_env: bytes,
    n_envs: int,
    first_env: int,
    imports: Sequence[str],
    log_level: int,
) -> None:
    """A worker's life: build the envs, answer commands until `close` or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes us
    logs, logger = _LogBuffer(), logging.getLogger("multiq")
    logger.addHandler(logs)
    logger.setLevel(log_level)
    logger.propagate = False  # records go to the parent, not to this process's stderr
    try:
        import_env_modules(imports)
        envs = TaskEnvs(name, pickle.loads(make_env), n_envs, first_env=first_env)
        envs.log_restarts = False  # the parent logs them, counting the task's whole budget
    except BaseException as error:
        conn.send(("error", _describe(error, name), logs.take()))
        return
    conn.send(("ok", (envs.obs_shape, envs.obs_dtype.str), logs.take()))
    try:
        while True:
            try:
                command, payload = conn.recv()
            except EOFError:  # the parent is gone
                return
            if command == "close":
                return
            try:
                reply = ("ok", _COMMANDS[command](envs, payload))
            except Exception as error:
                reply = ("error", _describe(error, name))
            conn.send((*reply, logs.take()))
    finally:
        envs.close()


# --- the parent's side ----------------------------------------------------------------------


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it, else ``spawn``.

    The fork server (one per training process, started with the first worker, in seconds)
    preloads this module and `PRELOAD` (those installed), so a worker starts in milliseconds:
    a worker runs the main script's imports again (the script needs its
    ``if __name__ == "__main__":`` guard) and its env package's, and torch's import takes
    seconds, MinAtar's too (it pulls in seaborn). The fork server is started once, so it
    preloads every env package, not only those of the first task. Python 3.11's fork server
    ignores its ``__main__`` preload.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__, *PRELOAD])
    return context


def _exit_text(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class _Worker:
    """One worker process holding envs [first, stop) of a task, and its end of the pipe."""

    def __init__(self, context, name: str, make_env: bytes, first: int, stop: int, imports):
        self.name, self.first, self.stop = name, first, stop
        self.conn, child = context.Pipe()
        args = (child, name, make_env, stop - first, first, tuple(imports), _log_level())
        self.process = context.Process(
            target=_serve, args=args, name=f"multiq-envs-{name}-{first}", daemon=True
        )
        self.process.start()
        child.close()  # so that a dead worker's pipe reads as closed
        self.waiting = True  # for the "ready" reply
        self.ready = False

    def died(self) -> EnvError:
        with contextlib.suppress(Exception):
            self.process.join(timeout=POLL_S)
        hint = (
            "env_backend inprocess shows the env's own error"
            if self.ready
            else "it failed to start: its error is printed above (a script that starts env "
            "workers needs the `if __name__ == '__main__':` guard)"
        )
        return EnvError(
            f"task {self.name!r}: the worker process of envs {self.first}-{self.stop - 1} "
            f"died ({_exit_text(self.process.exitcode)}); {hint}"
        )

    def send(self, command: str, payload: Any) -> None:
        try:
            self.conn.send((command, payload))
        except (OSError, ValueError) as error:  # BrokenPipeError, a closed connection
            raise self.died() from error
        self.waiting = True

    def receive(self) -> Any:
        """The reply to the last command; EnvError for an error or a dead worker."""
        self.waiting = False
        try:
            while not self.conn.poll(POLL_S):
                if not self.process.is_alive():
                    raise self.died()
            status, payload, records = self.conn.recv()
        except (EOFError, OSError) as error:
            raise self.died() from error
        self.ready = True
        for logger, level, message in records:
            logging.getLogger(logger).log(level, "%s", message)
        if status == "error":
            raise EnvError(payload)
        return payload

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.waiting and self.process.is_alive() and self.conn.poll(JOIN_S):
                self.conn.recv()  # a reply still in the pipe would keep the worker writing
        with contextlib.suppress(Exception):
            self.conn.send(("close", None))
        self.process.join(timeout=JOIN_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=JOIN_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _log_level() -> int:
    return logging.getLogger("multiq").getEffectiveLevel()


def _close_all(workers: Sequence[_Worker]) -> None:
    for worker in workers:
        worker.close()


def _slices(n_envs: int, workers: int) -> list[tuple[int, int]]:
    """[first, stop) of each worker's envs: `workers` (at most `n_envs`) near-equal slices."""
    bounds = np.linspace(0, n_envs, min(workers, n_envs) + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


class SubprocessTaskEnvs:
    """`n_envs` copies of one task's env in `workers` processes; the interface of `TaskEnvs`.

    Args:
        name: the task's name (for error messages).
        make_env: builds one env; sent to the workers with cloudpickle (lambdas work).
        n_envs: copies.
        restarts: how many times an env that raises is rebuilt before the error stops the run.
        workers: processes; each holds a contiguous slice of the envs (at most `n_envs`).
        imports: modules each worker imports first (the ones that register the task's env).

    Raises:
        EnvError: `make_env` cannot be pickled, a worker cannot start, or an env cannot be built.
    """

    def __init__(
        self,
        name: str,
        make_env: Callable[[], gym.Env],
        n_envs: int,
        restarts: int = 0,
        workers: int = 1,
        imports: Sequence[str] = (),
    ):
        self.name = name
        self.history = EnvHistory(n_envs)
        self.restarts_left, self.restarted = restarts, 0
        self._actions: np.ndarray | None = None
        payload = self._pickled(make_env)
        context = _context()
        self.workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _close_all, self.workers)
        try:
            for first, stop in _slices(n_envs, workers):
                self.workers.append(_Worker(context, name, payload, first, stop, imports))
            shape, dtype = self._collect()[0]
        except BaseException:
            self.close()
            raise
        self.obs_shape, self.obs_dtype = tuple(shape), np.dtype(dtype)

    def _pickled(self, make_env: Callable[[], gym.Env]) -> bytes:
        try:
            return cloudpickle.dumps(make_env)
        except Exception as error:
            raise EnvError(
                f"task {self.name!r}: its env constructor cannot be sent to a worker process "
                f"({type(error).__name__}: {error}); use env_backend inprocess"
            ) from error

    def _collect(self) -> list[Any]:
        """Every waiting worker's reply, in order; the first error is raised after all came."""
        replies, first_error = [], None
        for worker in self.workers:
            if not worker.waiting:
                continue
            try:
                replies.append(worker.receive())
            except EnvError as error:
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        return replies

    def _drain(self) -> None:
        """Reads the replies of a step that was started but not waited for (after an error)."""
        self._actions = None
        with contextlib.suppress(EnvError):
            self._collect()

    def _send(self, command: str, payloads: Sequence[Any]) -> None:
        for worker, payload in zip(self.workers, payloads, strict=True):
            worker.send(command, payload)

    def _concat(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """[n_envs, *obs_shape] first observations; env i's first episode is seeded `seeds[i]`."""
        self._drain()
        self.history.start(seeds)
        self._send("reset", [list(seeds[w.first : w.stop]) for w in self.workers])
        return self._concat(self._collect())

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """(obs, rewards, terminated, truncated, failed), each [n_envs, ...] (see `TaskEnvs`)."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Sends each worker its actions; `step_wait` collects the results."""
        self._actions = np.asarray(actions)
        self._send(
            "step", [(self._actions[w.first : w.stop], self.restarts_left) for w in self.workers]
        )

    def step_wait(self) -> tuple[np.ndarray, ...]:
        """Finishes the step `step_async` started; returns what `TaskEnvs.step` returns."""
        actions, self._actions = started_actions(self._actions), None
        replies = self._collect()
        self._check_restarts(replies)
        obs, rewards, terminated, truncated, failed = (
            self._concat([reply[k] for reply in replies]) for k in range(5)
        )
        self.history.advance(actions, terminated | truncated, failed)
        return obs, rewards, terminated, truncated, failed

    def _check_restarts(self, replies: Sequence[tuple]) -> None:
        """Spends the restart budget on the step's env errors in env order, as `TaskEnvs` does
        (and logs each restart as it does); raises the error of the first env past the budget,
        or of a worker that gave up."""
        for reply in replies:
            for message in reply[5]:
                if self.restarts_left == 0:
                    raise EnvError(message)
                self.restarts_left -= 1
                self.restarted += 1
                log.warning(RESTART_MESSAGE, message, self.restarts_left)
            if reply[6] is not None:
                raise EnvError(reply[6])

    def mark(self) -> tuple:
        """What `rollback` needs to undo the records of one `step` call."""
        return self.history.mark()

    def rollback(self, mark: tuple) -> None:
        """Puts the records (not the envs) back to `mark`: the last consistent state."""
        self._drain()
        self.history.rollback(mark)

    def record(self) -> dict[str, Any]:
        """JSON-safe state of the envs: seeds, episode indices and actions of each episode."""
        return self.history.to_dict()

    def restore(self, record: Mapping[str, Any], expected_obs: np.ndarray) -> np.ndarray:
        """Each worker replays its slice of `record` (see `TaskEnvs.restore`); returns the
        [n_envs, *obs_shape] current observations."""
        self._drain()
        self.history.load(record)
        self._send(
            "restore",
            [
                (self.history.to_dict(w.first, w.stop), expected_obs[w.first : w.stop])
                for w in self.workers
            ],
        )
        replies = self._collect()
        parts = [part for _, part in replies]
        self.history.load({key: sum((p[key] for p in parts), []) for key in parts[0]})
        return self._concat([obs for obs, _ in replies])

    def close(self) -> None:
        """Stops the workers (idempotent)."""
        self._finalizer()
