"""`multiq.config`: the table of defaults by observation family, and the keys a config was given
(`Config.given_keys`), which those defaults never change and which its equality sees."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from multiq.config import CONFIG_KEYS, FAMILY_DEFAULTS, Config
from multiq.runio.config_file import save_config

FAMILY_KEYS = tuple(FAMILY_DEFAULTS["minatar"])
CLASSIC_YAML = Path(__file__).resolve().parents[1] / "configs" / "classic.yaml"


@pytest.mark.parametrize("family", sorted(FAMILY_DEFAULTS))
def test_every_row_sets_the_same_real_keys_to_valid_values(family):
    row = FAMILY_DEFAULTS[family]
    assert tuple(row) == FAMILY_KEYS
    assert set(row) <= set(CONFIG_KEYS)
    config = Config(**row)  # validates the values together (cross-key rules included)
    assert {key: getattr(config, key) for key in row} == row


def test_the_minatar_row_is_the_config_defaults():
    defaults = Config()
    assert FAMILY_DEFAULTS["minatar"] == {key: getattr(defaults, key) for key in FAMILY_KEYS}


def test_the_vector_row_takes_classic_yaml_settings():
    classic = Config.from_yaml(CLASSIC_YAML)
    vector = FAMILY_DEFAULTS["vector"]
    same = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "n_step")
    assert {k: vector[k] for k in same} == {k: getattr(classic, k) for k in same}
    assert vector["target_update_interval"] == classic.target_update_interval
    assert vector["exploration_fraction"] == classic.exploration_fraction
    assert vector["train_freq"] == 4  # tests/test_learning.py's calibrated setting, not 1


def test_the_atari_row_is_rl_zoo_atari_dqn():
    atari = FAMILY_DEFAULTS["atari"]
    assert atari["buffer_size"] == atari["learning_starts"] == 100_000
    assert (atari["learning_rate"], atari["target_update_interval"]) == (1e-4, 1_000)
    assert (atari["train_freq"], atari["exploration_fraction"]) == (4, 0.1)
    assert Config().exploration_final_eps == 0.01  # rl-zoo's too, so not in the table


def test_a_config_knows_the_keys_it_was_given():
    assert Config().given_keys == frozenset()
    assert Config(learning_rate=1e-3, seed=1).given_keys == {"learning_rate", "seed"}
    assert Config("classic").given_keys == {"tasks"}  # positional: the first field
    assert Config.from_dict({"n_step": 3}).given_keys == {"n_step"}


def test_given_keys_are_part_of_equality_and_repr():
    # equal values, but only the first lets the tasks change the learning rate
    assert Config() != Config(learning_rate=2.5e-4)
    assert Config().to_dict() == Config(learning_rate=2.5e-4).to_dict()
    assert Config(learning_rate=2.5e-4) == Config.from_dict({"learning_rate": 2.5e-4})
    assert repr(Config()) == "Config()"
    assert repr(Config(seed=1, tasks="classic")) == "Config(tasks='classic', seed=1)"


def test_replace_and_overrides_add_the_keys_they_change():
    config = Config(seed=1)
    assert config.replace(n_step=3).given_keys == {"seed", "n_step"}
    overridden = config.with_overrides(["n_step=3", "task_weights.a=2"], device="cpu")
    assert overridden.given_keys == {"seed", "n_step", "task_weights", "device"}
    assert config.with_overrides([]).given_keys == {"seed"}


def test_a_yaml_file_gives_its_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("tasks: classic\nlearning_rate: 0.00025\n")
    config = Config.from_yaml(path)
    assert config.given_keys == {"tasks", "learning_rate"}
    assert config.given_values() == {"tasks": "classic", "learning_rate": 2.5e-4}


def test_a_config_written_and_read_back_sets_every_key(tmp_path):
    written = save_config(Config(seed=3), tmp_path / "config.yaml")
    read = Config.from_yaml(written)
    assert read.to_dict() == Config(seed=3).to_dict()
    assert read == Config(seed=3).settled() != Config(seed=3)
    assert read.given_keys == set(CONFIG_KEYS)


def test_settled_sets_every_key_and_stays_equal():
    config = Config(tasks="classic")
    settled = config.settled()
    assert settled.to_dict() == config.to_dict()
    assert settled != config  # it no longer follows the tasks
    assert settled.given_keys == set(CONFIG_KEYS)
    assert settled.settled() == settled


def test_copies_and_pickles_keep_the_given_keys():
    config = Config(learning_rate=1e-3)
    assert copy.deepcopy(config).given_keys == {"learning_rate"}
    assert pickle.loads(pickle.dumps(config)).given_keys == {"learning_rate"}
