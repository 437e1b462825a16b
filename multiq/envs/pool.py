"""The ``envpool`` env backend: Atari tasks on EnvPool (C++ envs stepped by a thread pool).

EnvPool (``pip install 'multiq[envpool]'``; the ROMs ship in its envpool-assets package, nothing
is downloaded at run time) has the preprocessing of `multiq.tasks.atari` built in: frame skip 4
with a max over the last two frames, 84x84 grayscale (INTER_AREA), `noop_max` no-op starts,
sticky actions, a stack of 4 frames, reward sign clipping and life-loss terminals for training
envs. Its autoreset is NEXT_STEP's: the step after an episode's end resets that env, ignores its
action and gives reward 0, as `TaskEnvs` does. `EnvPoolTaskEnvs` stands where a `TaskEnvs`
stands; `env_workers` is the pool's thread count.

What is the same as the ALE path (tests/test_envpool_envs.py): shapes, dtype and, where the
episode is deterministic (noop_max 1, repeat_action_probability 0), every frame, reward and flag
of Tetris and MsPacman. What differs:

- Seeds: a pool seeds env i once, when it is built, and draws later episodes' no-op starts and
  sticky actions from that env's own generator; the ALE path reseeds every episode
  (`episode_seed`). Random episodes of the two are not the same episodes.
- Resume: an episode cannot be replayed into a pool, so `restore` starts new episodes (logged).
- Restarts: the pool reports no per-env failure; any error is an EnvError for the whole task.
- `terminal_on_life_loss`: EnvPool ends the episode at a lost life and plays on in the same
  game (the DQN paper's way); the ALE path starts a new game.
- At a game's end the ALE path's frame-skip loop stops early, so the last observation may
  differ; Pacman's frames differ throughout (EnvPool's ALE build renders that ROM otherwise).
- `noop_max` 0 crashes EnvPool 1.2; it is refused with an EnvError.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from multiq.envs.inprocess import EnvHistory, started_actions
from multiq.errors import ConfigError, EnvError
from multiq.tasks.spec import TaskSpec
from multiq.tasks.suites import SUITES as TASK_SUITES

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'multiq[envpool]' (or envpool), or use env_backend inprocess"
SEED_MODULUS = 2**31  # EnvPool's seeds are int32


def _atari(member: str, options: Mapping[str, Any], evaluation: bool) -> tuple[str, dict]:
    """EnvPool's id and make kwargs for the `atari` suite's `member` with its options."""
    return f"{member}-v5", {
        "noop_max": int(options["noop_max"]),
        "repeat_action_probability": float(options["repeat_action_probability"]),
        "full_action_space": bool(options["full_action_space"]),
        "episodic_life": bool(options["terminal_on_life_loss"]) and not evaluation,
        "reward_clip": bool(options["clip_rewards"]) and not evaluation,
        "use_fire_reset": False,  # the ALE path presses nothing at reset
        "frame_skip": 4,
        "stack_num": 4,
        "img_height": 84,
        "img_width": 84,
        "gray_scale": True,
    }


SUITES: dict[str, Callable[[str, Mapping[str, Any], bool], tuple[str, dict]]] = {
    "atari": _atari,
}
"""Suite name -> `kwargs(member, options, evaluation)`: the suites EnvPool can run."""


def envpool_task(spec: TaskSpec, evaluation: bool = False) -> tuple[str, dict] | None:
    """EnvPool's (id, make kwargs) of a task built from a suite in `SUITES`, else None."""
    suite, _, member = str(spec.source.get("id", "")).partition(":")
    if suite not in SUITES or not member:
        return None
    options = {**(TASK_SUITES[suite].options or {}), **spec.source.get("kwargs", {})}
    return SUITES[suite](member, options, evaluation)


def envpool_installed() -> bool:
    return importlib.util.find_spec("envpool") is not None


class EnvPoolTaskEnvs:
    """`n_envs` copies of one Atari task's env in an EnvPool; the interface of `TaskEnvs`.

    Args:
        spec: a task `envpool_task` knows.
        n_envs: copies.
        evaluation: the evaluation variant (no reward clipping, no life-loss terminals).
        threads: the pool's threads (at most `n_envs`).

    Raises:
        ConfigError: envpool is not installed.
        EnvError: the pool cannot be built for these options.
    """

    def __init__(self, spec: TaskSpec, n_envs: int, evaluation: bool = False, threads: int = 1):
        if not envpool_installed():
            raise ConfigError(f"env_backend envpool needs the envpool package: {INSTALL_HINT}")
        task = envpool_task(spec, evaluation)
        if task is None:
            raise EnvError(
                f"task {spec.name!r} has no EnvPool version (it runs the suites {list(SUITES)}); "
                "use env_backend inprocess"
            )
        self.name, (self.task_id, self.kwargs) = spec.name, task
        if self.kwargs["noop_max"] < 1:
            raise EnvError(
                f"task {spec.name!r}: EnvPool crashes with noop_max 0; give the atari option "
                "noop_max >= 1, or use env_backend inprocess or subprocess"
            )
        self.n_envs, self.threads = n_envs, max(1, min(threads, n_envs))
        self.obs_shape, self.obs_dtype = spec.obs_shape, spec.obs_dtype
        self.history = EnvHistory(n_envs)
        self.restarted = 0
        self.pool: Any = None
        self._env_ids = np.arange(n_envs, dtype=np.int32)
        self._actions: np.ndarray | None = None

    def _call(self, what: str, fn: Callable, *args, **kwargs):
        """Calls `fn`; an exception becomes an EnvError naming the task and call."""
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise EnvError(
                f"task {self.name!r}: EnvPool raised while {what}: {type(error).__name__}: {error}"
            ) from error

    def _build(self, seeds: Sequence[int]) -> np.ndarray:
        """A new pool, env i seeded `seeds[i]`; returns its first observations."""
        import envpool  # optional dependency: imported only when the backend is used

        self.close()
        self.pool = self._call(
            "being built", envpool.make, self.task_id, env_type="gymnasium",
            num_envs=self.n_envs, batch_size=self.n_envs, num_threads=self.threads,
            seed=[int(s) % SEED_MODULUS for s in seeds], **self.kwargs,
        )  # fmt: skip
        obs, info = self._call("resetting", self.pool.reset)
        obs = obs[np.argsort(info["env_id"])]
        if obs.shape[1:] != self.obs_shape or obs.dtype != self.obs_dtype:
            raise EnvError(
                f"task {self.name!r}: EnvPool gives observations {obs.shape[1:]} {obs.dtype}, "
                f"the task has {self.obs_shape} {self.obs_dtype}; use env_backend inprocess"
            )
        return obs

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """[n_envs, *obs_shape] first observations; env i's pool is seeded `seeds[i]`."""
        self.history.start(seeds)
        return self._build(seeds)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """(obs, rewards, terminated, truncated, failed), each [n_envs, ...] (see `TaskEnvs`)."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Hands the actions to the pool's threads; `step_wait` collects the results."""
        self._actions = np.asarray(actions)
        self._call("stepping", self.pool.send, self._actions.astype(np.int32), self._env_ids)

    def step_wait(self) -> tuple[np.ndarray, ...]:
        """Finishes the step `step_async` started; returns what `TaskEnvs.step` returns."""
        actions, self._actions = started_actions(self._actions), None
        obs, rewards, terminated, truncated, info = self._call("stepping", self.pool.recv)
        order = np.argsort(info["env_id"])  # a new array each: the pool reuses its buffers
        terminated, truncated = terminated[order].astype(bool), truncated[order].astype(bool)
        failed = np.zeros(self.n_envs, dtype=bool)
        self.history.advance(actions, terminated | truncated, failed)
        return obs[order], rewards[order].astype(np.float32), terminated, truncated, failed

    def mark(self) -> tuple:
        return self.history.mark()

    def rollback(self, mark: tuple) -> None:
        if self._actions is not None:  # started, never waited for: take the pool's answer
            self._actions = None
            self._call("stepping", self.pool.recv)
        self.history.rollback(mark)

    def record(self) -> dict[str, Any]:
        """JSON-safe state (the `EnvHistory`; an in-process restore of it starts new episodes
        where the replay does not give the recorded observations)."""
        return self.history.to_dict()

    def restore(self, record: Mapping[str, Any], expected_obs: np.ndarray) -> np.ndarray:
        """Every env starts a new episode (a pool cannot replay one); logged."""
        self.history.load(record)
        log.warning(
            "task %r: EnvPool cannot replay the recorded episodes; its %d envs start new ones",
            self.name, self.n_envs,
        )  # fmt: skip
        for i in range(self.n_envs):
            self.history.new_episode(i)
        return self._build([self.history.seed(i) for i in range(self.n_envs)])

    def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            close = getattr(pool, "close", None)
            if close is not None:
                close()
