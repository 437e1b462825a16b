"""Evaluation on separate envs: N episodes per task, all tasks acting in one batched forward."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multiq.agents.policy import Policy
from multiq.envs.backends import EnvSettings
from multiq.envs.multi import MultiTaskEnvs
from multiq.tasks.spec import TaskSpec

# An episode still running after this many steps is cut there (27k agent steps = 108k Atari
# frames, the usual evaluation cap), so a policy that never ends an episode cannot hang a run.
EVAL_MAX_STEPS = 27_000


def evaluate_policy(
    policy: Policy,
    tasks: Sequence[TaskSpec],
    episodes: int,
    epsilon: float,
    seed: int,
    max_steps: int = EVAL_MAX_STEPS,
    settings: EnvSettings | None = None,
) -> dict[str, np.ndarray]:
    """Returns of `episodes` episodes per task, played with an epsilon-greedy policy.

    Each of the `episodes` envs of a task plays exactly one episode, so short episodes are not
    over-represented. `epsilon=1` measures the uniformly random policy. `settings`: how the
    envs run (default in this process).

    Returns:
        task name -> [episodes] float array of undiscounted returns.
    """
    envs = MultiTaskEnvs(tasks, episodes, seed, evaluation=True, settings=settings)
    rng = np.random.default_rng(seed)
    totals = {t.name: np.zeros(episodes) for t in tasks}
    ended = {t.name: np.zeros(episodes, dtype=bool) for t in tasks}
    obs = envs.reset()
    try:
        for _ in range(max_steps):
            running = [n for n in envs.names if not ended[n].all()]
            if not running:
                break
            result = envs.step(policy.act({n: obs[n] for n in running}, epsilon, rng), running)
            for name in running:
                obs[name] = result.obs[name]
                # Only each env's first episode counts: rewards after its end are ignored.
                totals[name] += result.rewards[name] * ~ended[name]
                ended[name] |= result.terminated[name] | result.truncated[name]
    finally:
        envs.close()
    return totals


def evaluate_summary(
    policy: Policy,
    tasks: Sequence[TaskSpec],
    episodes: int,
    epsilon: float,
    seed: int,
    settings: EnvSettings | None = None,
) -> dict[str, dict[str, float]]:
    """Task name -> {return_mean, return_std, episodes} of an epsilon-greedy policy."""
    returns = evaluate_policy(policy, tasks, episodes, epsilon, seed, settings=settings)
    return {name: summarise(r) for name, r in returns.items()}


def summarise(returns: np.ndarray) -> dict[str, float]:
    """Mean, std, smallest, largest and count of a returns array."""
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "return_min": float(np.min(returns)),
        "return_max": float(np.max(returns)),
        "episodes": int(len(returns)),
    }
