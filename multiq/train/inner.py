"""A headless phase: K env steps of DQN on one task from given weights, nothing written.

Meta-learning's inner loop and adapt-k evaluation run it many times, so it skips what a run
needs and a short adaptation does not: no run folder, logs, checkpoints or task schedule.

Rules (the same for every caller):
- the online and the target network both start as the given weights; the target is copied from
  the online net every `inner_target_update` env steps;
- Adam's moments start at zero for each run (the meta-weights carry no optimiser state);
- the replay is the run's own (`inner_buffer_size` transitions), empty at the start;
- a run may first prefill its replay: `prefill_steps` env steps acted by the given weights at
  `exploration_final_eps`, counted in its steps (adapt-k's `transfer_prefill_steps`, as a
  transfer target's prefill);
- updates start after max(`inner_learning_starts`, prefill) env steps, one every `train_freq`
  vector steps of `batch_size` samples; after the prefill, epsilon decays linearly over the
  first `exploration_fraction` of the run's steps (counted from its start), from
  `exploration_initial_eps` to `exploration_final_eps`;
- evaluations at the requested step counts use `eval_episodes` fresh envs and `eval_epsilon`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from multiq.agents.learner import Learner, Training
from multiq.collect.args import CollectorArgs
from multiq.collect.sequential import Collector
from multiq.config import Config
from multiq.errors import ConfigError
from multiq.phases.state import TrainState
from multiq.replay.buffers import MultiTaskReplay
from multiq.tasks.spec import TaskSpec
from multiq.train.evaluation import evaluate_policy
from multiq.train.loop import EVAL_SEED_OFFSET, crossed, linear_epsilon

Weights = Mapping[str, torch.Tensor]


@dataclass
class InnerResult:
    """What one headless run did.

    Attributes:
        returns: the returns of the training episodes that ended.
        evaluations: env steps k -> mean evaluation return after k steps.
        env_steps: env steps taken.
        updates: gradient steps taken.
    """

    returns: list[float] = field(default_factory=list)
    evaluations: dict[int, float] = field(default_factory=dict)
    env_steps: int = 0
    updates: int = 0


def clone_weights(weights: Weights) -> dict[str, torch.Tensor]:
    """A detached copy of a state dict."""
    return {name: tensor.detach().clone() for name, tensor in weights.items()}


class InnerLoop:
    """Trains one task of `learner` headlessly; the weights it starts from are never modified.

    Args:
        learner: holds the task (its other tasks, if any, neither act nor learn).
        cfg: the training settings (see the module docstring).
        task: the name of the task that trains.
    """

    def __init__(self, learner: Learner, cfg: Config, task: str):
        if cfg.batch_size > cfg.inner_buffer_size:
            raise ConfigError(
                f"batch_size ({cfg.batch_size}) > inner_buffer_size ({cfg.inner_buffer_size}): "
                "an inner loop's batch would be larger than its replay; raise "
                "inner_buffer_size or lower batch_size"
            )
        self.learner, self.cfg, self.task = learner, cfg, task
        frozen = tuple(cfg.frozen_groups)
        learner.configure(Training(task_weights={task: 1.0}, frozen=frozen))

    def load(self, weights: Weights) -> None:
        """Online and target net <- `weights` (copied); Adam's moments cleared."""
        with torch.no_grad():
            self.learner.online.load_state_dict(weights)
            self.learner.target.load_state_dict(weights)
        self.learner.optimizer.state.clear()

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the online net's current weights."""
        return clone_weights(self.learner.online.state_dict())

    def _spec(self, spec: TaskSpec) -> None:
        self.learner.replace_task_env(spec)

    def train(
        self,
        spec: TaskSpec,
        steps: int,
        seed: int,
        eval_at: Sequence[int] = (),
        rng: np.random.Generator | None = None,
        prefill_steps: int = 0,
    ) -> InnerResult:
        """Runs `steps` env steps of DQN on `spec` (named as the trained task) from the loaded
        weights; evaluates after each step count in `eval_at` (0: before the first step).

        Args:
            prefill_steps: env steps (of `steps`) that first fill the replay at
                `exploration_final_eps`, without updates (see the module docstring).

        Returns:
            The episode returns, evaluations and counts.

        Raises:
            ConfigError: `prefill_steps` not in [0, steps): the run would not train.
        """
        if not 0 <= prefill_steps < max(steps, 1):
            raise ConfigError(
                f"a prefill of {prefill_steps} env steps leaves no training in a run of {steps}; "
                "lower transfer_prefill_steps below the run's steps (the largest k)"
            )
        cfg, learner, name = self.cfg, self.learner, self.task
        self._spec(spec)
        rng = rng if rng is not None else np.random.default_rng(seed)
        replay = MultiTaskReplay([spec], cfg.inner_buffer_size, cfg.n_envs, cfg.n_step, cfg.gamma)
        state = TrainState(phase_task_env_steps={name: 0})
        collector = Collector(CollectorArgs([spec], cfg.n_envs, seed, replay, learner.policy, rng))
        result = InnerResult()
        pending = sorted(set(eval_at))
        shares, every = np.ones(1), cfg.train_freq * cfg.n_envs
        try:
            while True:
                pending = self._evaluate_due(spec, state.env_steps, pending, seed, result)
                if state.env_steps >= steps:
                    break
                before = state.env_steps
                prefilling = before < prefill_steps
                epsilon = (
                    cfg.exploration_final_eps if prefilling else linear_epsilon(cfg, before, steps)
                )
                collector.step(epsilon, shares, state)
                done, taken = state.env_steps, state.env_steps - before
                starts_at = max(cfg.inner_learning_starts, prefill_steps)
                if done >= starts_at and crossed(done, taken, every):
                    learner.update(replay.sample({name: cfg.batch_size}, rng))
                    result.updates += 1
                if crossed(done, taken, cfg.inner_target_update):
                    learner.sync_target(1.0)
            result.returns = list(collector.envs.episodes[name].finished)
        finally:
            collector.close()
        result.env_steps = state.env_steps
        return result

    def _evaluate_due(
        self, spec: TaskSpec, step: int, pending: list[int], seed: int, result: InnerResult
    ) -> list[int]:
        """Evaluates once if a requested step count is reached; returns the ones still ahead."""
        due = [k for k in pending if k <= step]
        if due:
            returns = evaluate_policy(
                self.learner.policy, [spec], self.cfg.eval_episodes, self.cfg.eval_epsilon,
                seed + EVAL_SEED_OFFSET,
            )[self.task]  # fmt: skip
            for k in due:
                result.evaluations[k] = float(np.mean(returns))
        return [k for k in pending if k > step]

    def query_gradient(
        self, spec: TaskSpec, steps: int, seed: int, rng: np.random.Generator
    ) -> tuple[dict[str, torch.Tensor], int]:
        """First-order MAML's outer gradient: `steps` fresh env steps collected by the current
        weights (epsilon `exploration_final_eps`, no updates), then the gradient of the TD loss
        on one batch of as many samples as were collected (target net as it stands).

        Returns:
            (online parameter name -> gradient, env steps taken).
        """
        cfg, name = self.cfg, self.task
        self._spec(spec)
        replay = MultiTaskReplay([spec], max(steps, 2), cfg.n_envs, cfg.n_step, cfg.gamma)
        state = TrainState(phase_task_env_steps={name: 0})
        args = CollectorArgs([spec], cfg.n_envs, seed, replay, self.learner.policy, rng)
        collector = Collector(args)
        try:
            while state.env_steps < steps:
                collector.step(cfg.exploration_final_eps, np.ones(1), state)
        finally:
            collector.close()
        batch = replay.sample({name: len(replay.buffers[name])}, rng)
        return self.learner.gradient(batch), state.env_steps
