"""`MultiTaskDQN`: the public, Stable-Baselines3-style entry point."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.agents.dqn import DQNAgent, LearnerSettings
from multiq.config import CONFIG_FILE, Config
from multiq.errors import CheckpointError, ConfigError
from multiq.tasks import TaskSet, make_taskset
from multiq.train import checkpoint as ckpt
from multiq.train.callbacks import Callback, as_callback
from multiq.train.evaluation import evaluate_summary
from multiq.train.loop import EVAL_SEED_OFFSET, REPLAY_STEP_KEY, Trainer
from multiq.train.state import TrainState

RUNS_DIR = Path("runs")


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def default_run_dir(cfg: Config) -> Path:
    """runs/<date-time>-<tasks>, e.g. runs/20261122-101500-minatar."""
    label = cfg.tasks if isinstance(cfg.tasks, str) else "tasks"
    label = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
    return RUNS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-{label}"


def task_weight_list(cfg: Config, tasks: TaskSet) -> list[float]:
    """alpha per task in task order (1 for tasks the config does not name)."""
    weights = dict(cfg.task_weights or {})
    unknown = sorted(set(weights) - set(tasks.names))
    if unknown:
        raise ConfigError(f"task_weights names unknown tasks {unknown}; tasks are {tasks.names}")
    return [float(weights.get(name, 1.0)) for name in tasks.names]


class MultiTaskDQN:
    """One DQN agent for many tasks.

    Example:
        >>> model = MultiTaskDQN("gym:CartPole-v1,gym:Acrobot-v1", learning_starts=500)
        >>> model.learn(total_steps_per_task=20_000)
        >>> model.predict(obs, task="CartPole")

    Args:
        tasks: task entries (see `multiq.config.Config.tasks`).
        run_dir: where logs and checkpoints go (default runs/<date-time>-<tasks>).
        config: a ready Config; keyword hyperparameters override its values.
        **hyperparameters: any Config key (`learning_rate`, `buffer_size`, `scheme`, ...).
    """

    def __init__(
        self,
        tasks: str | Sequence[Any] | None = None,
        *,
        run_dir: str | Path | None = None,
        config: Config | None = None,
        **hyperparameters: Any,
    ):
        base = config or Config()
        changes = dict(hyperparameters)
        if tasks is not None:
            changes["tasks"] = tasks if isinstance(tasks, str) else list(tasks)
        self.config = base.replace(**changes) if changes else base
        self.task_set = make_taskset(self.config.tasks)
        self.device = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        self.rng = np.random.default_rng(self.config.seed)
        settings = LearnerSettings(
            **{f.name: getattr(self.config, f.name) for f in dataclasses.fields(LearnerSettings)}
        )
        weights = task_weight_list(self.config, self.task_set)
        self.agent = DQNAgent(self.task_set, settings, weights, self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(self.config)
        self.state = TrainState(learning_starts_at=self.config.learning_starts)
        self._replay_arrays: dict[str, np.ndarray] | None = None
        self.trainer: Trainer | None = None

    # --- training ---------------------------------------------------------------------------

    def learn(
        self,
        total_steps_per_task: int | None = None,
        callbacks: Callback | list[Callback] | None = None,
        evaluate: bool = True,
    ) -> MultiTaskDQN:
        """Trains until `total_steps_per_task` env steps per task (a total, as in SB3's resume).

        With `evaluate`, measures the random policy once, evaluates every `eval_freq` steps and
        at the end, and writes summary.json and curves.png to the run folder; a net that logs
        routing weights (scheme `routed`) also gets routing.png.
        """
        if total_steps_per_task is not None:
            self.config = self.config.replace(total_steps_per_task=total_steps_per_task)
        if self.trainer is None:
            self.trainer = Trainer(
                self.config, self.task_set, self.agent, self.run_dir, self.state, self.rng,
                callbacks, self._replay_arrays,
            )  # fmt: skip
            self._replay_arrays = None
        else:  # a further learn() call continues with the same replay buffers
            self.trainer.cfg, self.trainer.callback = self.config, as_callback(callbacks)
        summary = self.trainer.run(evaluate=evaluate)
        self.save(self.run_dir / ckpt.MODEL_FILE)
        from multiq.report import plot_curves, plot_routing

        if evaluate:
            plot_curves(self.run_dir)
        plot_routing(self.run_dir)  # writes routing.png only if routing weights were logged
        self.summary = summary
        return self

    # --- inference --------------------------------------------------------------------------

    def predict(self, obs: np.ndarray, task: str | int, epsilon: float = 0.0) -> np.ndarray:
        """Greedy (or epsilon-greedy) actions of one task.

        Args:
            obs: one observation `[*obs_shape]` or a batch `[B, *obs_shape]` of that task.
            task: task name or index.
            epsilon: exploration rate (0: greedy).

        Returns:
            an int action for a single observation, else [B] int64 actions.
        """
        index = task if isinstance(task, int) else self.task_set.index(task)
        spec = self.task_set[index]
        obs = np.asarray(obs)
        single = obs.shape == spec.obs_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != spec.obs_shape:
            raise ValueError(
                f"task {spec.name!r} observations have shape {spec.obs_shape}; got {obs.shape}"
            )
        per_task = [np.zeros((0, *t.obs_shape), t.obs_dtype) for t in self.task_set]
        per_task[index] = batch.astype(spec.obs_dtype, copy=False)
        actions = self.agent.act(per_task, epsilon, self.rng)[index]
        return int(actions[0]) if single else actions

    def evaluate(self, episodes: int | None = None, epsilon: float | None = None) -> dict:
        """Task name -> {return_mean, return_std, episodes} over fresh evaluation envs."""
        episodes = episodes or self.config.eval_episodes
        eps = self.config.eval_epsilon if epsilon is None else epsilon
        seed = self.config.seed + EVAL_SEED_OFFSET + self.state.env_steps
        return evaluate_summary(self.agent, self.task_set, episodes, eps, seed)

    # --- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Writes config, weights and balancer/PopArt state to one file (atomic, no pickle)."""
        path = Path(path)
        meta = {"config": self.config.to_dict(), "state": self.state.to_dict()}
        tensors = {"online": self.agent.online.state_dict(), **self.agent.balance_state_dict()}
        ckpt.save_tensors(path, "model", meta, tensors)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, **overrides: Any) -> MultiTaskDQN:
        """Rebuilds a model saved by `save` (no optimiser or replay)."""
        meta, payload = ckpt.load_tensors(Path(path), "model")
        model = cls._from_config_dict(meta["config"], device, overrides)
        model.agent.online.load_state_dict(payload["online"])
        model.agent.sync_target(1.0)
        model.agent.load_balance_state_dict(payload)
        model.state = TrainState.from_dict(meta["state"])
        return model

    @classmethod
    def resume(cls, run_dir: str | Path, device: str | None = None, **overrides: Any):
        """Continues a run from RUN_DIR/checkpoint.pt: weights, optimiser, counters, RNGs."""
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise CheckpointError(f"{run_dir} has no {CONFIG_FILE}: not a multiq run folder")
        meta, payload = ckpt.load_tensors(run_dir / ckpt.CHECKPOINT_FILE, "checkpoint")
        model = cls._from_config_dict(meta["config"], device, overrides, run_dir=run_dir)
        model.agent.load_state_dict(payload["agent"])
        torch.set_rng_state(payload["torch_rng"])
        model.rng.bit_generator.state = meta["numpy_rng"]
        model.state = TrainState.from_dict(meta["state"])
        model._replay_arrays = _matching_replay(run_dir, meta.get("replay_saved_at"))
        if model._replay_arrays is None:
            # No saved replay: refill the buffers for `learning_starts` steps before updating.
            model.state.learning_starts_at = model.state.env_steps + model.config.learning_starts
        return model

    @classmethod
    def _from_config_dict(cls, data, device, overrides, run_dir=None) -> MultiTaskDQN:
        config = Config.from_dict(data)
        if device is not None:
            overrides = {**overrides, "device": device}
        return cls(config=config, run_dir=run_dir, **overrides)


def _matching_replay(run_dir: Path, saved_at: int | None) -> dict[str, np.ndarray] | None:
    """The saved replay arrays, if they belong to the checkpoint's step."""
    path = run_dir / ckpt.REPLAY_FILE
    if saved_at is None or not path.is_file():
        return None
    arrays = ckpt.load_arrays(path)
    if int(arrays.pop(REPLAY_STEP_KEY, -1)) != saved_at:
        return None
    return arrays
