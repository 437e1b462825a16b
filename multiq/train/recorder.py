"""The recorder: a run's logs, evaluations and summary.

It averages the learner's update metrics between log rows, writes metrics.csv / TensorBoard
rows and the progress bar (through `Tracker`), evaluates every task the agent holds, and builds
summary.json (schema: `multiq.runio.layout`). It never steps a training env or updates a network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from multiq.agents.policy import Policy
from multiq.envs.backends import EnvSettings
from multiq.phases.state import TrainState
from multiq.runio.layout import random_return_key, return_key, training_return_key
from multiq.runio.tracking import Tracker
from multiq.tasks.spec import TaskSpec
from multiq.train.evaluation import evaluate_summary

TASK_METRIC_NAMES = {"task_losses": "loss"}  # update() key -> logged name under task/<name>/


class Recorder:
    """Logs and evaluations of one run.

    Args:
        tracker: where rows go.
        state: the run's counters (evaluations are kept there).
        eval_seed: base seed of evaluation envs (the step is added, so evaluations differ).
        env_settings: how the evaluation envs run (default in this process).
    """

    def __init__(
        self,
        tracker: Tracker,
        state: TrainState,
        eval_seed: int,
        env_settings: EnvSettings | None = None,
    ):
        self.tracker, self.state, self.eval_seed = tracker, state, eval_seed
        self.env_settings = env_settings
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._names: list[str] = []
        self._samples: dict[str, int] = {}
        self._env_steps_at_last_row = dict(state.task_env_steps)

    # --- training metrics ----------------------------------------------------------------------

    def add_update(self, metrics: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> None:
        """Accumulates one update's metrics ([T_b] per-task tensors in `counts` order)."""
        names = list(counts)
        if names != self._names:
            self._sums, self._count, self._names = {}, 0, names
        for key, value in metrics.items():
            self._sums[key] = self._sums.get(key, 0) + value
        self._count += 1
        for name, n in counts.items():
            self._samples[name] = self._samples.get(name, 0) + n

    def log_training(
        self, epsilon: float, sps: float, recent: Mapping[str, float], diagnostics: Mapping
    ) -> None:
        """Writes one row of training metrics and starts a new averaging interval."""
        state = self.state
        metrics = {"rollout/epsilon": epsilon, "time/sps": sps, "train/updates": state.updates}
        metrics.update({training_return_key(name): value for name, value in recent.items()})
        metrics.update(self._update_means())
        for key, per_task in diagnostics.items():  # diagnostic -> task -> [K]
            for name, row in per_task.items():
                for k, value in enumerate(row.cpu().tolist()):
                    metrics[f"task/{name}/{key}_{k}"] = value
        metrics.update(self._share_metrics())
        self.tracker.log(state.env_steps, metrics)

    def _update_means(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if not self._count:
            return metrics
        for key, total in self._sums.items():
            value = (total / self._count).cpu().numpy()
            if value.ndim == 0:
                metrics[f"train/{key}"] = float(value)
                continue
            label = TASK_METRIC_NAMES.get(key, key)
            for name, row in zip(self._names, value, strict=True):
                metrics[f"task/{name}/{label}"] = float(row)
        self._sums, self._count = {}, 0
        return metrics

    def _share_metrics(self) -> dict[str, float]:
        """Per task: its share of the replay samples and env steps since the last log row."""
        steps_now, before = self.state.task_env_steps, self._env_steps_at_last_row
        env_steps = {n: s - before.get(n, 0) for n, s in steps_now.items() if s > before.get(n, 0)}
        self._env_steps_at_last_row = dict(steps_now)
        metrics = {}
        for key, counts in (("sample_share", self._samples), ("env_step_share", env_steps)):
            total = sum(counts.values())
            if total > 0:
                metrics.update({f"task/{n}/{key}": c / total for n, c in counts.items()})
        self._samples = {}
        for name, steps in steps_now.items():
            metrics[f"task/{name}/env_steps"] = float(steps)
        return metrics

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(
        self, policy: Policy, tasks: Sequence[TaskSpec], episodes: int, epsilon: float
    ) -> dict[str, dict[str, Any]]:
        """Task name -> {return_mean, return_std, episodes} of the policy on `tasks`."""
        seed = self.eval_seed + self.state.env_steps
        return evaluate_summary(policy, tasks, episodes, epsilon, seed, self.env_settings)

    def record_evaluation(
        self, policy: Policy, tasks: Sequence[TaskSpec], episodes: int, epsilon: float
    ) -> dict[str, dict[str, Any]]:
        """Evaluates, keeps the results in the state and logs `task/<name>/return` and its
        `_std`, `_min` and `_max` over the episodes."""
        results = self.evaluate(policy, tasks, episodes, epsilon)
        self.state.last_eval.update(results)
        self.state.last_eval_step = self.state.env_steps
        metrics = {}
        for name, r in results.items():
            metrics[return_key(name)] = r["return_mean"]
            for stat in ("std", "min", "max"):
                metrics[f"task/{name}/return_{stat}"] = r[f"return_{stat}"]
        self.tracker.log(self.state.env_steps, metrics)
        return results

    def measure_random(self, policy: Policy, tasks: Sequence[TaskSpec], episodes: int) -> None:
        """The uniformly random policy's return on each task that has none yet."""
        missing = [t for t in tasks if t.name not in self.state.random_returns]
        if not missing:
            return
        results = self.evaluate(policy, missing, episodes, epsilon=1.0)
        self.state.random_returns.update(results)
        self.tracker.log(
            self.state.env_steps,
            {random_return_key(n): r["return_mean"] for n, r in results.items()},
        )

    # --- summary -------------------------------------------------------------------------------

    def summary(self, task_schedule: str, phases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The summary.json content (schema: `multiq.runio.layout`)."""
        state = self.state
        tasks = {}
        for name, final in state.last_eval.items():
            random = state.random_returns.get(name, {})
            tasks[name] = {
                **final,
                "random_return_mean": random.get("return_mean", float("nan")),
                "random_return_std": random.get("return_std", float("nan")),
            }
        total_steps = sum(state.task_env_steps.values())
        return {
            "tasks": tasks,
            "env_steps_per_task": state.env_steps,
            "task_env_steps": dict(state.task_env_steps),
            "task_schedule": task_schedule,
            "wall_time_s": state.wall_time_s,
            "env_steps_per_s": total_steps / max(state.wall_time_s, 1e-9),
            "phases": list(phases),
        }
