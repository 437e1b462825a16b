"""`multiq.tasks.defaults`: a run takes its tasks' observation-family defaults for the keys it
does not set; keys set explicitly (keyword, Config, YAML, ``--set``) win; a resumed run keeps
its own."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from multiq.api import MultiTaskDQN
from multiq.config import FAMILY_DEFAULTS, Config
from multiq.errors import ConfigError
from multiq.recipes.meta import prepare_meta
from multiq.tasks.defaults import TaskDefaults, apply_task_defaults
from multiq.tasks.spec import TaskSpec

VECTOR, BASE = FAMILY_DEFAULTS["vector"], FAMILY_DEFAULTS["minatar"]
QUIET = dict(eval_freq=0, eval_episodes=2, tensorboard=False, progress_bar=False, device="cpu")
SHORT = dict(learning_starts=100, log_interval=100, **QUIET)  # with learn(300): a second or two


def spec_of(shape: tuple[int, ...], dtype=np.float32, name: str = "t") -> TaskSpec:
    """A spec with an observation Box of `shape` and `dtype` (no env behind it)."""
    space = gym.spaces.Box(0, 1, shape=shape, dtype=dtype)
    return TaskSpec(name, "none", lambda evaluation=False: None, space, gym.spaces.Discrete(2))


def resolved(cfg: Config, *shapes_and_dtypes) -> tuple[Config, TaskDefaults]:
    specs = [spec_of(s, d, f"t{i}") for i, (s, d) in enumerate(shapes_and_dtypes)]
    return apply_task_defaults(cfg, specs)


CARTPOLE = ((4,), np.float32)
BREAKOUT = ((4, 10, 10), np.bool_)
MINIGRID = ((3, 7, 7), np.uint8)


# --- the rule -----------------------------------------------------------------------------------


def test_vector_tasks_take_the_vector_row_for_keys_not_set():
    cfg, chosen = resolved(Config(), CARTPOLE, ((6,), np.float32))
    assert chosen.family == "vector"
    assert dict(chosen.applied) == VECTOR
    assert {key: getattr(cfg, key) for key in VECTOR} == VECTOR
    assert cfg.hidden_size == Config().hidden_size  # keys outside the table stay as they were


def test_keys_set_explicitly_keep_their_values():
    cfg, chosen = resolved(Config(learning_rate=2.5e-4, n_step=1), CARTPOLE)
    assert (cfg.learning_rate, cfg.n_step) == (2.5e-4, 1)  # equal to the base, and still kept
    assert chosen.kept == ("learning_rate", "n_step")
    assert "learning_rate" not in chosen.applied
    assert cfg.buffer_size == VECTOR["buffer_size"]


def test_keys_of_a_yaml_file_and_of_overrides_keep_their_values(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("tasks: classic\nbatch_size: 32\n")
    base = Config.from_yaml(path).with_overrides(["n_step=1"], learning_starts=500)
    cfg, chosen = resolved(base, CARTPOLE)
    assert (cfg.batch_size, cfg.n_step, cfg.learning_starts) == (32, 1, 500)
    assert set(chosen.kept) == {"batch_size", "n_step", "learning_starts"}
    assert cfg.learning_rate == VECTOR["learning_rate"]


def test_the_run_config_gives_every_key():
    cfg, _ = resolved(Config(seed=1), CARTPOLE)
    assert cfg.given_keys == set(Config.keys())
    assert cfg.to_dict() == Config(seed=1, **VECTOR).to_dict()


def test_applying_twice_changes_nothing_more():
    cfg, _ = resolved(Config(), CARTPOLE)
    again, chosen = resolved(cfg, BREAKOUT)  # the filled keys now count as set
    assert again is cfg
    assert not chosen.applied


def test_tasks_of_several_families_keep_the_base_defaults():
    cfg, chosen = resolved(Config(), CARTPOLE, BREAKOUT)
    assert cfg == Config().settled()
    assert chosen.family is None and not chosen.applied
    assert dict(chosen.families) == {"vector": ("t0",), "minatar": ("t1",)}
    assert "several observation families (vector: t0; minatar: t1)" in chosen.describe()


def test_minigrid_tasks_take_the_minigrid_row():
    cfg, chosen = resolved(Config(), MINIGRID)
    row = FAMILY_DEFAULTS["minigrid"]
    assert chosen.family == "minigrid" and dict(chosen.applied) == row
    assert {key: getattr(cfg, key) for key in row} == row
    # measured by benchmarks/minigrid_defaults.py: the vector row's values
    assert row == FAMILY_DEFAULTS["vector"]


def test_a_family_without_a_row_keeps_the_base_defaults():
    cfg, chosen = resolved(Config(), ((3, 7, 7), np.float32))  # small float images: `other`
    assert cfg == Config().settled() and chosen.family == "other" and not chosen.applied
    assert chosen.describe() == (
        "defaults for other tasks: the base ones (as for minatar; no row of their own)"
    )


def test_minatar_tasks_take_the_base_values():
    cfg, chosen = resolved(Config(), BREAKOUT)
    assert cfg == Config().settled() and dict(chosen.applied) == BASE


def test_a_settled_config_is_left_alone():
    settled = Config(tasks="classic").settled()
    cfg, chosen = resolved(settled, CARTPOLE)
    assert cfg is settled
    assert chosen.describe() == "defaults for vector tasks: none taken, the config sets every one"


def test_family_values_that_break_a_rule_say_where_they_came_from():
    with pytest.raises(ConfigError, match=r"learning_starts \(100000\).*the atari defaults set"):
        resolved(Config(total_steps_per_task=50_000), ((4, 84, 84), np.uint8))


def test_the_line_names_the_family_the_values_and_how_to_override():
    _, chosen = resolved(Config(n_step=1), CARTPOLE)
    line = chosen.describe()
    assert line.startswith("defaults for vector tasks: total_steps_per_task=100000, ")
    assert "learning_rate=0.001, batch_size=64" in line
    assert "n_step=" not in line
    assert line.endswith("(set any of them to override; kept as set: n_step)")


# --- where runs start ---------------------------------------------------------------------------


def test_the_api_fills_family_defaults_and_keywords_win():
    model = MultiTaskDQN("gym:CartPole-v1", learning_rate=5e-4, **QUIET)
    assert model.config.learning_rate == 5e-4
    assert model.config.n_step == VECTOR["n_step"]
    assert model.config.target_update_interval == VECTOR["target_update_interval"]
    assert model.task_defaults.family == "vector"


def test_a_config_object_given_to_the_api_wins_too():
    config = Config(tasks="classic:CartPole", train_freq=1, **QUIET)
    model = MultiTaskDQN(config=config, batch_size=16)
    assert (model.config.train_freq, model.config.batch_size) == (1, 16)
    assert model.config.buffer_size == VECTOR["buffer_size"]


def test_the_run_folders_config_holds_the_family_values(tmp_path):
    run_dir = tmp_path / "run"
    MultiTaskDQN("classic:CartPole", run_dir=run_dir, **SHORT).learn(300)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert {key: saved[key] for key in VECTOR if key != "total_steps_per_task"} == {
        **{key: value for key, value in VECTOR.items() if key != "total_steps_per_task"},
        "learning_starts": 100,
        "eval_freq": 0,
    }
    assert saved["total_steps_per_task"] == 300  # learn's budget


def test_a_resumed_run_keeps_its_saved_values_when_the_table_changes(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    first = MultiTaskDQN("classic:CartPole", run_dir=run_dir, checkpoint_freq=200, **SHORT)
    first.learn(300)
    monkeypatch.setitem(FAMILY_DEFAULTS, "vector", {**VECTOR, "learning_rate": 0.5, "n_step": 5})

    resumed = MultiTaskDQN.resume(run_dir)

    assert resumed.config == first.config
    assert (resumed.config.learning_rate, resumed.config.n_step) == (1e-3, 3)
    assert not resumed.task_defaults.applied
    assert MultiTaskDQN.load(run_dir).config == first.config


def test_a_continual_sequence_follows_its_tasks(tmp_path):
    model = MultiTaskDQN.continual(
        "classic:CartPole,classic:Acrobot", "finetune", run_dir=tmp_path, batch_size=16, **QUIET
    )
    assert model.config.learning_rate == VECTOR["learning_rate"]
    assert model.config.batch_size == 16


def test_meta_runs_keep_the_base_defaults(tmp_path):
    config = Config(meta_tasks="family:cartpole-physics:train:2", meta_iterations=1, **QUIET)
    run = prepare_meta(MultiTaskDQN, tmp_path / "meta", config)
    unset = [key for key in BASE if key not in config.given_keys]
    assert {key: getattr(run.model.config, key) for key in unset} == {k: BASE[k] for k in unset}
    assert run.model.config.learning_rate == BASE["learning_rate"] != VECTOR["learning_rate"]


# --- the docs' account (the config reference page) ----------------------------------------------

README = Path(__file__).resolve().parents[1] / "docs" / "reference" / "config.md"


def test_the_readme_table_and_line_are_the_tables():
    text = README.read_text()
    section = text[text.index("### Defaults that follow the tasks") :]
    header = next(line for line in section.splitlines() if line.startswith("| key |"))
    families = re.findall(r"`(\w+)`", header)
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in VECTOR:
            rows[cells[0]] = [yaml.safe_load(c) for c in cells[1:]]
    assert set(families) == set(FAMILY_DEFAULTS)
    assert rows == {key: [FAMILY_DEFAULTS[f][key] for f in families] for key in VECTOR}
    _, chosen = resolved(Config(), CARTPOLE)
    assert f"```text\n{chosen.describe()}\n```" in section
