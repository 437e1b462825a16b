"""What the jumpstart tests of transfer modes share (tests/test_transfer.py and
tests/test_progressive_transfer.py): the settings CartPole learns with, and greedy episodes."""

from __future__ import annotations

from typing import Any

LEARN: dict[str, Any] = dict(  # the settings tests/test_learning.py uses, for one task
    scheme="shared",
    learning_starts=1_000,
    train_freq=4,
    target_update_interval=500,
    learning_rate=1e-3,
    exploration_fraction=0.2,
    n_step=3,
    hidden_size=128,
    batch_size=64,
    buffer_size=50_000,
    eval_episodes=5,
    eval_freq=0,
    checkpoint_freq=0,
    log_interval=1_000,
    tensorboard=False,
    progress_bar=False,
    device="cpu",
)


def greedy_episode_lengths(model: Any, task: str, episodes: int = 5) -> list[int]:
    """Lengths of `episodes` greedy episodes of `model` on its task `task` (fixed seeds)."""
    spec = next(spec for spec in model.task_specs if spec.name == task)
    env = spec.make_env(evaluation=True)
    lengths = []
    for i in range(episodes):
        obs, _ = env.reset(seed=50_000 + i)
        steps, done = 0, False
        while not done:
            obs, _, terminated, truncated, _ = env.step(model.predict(obs, task))
            steps, done = steps + 1, terminated or truncated
        lengths.append(steps)
    env.close()
    return lengths
