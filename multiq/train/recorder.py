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
from multiq.mtl.interference import task_pairs
from multiq.phases.state import TrainState
from multiq.runio.layout import random_return_key, return_key, training_return_key
from multiq.runio.tracking import Tracker
from multiq.tasks.spec import TaskSpec
from multiq.train.evaluation import evaluate_summary

TASK_METRIC_NAMES = {"task_losses": "loss"}  # update() key -> logged name under task/<name>/
# update() keys of the gradient-conflict map, only in the updates that measured it
COS_KEY, SHARE_KEY = "grad_cos", "grad_share"


class _Sums:
    """Running sums of update metrics (tensors) and how many updates they hold."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: Mapping[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0) + value
        self.count += 1

    def take_means(self) -> dict[str, Any]:
        """Key -> mean as a numpy array (empty when nothing was added); starts afresh."""
        means = {k: (v / self.count).cpu().numpy() for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


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
        self._updates, self._conflicts = _Sums(), _Sums()
        self._names: list[str] = []
        self._samples: dict[str, int] = {}
        self._env_steps_at_last_row = dict(state.task_env_steps)

    # --- training metrics ----------------------------------------------------------------------

    def add_update(self, metrics: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> None:
        """Accumulates one update's metrics ([T_b] per-task tensors in `counts` order; the
        conflict map's [T_b, T_b] cosines and [T_b] shares where the update measured them)."""
        names = list(counts)
        if names != self._names:
            self._updates, self._conflicts, self._names = _Sums(), _Sums(), names
        conflict_keys = (COS_KEY, SHARE_KEY)
        self._updates.add({k: v for k, v in metrics.items() if k not in conflict_keys})
        if COS_KEY in metrics:
            self._conflicts.add({k: metrics[k] for k in conflict_keys})
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
        metrics.update(self._conflict_means())
        for key, per_task in diagnostics.items():  # diagnostic -> task -> [K]
            for name, row in per_task.items():
                for k, value in enumerate(row.cpu().tolist()):
                    metrics[f"task/{name}/{key}_{k}"] = value
        metrics.update(self._share_metrics())
        self.tracker.log(state.env_steps, metrics)

    def _update_means(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for key, value in self._updates.take_means().items():
            if value.ndim == 0:
                metrics[f"train/{key}"] = float(value)
                continue
            label = TASK_METRIC_NAMES.get(key, key)
            for name, row in zip(self._names, value, strict=True):
                metrics[f"task/{name}/{label}"] = float(row)
        return metrics

    def _conflict_means(self) -> dict[str, float]:
        """`mtl/grad_cos/<a>/<b>` per task pair and `task/<name>/grad_share`, each the mean of
        the measurements since the last row (none: no keys)."""
        means, names = self._conflicts.take_means(), self._names
        if not means:
            return {}
        cosines = means[COS_KEY]
        metrics = {f"mtl/grad_cos/{names[i]}/{names[j]}": float(cosines[i, j])
                   for i, j in task_pairs(len(names))}  # fmt: skip
        for name, share in zip(names, means[SHARE_KEY], strict=True):
            metrics[f"task/{name}/grad_share"] = float(share)
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
