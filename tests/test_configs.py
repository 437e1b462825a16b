"""Every config shipped in configs/ loads and builds its tasks (sweep files plan their trials)."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiq.config import Config
from multiq.scale.sweep import plan_trials, read_sweep
from multiq.tasks import make_taskset

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_each_config_loads_and_its_tasks_build(path):
    if path.name.startswith("sweep-"):
        assert plan_trials(read_sweep(path), path.parent)
        return
    config = Config.from_yaml(path)
    assert len(make_taskset(config.tasks)) >= 1


def test_the_minatar_paper_config_has_the_papers_env_settings():
    config = Config.from_yaml(CONFIGS[0].parent / "minatar-paper.yaml")
    tasks = make_taskset(config.tasks)
    games = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]
    assert [t.name for t in tasks] == games
    assert all(t.num_actions == 6 for t in tasks)
    assert all(t.source["kwargs"]["sticky_action_prob"] == 0.1 for t in tasks)
    assert (config.train_freq, config.batch_size, config.learning_starts) == (1, 32, 5000)
    assert (config.exploration_final_eps, config.total_steps_per_task) == (0.1, 1_000_000)
