"""The training loop: envs, replay, evaluation, logging and checkpoints around the agent.

Per vector step: one batched forward chooses every env's action, the envs of the tasks the task
schedule picks step (all of them under the default ``uniform`` schedule), the transitions go to
per-task buffers; every `train_freq` vector steps' worth of env steps one update covers a batch of
`batch_size * T` samples, split between tasks by the schedule's shares (`batch_size` each under
``uniform``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.agents.dqn import DQNAgent
from multiq.config import CONFIG_FILE, Config
from multiq.envs import MultiTaskEnvs
from multiq.mtl.schedules import StepAllocator, TaskStats, build_schedule, sample_counts
from multiq.replay import MultiTaskReplay
from multiq.report.metrics import SUMMARY_FILE
from multiq.tasks.spec import TaskSet
from multiq.tracking import Tracker
from multiq.train import checkpoint as ckpt
from multiq.train.callbacks import Callback, as_callback
from multiq.train.evaluation import evaluate_summary
from multiq.train.state import TrainState

PROGRESS_EVERY_S = 0.5
REPLAY_STEP_KEY = "env_steps"  # stored in replay.npz: a replay newer than the checkpoint is ignored
EVAL_SEED_OFFSET = 1_000_000  # evaluation envs never share seeds with training envs
TASK_METRIC_NAMES = {"task_losses": "loss"}  # update() key -> logged name under task/<name>/


def crossed(step: int, increment: int, every: int) -> bool:
    """True when going from `step - increment` to `step` passed a multiple of `every` (> 0)."""
    return every > 0 and step // every != (step - increment) // every


def linear_epsilon(cfg: Config, env_steps: int, total_steps: int) -> float:
    """SB3's schedule: initial -> final over `exploration_fraction` of training, then flat."""
    decay_steps = cfg.exploration_fraction * total_steps
    progress = 1.0 if decay_steps == 0 else min(env_steps / decay_steps, 1.0)
    return cfg.exploration_initial_eps + progress * (
        cfg.exploration_final_eps - cfg.exploration_initial_eps
    )


class Trainer:
    """Owns the envs, replay, evaluation, logs and checkpoints of one run."""

    def __init__(
        self,
        cfg: Config,
        tasks: TaskSet,
        agent: DQNAgent,
        run_dir: Path,
        state: TrainState,
        rng: np.random.Generator,
        callbacks: Callback | list[Callback] | None = None,
        replay_arrays: dict[str, np.ndarray] | None = None,
    ):
        self.cfg, self.tasks, self.agent = cfg, tasks, agent
        self.run_dir = Path(run_dir)
        self.state, self.rng = state, rng
        self.callback = as_callback(callbacks)
        self.replay = MultiTaskReplay(tasks, cfg.buffer_size, cfg.n_envs, cfg.n_step, cfg.gamma)
        if replay_arrays is not None:
            self.replay.load_state(replay_arrays)
        self.schedule = build_schedule(
            cfg.task_schedule, len(tasks), cfg.schedule_uniform_mix, cfg.schedule_window
        )
        self.allocator = StepAllocator(len(tasks))
        self._task_weights = agent.task_weights.cpu().numpy()  # [T] alpha, for the schedule
        self._metric_sums: dict[str, torch.Tensor] = {}
        self._metric_count = 0
        self._interval_samples = np.zeros(len(tasks), dtype=np.int64)  # since the last log row
        self._interval_env_steps = np.zeros(len(tasks), dtype=np.int64)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, evaluate: bool = True) -> dict[str, Any]:
        """Trains until `cfg.total_steps_per_task`; returns the summary (empty if not evaluated)."""
        cfg, state = self.cfg, self.state
        cfg.to_yaml(self.run_dir / CONFIG_FILE)
        tracker = Tracker(
            self.run_dir, self.tasks.names, cfg.total_steps_per_task,
            tensorboard=cfg.tensorboard, progress_bar=cfg.progress_bar,
            start_step=state.env_steps,
        )  # fmt: skip
        if evaluate and state.random_returns is None:
            self._measure_random(tracker)
        envs = MultiTaskEnvs(self.tasks, cfg.n_envs, cfg.seed + state.vector_steps)
        try:
            self._train(envs, tracker, evaluate)
        finally:
            envs.close()
        summary = self._finish(tracker, evaluate)
        tracker.close()
        return summary

    def _train(self, envs: MultiTaskEnvs, tracker: Tracker, evaluate: bool) -> None:
        cfg, state, agent = self.cfg, self.state, self.agent
        num_tasks, total = len(self.tasks), cfg.total_steps_per_task
        update_every = cfg.train_freq * cfg.n_envs * num_tasks  # env steps of all tasks
        if not state.task_env_steps:
            state.task_env_steps = [state.env_steps] * num_tasks
        started, start_steps, last_progress = time.perf_counter(), sum(state.task_env_steps), 0.0
        sps = 0.0
        shares = self._shares(envs)
        obs = envs.reset()
        self.callback.on_training_start(self)
        while state.env_steps < total:
            learning = state.env_steps >= state.learning_starts_at
            epsilon = linear_epsilon(cfg, state.env_steps, total) if learning else 1.0
            before, all_before = state.env_steps, sum(state.task_env_steps)
            obs = self._step_envs(envs, obs, epsilon, self.allocator.active(shares))
            all_steps = sum(state.task_env_steps)
            if crossed(all_steps, all_steps - all_before, update_every):
                shares = self._shares(envs)
                if learning:
                    self._update(shares)
            if crossed(state.env_steps, state.env_steps - before, cfg.target_update_interval):
                agent.sync_target(cfg.tau)

            now = time.perf_counter()
            sps = (all_steps - start_steps) / max(now - started, 1e-9)
            self._periodic(tracker, envs, epsilon, sps, before, evaluate)
            if now - last_progress > PROGRESS_EVERY_S:
                tracker.progress(state.env_steps, sps, envs.recent_returns())
                last_progress = now
            if not self.callback.on_step(self):
                break
        state.wall_time_s += time.perf_counter() - started
        tracker.progress(state.env_steps, sps, envs.recent_returns())

    def _step_envs(
        self, envs: MultiTaskEnvs, obs: list[np.ndarray], epsilon: float, active: np.ndarray
    ) -> list[np.ndarray]:
        """One vector step of the active tasks; stores their transitions; returns the new obs."""
        state, n_envs = self.state, self.cfg.n_envs
        actions = self.agent.act(obs, epsilon, self.rng)
        step = envs.step(actions, active)
        obs = list(obs)
        for t, buffer in enumerate(self.replay.buffers):
            if not active[t]:
                continue  # this task's envs wait; its observations stay
            buffer.add(
                obs[t], actions[t], step.rewards[t], step.obs[t],
                step.terminated[t], step.truncated[t], step.valid[t],
            )  # fmt: skip
            obs[t] = step.obs[t]  # CRUCIAL: continue from the new observations
            state.task_env_steps[t] += n_envs
            self._interval_env_steps[t] += n_envs
        state.vector_steps += 1
        state.env_steps = sum(state.task_env_steps) // len(self.tasks)
        return obs

    def _update(self, shares: np.ndarray) -> None:
        """`gradient_steps` gradient steps, each on a batch split between tasks by `shares`."""
        cfg, state = self.cfg, self.state
        counts = sample_counts(shares, cfg.batch_size * len(self.tasks))
        self.agent.set_progress(state.env_steps / cfg.total_steps_per_task)
        for _ in range(cfg.gradient_steps):
            self._accumulate(self.agent.update(self.replay.sample(counts, self.rng)))
            self._interval_samples += counts
            state.updates += 1

    def _shares(self, envs: MultiTaskEnvs) -> np.ndarray:
        """[T] the schedule's current shares of env steps and replay samples."""
        stats = TaskStats(
            env_steps=np.array(self.state.task_env_steps),
            transitions=np.array([len(b) for b in self.replay.buffers]),
            episodes=np.array([len(e.finished) for e in envs.episodes]),
            recent_returns=[e.finished[-self.cfg.schedule_window :] for e in envs.episodes],
            weights=self._task_weights,
        )
        return self.schedule.shares(stats)

    def _periodic(
        self,
        tracker: Tracker,
        envs: MultiTaskEnvs,
        epsilon: float,
        sps: float,
        before: int,
        evaluate: bool,
    ) -> None:
        """Logs, evaluates and checkpoints when the step count crosses their intervals."""
        cfg, steps = self.cfg, self.state.env_steps
        increment = steps - before
        if crossed(steps, increment, cfg.log_interval):
            tracker.log(steps, self._train_metrics(envs, epsilon, sps))
        if evaluate and crossed(steps, increment, cfg.eval_freq):
            self._evaluate(tracker)
        if crossed(steps, increment, cfg.checkpoint_freq):
            self.save_checkpoint()

    # --- metrics ----------------------------------------------------------------------------

    def _accumulate(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self._metric_sums[key] = self._metric_sums.get(key, 0) + value
        self._metric_count += 1

    def _train_metrics(self, envs: MultiTaskEnvs, epsilon: float, sps: float) -> dict[str, float]:
        metrics = {"rollout/epsilon": epsilon, "time/sps": sps, "train/updates": self.state.updates}
        for name, value in envs.recent_returns().items():
            metrics[f"rollout/{name}/ep_return"] = value
        if self._metric_count:
            means = {
                k: (v / self._metric_count).cpu().numpy() for k, v in self._metric_sums.items()
            }
            for key, value in means.items():
                if value.ndim == 0:
                    metrics[f"train/{key}"] = float(value)
                    continue
                label = TASK_METRIC_NAMES.get(key, key)
                for t, name in enumerate(self.tasks.names):
                    row = value[t].reshape(-1)  # [T] -> one number, [T, K] -> K numbers
                    if row.size == 1:
                        metrics[f"task/{name}/{label}"] = float(row[0])
                    else:
                        metrics.update(
                            {f"task/{name}/{label}_{i}": float(v) for i, v in enumerate(row)}
                        )
        for key, values in self.agent.diagnostics().items():  # [T, K] per diagnostic
            for name, row in zip(self.tasks.names, values.cpu().tolist(), strict=True):
                for k, value in enumerate(row):
                    metrics[f"task/{name}/{key}_{k}"] = value
        self._metric_sums, self._metric_count = {}, 0
        metrics.update(self._share_metrics())
        return metrics

    def _share_metrics(self) -> dict[str, float]:
        """Per task: its share of the replay samples and env steps since the last log row."""
        metrics = {}
        for key, counts in (("sample_share", self._interval_samples),
                            ("env_step_share", self._interval_env_steps)):  # fmt: skip
            if counts.sum() > 0:
                shares = counts / counts.sum()
                for name, share in zip(self.tasks.names, shares, strict=True):
                    metrics[f"task/{name}/{key}"] = float(share)
            counts[:] = 0
        for name, steps in zip(self.tasks.names, self.state.task_env_steps, strict=True):
            metrics[f"task/{name}/env_steps"] = float(steps)
        return metrics

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, episodes: int, epsilon: float) -> dict[str, dict[str, Any]]:
        """Task name -> {return_mean, return_std, episodes} of the current policy."""
        seed = self.cfg.seed + EVAL_SEED_OFFSET + self.state.env_steps
        return evaluate_summary(self.agent, self.tasks, episodes, epsilon, seed)

    def _evaluate(self, tracker: Tracker) -> None:
        results = self.evaluate(self.cfg.eval_episodes, self.cfg.eval_epsilon)
        self.state.last_eval, self.state.last_eval_step = results, self.state.env_steps
        metrics = {}
        for name, r in results.items():
            metrics[f"task/{name}/return"] = r["return_mean"]
            metrics[f"task/{name}/return_std"] = r["return_std"]
        tracker.log(self.state.env_steps, metrics)
        self.callback.on_evaluation(self, results)

    def _measure_random(self, tracker: Tracker) -> None:
        """Return of the uniformly random policy per task, measured once per run."""
        self.state.random_returns = self.evaluate(self.cfg.eval_episodes, epsilon=1.0)
        tracker.log(
            self.state.env_steps,
            {
                f"task/{n}/random_return": r["return_mean"]
                for n, r in self.state.random_returns.items()
            },
        )

    # --- end of training --------------------------------------------------------------------

    def _finish(self, tracker: Tracker, evaluate: bool) -> dict[str, Any]:
        if evaluate and self.state.last_eval_step != self.state.env_steps:
            self._evaluate(tracker)
        self.callback.on_training_end(self)
        self.save_checkpoint()
        if not evaluate:
            return {}
        summary = self.summary()
        ckpt.atomic_write(
            self.run_dir / SUMMARY_FILE, lambda f: f.write(json.dumps(summary, indent=2).encode())
        )
        return summary

    def summary(self) -> dict[str, Any]:
        """Per task final return and random return, plus totals (the summary.json schema)."""
        state = self.state
        tasks = {}
        for name in self.tasks.names:
            final, random = state.last_eval[name], state.random_returns[name]
            tasks[name] = {
                **final,
                "random_return_mean": random["return_mean"],
                "random_return_std": random["return_std"],
            }
        steps_per_s = sum(state.task_env_steps) / max(state.wall_time_s, 1e-9)
        return {
            "tasks": tasks,
            "env_steps_per_task": state.env_steps,
            "task_env_steps": dict(zip(self.tasks.names, state.task_env_steps, strict=True)),
            "task_schedule": self.cfg.task_schedule,
            "wall_time_s": state.wall_time_s,
            "env_steps_per_s": steps_per_s,
        }

    # --- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Weights, optimiser, counters and RNG states (and the replay if `save_replay`)."""
        meta = {
            "state": self.state.to_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "config": self.cfg.to_dict(),
            "replay_saved_at": self.state.env_steps if self.cfg.save_replay else None,
        }
        if self.cfg.save_replay:
            arrays = {**self.replay.state(), REPLAY_STEP_KEY: np.array(self.state.env_steps)}
            ckpt.save_arrays(self.run_dir / ckpt.REPLAY_FILE, arrays)
        tensors = {"agent": self.agent.state_dict(), "torch_rng": torch.get_rng_state()}
        ckpt.save_tensors(self.run_dir / ckpt.CHECKPOINT_FILE, "checkpoint", meta, tensors)
