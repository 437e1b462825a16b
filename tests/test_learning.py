"""Does the agent learn? Classic control at the vector defaults (default run), MinAtar smoke,
and per observation family at its defaults (`multiq.config.FAMILY_DEFAULTS`; slow: MinAtar,
MiniGrid, Atari).

The classic-control settings, now the vector family's defaults, were calibrated on seeds 0-4
(one CPU thread, ~30 s a run): final returns CartPole 303-433 (random 16-21), Acrobot -252 to -77
(random -500). 15k steps per task or hidden_size 64 were not reliable (some seeds stayed near
random on one task).
"""

from __future__ import annotations

import math

import pytest

from multiq.api import MultiTaskDQN
from multiq.config import FAMILY_DEFAULTS, Config

QUIET = dict(tensorboard=False, progress_bar=False, device="cpu")

# Two classic tasks, one shared network, ~30 s on one free CPU thread; a fifth of the vector
# family's default budget, its other defaults as they are.
CLASSIC = dict(
    scheme="shared",
    total_steps_per_task=20_000,
    eval_episodes=10,
    eval_freq=0,
    checkpoint_freq=0,
    log_interval=1_000,
    seed=0,
    **QUIET,
)
# The settings the margins below were calibrated with: changing the vector defaults needs a new
# calibration.
CALIBRATED = dict(
    learning_starts=1_000,
    train_freq=4,
    target_update_interval=500,
    learning_rate=1e-3,
    exploration_fraction=0.2,
    n_step=3,
    hidden_size=128,
    batch_size=64,
    buffer_size=50_000,
)


def check_summary(summary: dict, tasks: list[str]) -> None:
    assert list(summary["tasks"]) == tasks
    for name, result in summary["tasks"].items():
        for key in ("return_mean", "return_std", "random_return_mean", "random_return_std"):
            assert math.isfinite(result[key]), (name, key, result)


def test_shared_agent_learns_cartpole_and_acrobot(tmp_path):
    model = MultiTaskDQN("classic:CartPole,classic:Acrobot", run_dir=tmp_path / "run", **CLASSIC)
    assert model.task_defaults.family == "vector"
    assert {key: getattr(model.config, key) for key in CALIBRATED} == CALIBRATED
    summary = model.learn().summary

    check_summary(summary, ["CartPole", "Acrobot"])
    cartpole, acrobot = summary["tasks"]["CartPole"], summary["tasks"]["Acrobot"]
    assert cartpole["random_return_mean"] < 40
    assert acrobot["random_return_mean"] < -400
    # observed margins over random on seeds 0-4: CartPole >= +283, Acrobot >= +248
    assert cartpole["return_mean"] >= cartpole["random_return_mean"] + 100, summary
    assert acrobot["return_mean"] >= acrobot["random_return_mean"] + 150, summary
    assert summary["env_steps_per_task"] == 20_000


def test_minatar_smoke(tmp_path):
    model = MultiTaskDQN(
        "minatar",
        run_dir=tmp_path / "run",
        total_steps_per_task=300,
        learning_starts=100,
        batch_size=16,
        buffer_size=5_000,
        eval_episodes=1,
        eval_freq=0,
        log_interval=100,
        **QUIET,
    )
    summary = model.learn().summary

    games = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]
    check_summary(summary, games)
    assert summary["env_steps_per_task"] == 300
    assert model.state.updates == (300 - 100) // 4
    assert (tmp_path / "run" / "curves.png").is_file()


@pytest.mark.slow
def test_default_config_learns_minatar(tmp_path):
    """The built-in defaults (five MinAtar games, 200k steps each): ~10 minutes."""
    config = Config()
    assert config.tasks == "minatar"
    model = MultiTaskDQN(config=config, run_dir=tmp_path / "run", progress_bar=False)
    summary = model.learn().summary

    check_summary(summary, ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"])
    assert summary["env_steps_per_task"] == config.total_steps_per_task
    # "clearly above random": at least double the random return and one point more
    above = {
        name: r["return_mean"] >= r["random_return_mean"] + max(1.0, abs(r["random_return_mean"]))
        for name, r in summary["tasks"].items()
    }
    assert sum(above.values()) >= 3, summary


def family_values(model: MultiTaskDQN, family: str, set_here: set[str]) -> None:
    """`model` took every key of `family`'s row that the test did not set."""
    assert model.task_defaults.family == family
    row = {k: v for k, v in FAMILY_DEFAULTS[family].items() if k not in set_here}
    assert {key: getattr(model.config, key) for key in row} == row


@pytest.mark.slow
def test_minatar_breakout_learns_at_the_minatar_defaults(tmp_path):
    """Breakout alone, 30k steps (3/8 of the default budget): ~80 s. Observed on seeds 0 and 1:
    2.6 and 3.4 (random 0.6 and 0.2)."""
    changes = dict(total_steps_per_task=30_000, eval_freq=0, checkpoint_freq=0, seed=0)
    model = MultiTaskDQN("minatar:Breakout", run_dir=tmp_path / "run", **changes, **QUIET)
    family_values(model, "minatar", set(changes))
    breakout = model.learn().summary["tasks"]["Breakout"]
    assert breakout["return_mean"] >= breakout["random_return_mean"] + 1.0, breakout


@pytest.mark.slow
def test_minigrid_doorkey_learns_at_the_minigrid_defaults(tmp_path):
    """DoorKey-5x5 alone, 40k steps (2/5 of the default budget): ~70 s on a free core. At the
    base (MinAtar) values it stays near 0 for 100k steps; at the minigrid row every seed of
    benchmarks/minigrid_defaults.py solved it (0.96) by 20k steps."""
    pytest.importorskip("minigrid")
    changes = dict(total_steps_per_task=40_000, eval_freq=0, checkpoint_freq=0, seed=0)
    model = MultiTaskDQN("MiniGrid-DoorKey-5x5-v0", run_dir=tmp_path / "run", **changes, **QUIET)
    family_values(model, "minigrid", set(changes))
    (result,) = model.learn().summary["tasks"].values()
    assert result["return_mean"] >= result["random_return_mean"] + 0.5, result


@pytest.mark.slow
def test_atari_smoke_run_at_the_atari_defaults(tmp_path):
    """Tetris for 600 steps, updates from step 300 (the atari row's 100k learning starts and
    10M steps are hours): ~10 s. Real Atari learning is far beyond a test's budget."""
    pytest.importorskip("ale_py")
    changes = dict(total_steps_per_task=600, learning_starts=300, checkpoint_freq=0)
    model = MultiTaskDQN(
        "atari:Tetris", run_dir=tmp_path / "run", eval_episodes=1, **changes, **QUIET
    )
    family_values(model, "atari", set(changes))
    summary = model.learn().summary

    check_summary(summary, ["Tetris"])
    assert model.state.updates == (600 - 300) // 4
    saved = Config.from_yaml(tmp_path / "run" / "config.yaml")
    assert (saved.learning_rate, saved.buffer_size, saved.target_update_interval) == (
        1e-4,
        100_000,
        1_000,
    )
