"""The tiny configs the end-to-end tests train with: small nets and buffers, no extras, on CPU.

Test files import this module (tests/ is on pytest's `pythonpath`) and write their own
difference as `TINY | {...}`, so a setting every tiny run shares is changed in one place.
"""

from __future__ import annotations

TINY = {
    "learning_starts": 100,
    "batch_size": 16,
    "buffer_size": 5000,
    "eval_episodes": 2,
    "eval_freq": 0,
    "log_interval": 100,
    "tensorboard": False,
    "progress_bar": False,
    "device": "cpu",
}
"""Settings for a run of a few hundred steps: updates start early, nothing is evaluated or
logged on the side."""

TINY_RUN = TINY | {
    "hidden_size": 16,
    "buffer_size": 2_000,
    "train_freq": 4,
    "target_update_interval": 100,
    "total_steps_per_task": 300,
    "checkpoint_freq": 0,
    "seed": 0,
}
"""`TINY` with a 16-unit net, a seed and a budget of 300 steps per task: a complete small run."""

META_POOL = ["gym:CartPole-v1", {"id": "gym:CartPole-v1", "name": "c2"}, {"id": "gym:CartPole-v1",
             "name": "c3"}]  # fmt: skip
TINY_META = {
    "meta_tasks": META_POOL, "meta_iterations": 2, "meta_batch_size": 2, "inner_steps": 120,
    "inner_learning_starts": 40, "inner_buffer_size": 500, "inner_target_update": 50,
    "meta_query_steps": 32, "meta_eval_freq": 1, "batch_size": 16, "hidden_size": 16,
    "eval_episodes": 2, "device": "cpu", "tensorboard": False, "progress_bar": False,
}  # fmt: skip
"""A meta run of two iterations of two 120-step inner loops on three CartPole tasks."""
