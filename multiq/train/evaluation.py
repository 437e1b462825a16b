"""Evaluation on separate envs: N episodes per task, all tasks acting in one batched forward."""

from __future__ import annotations

import numpy as np

from multiq.agents.dqn import DQNAgent
from multiq.envs import MultiTaskEnvs
from multiq.tasks.spec import TaskSet

# An episode still running after this many steps is cut there (27k agent steps = 108k Atari
# frames, the usual evaluation cap), so a policy that never ends an episode cannot hang a run.
EVAL_MAX_STEPS = 27_000


def evaluate_policy(
    agent: DQNAgent,
    tasks: TaskSet,
    episodes: int,
    epsilon: float,
    seed: int,
    max_steps: int = EVAL_MAX_STEPS,
) -> dict[str, np.ndarray]:
    """Returns of `episodes` episodes per task, played with an epsilon-greedy policy.

    Each of the `episodes` envs of a task plays exactly one episode, so short episodes are not
    over-represented. `epsilon=1` measures the uniformly random policy.

    Returns:
        task name -> [episodes] float array of undiscounted returns.
    """
    envs = MultiTaskEnvs(tasks, episodes, seed, evaluation=True)
    rng = np.random.default_rng(seed)
    totals = [np.zeros(episodes) for _ in tasks]
    ended = [np.zeros(episodes, dtype=bool) for _ in tasks]
    obs = envs.reset()
    for _ in range(max_steps):
        result = envs.step(agent.act(obs, epsilon, rng))
        obs = result.obs
        for t in range(len(tasks)):
            # Only each env's first episode counts: rewards after its end are ignored.
            totals[t] += result.rewards[t] * ~ended[t]
            ended[t] |= result.terminated[t] | result.truncated[t]
        if all(e.all() for e in ended):
            break
    envs.close()
    return {task.name: total for task, total in zip(tasks, totals, strict=True)}


def evaluate_summary(
    agent: DQNAgent, tasks: TaskSet, episodes: int, epsilon: float, seed: int
) -> dict[str, dict[str, float]]:
    """Task name -> {return_mean, return_std, episodes} of an epsilon-greedy policy."""
    returns = evaluate_policy(agent, tasks, episodes, epsilon, seed)
    return {name: summarise(r) for name, r in returns.items()}


def summarise(returns: np.ndarray) -> dict[str, float]:
    """Mean, std and count of a returns array."""
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "episodes": int(len(returns)),
    }
