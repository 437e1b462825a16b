"""`multiq.config.help`: every key's default, allowed values and meaning, by section, from the
keys' declarations."""

from __future__ import annotations

import pytest
import yaml

from multiq.config import CONFIG_KEYS, FAMILY_DEFAULTS, KEYS, MAX_HIDDEN_SIZE, SECTIONS, Config
from multiq.config.help import flow_yaml, format_keys, format_yaml, key_help, registry_names
from multiq.errors import ConfigError
from multiq.mtl import BALANCERS
from multiq.mtl.schedules import SCHEDULES
from multiq.nets import SCHEMES
from multiq.recipes.meta import ALGORITHMS


def allowed(key: str) -> str:
    return key_help([key])[0].allowed


def test_every_key_has_its_default_type_and_meaning():
    helps = key_help()
    defaults = Config()
    assert [h.name for h in helps] == list(Config.keys())
    for h in helps:
        assert h.default == getattr(defaults, h.name), h.name
        assert h.type, h.name
        assert h.meaning, h.name


def test_meanings_and_sections_come_from_the_declarations():
    (learning_rate,) = key_help(["learning_rate"])
    assert learning_rate.meaning == KEYS["learning_rate"].meaning == "Adam learning rate."
    assert learning_rate.section == "dqn"
    (train_freq,) = key_help(["train_freq"])  # a declaration over several source lines
    assert train_freq.meaning.startswith("run updates every this many vector steps")
    assert "\n" not in train_freq.meaning


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("scheme", SCHEMES),
        ("balancer", BALANCERS),
        ("task_schedule", SCHEDULES),
        ("meta_algo", ALGORITHMS),
    ],
)
def test_registry_keys_allow_the_registry_names(key, registry):
    assert registry_names(key) == sorted(registry)
    assert allowed(key) == "one of " + ", ".join(sorted(registry))


def test_other_keys_allow_what_their_range_rule_requires():
    assert allowed("learning_rate") == "> 0"
    assert allowed("hidden_size") == f">= 1 and <= {MAX_HIDDEN_SIZE}"
    assert allowed("learning_starts") == ">= 0"
    assert allowed("gamma") == "in (0, 1]"
    assert allowed("rehearsal_share") == "in (0, 1)"
    assert allowed("private_merge") == "one of sum, concat"
    assert allowed("dueling") == "true or false"
    assert "cuda:<index>" in allowed("device")
    assert allowed("task_weights") == ""  # no rule: the meaning says it
    assert registry_names("learning_rate") == []


def test_keys_come_in_the_order_given_once_each():
    names = [h.name for h in key_help(["seed", "balancer", "seed"])]
    assert names == ["seed", "balancer"]


def test_an_unknown_key_names_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        key_help(["learning_rate", "learnig_rate"])


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.5e-4, "0.00025"), (None, "null"), ([], "[]"), (False, "false"), ("minatar", "minatar")],
)
def test_flow_yaml(value, text):
    assert flow_yaml(value) == text
    assert yaml.safe_load(text) == value


def test_format_keys_gives_one_block_per_key():
    text = format_keys(key_help(["learning_rate", "balancer"]))
    blocks = text.split("\n\n")
    assert blocks[0].splitlines() == [
        "learning_rate = 0.00025",
        "    type: float; allowed: > 0",
        "    Adam learning rate.",
        "    by observation family: minatar 0.00025, vector 0.001, atari 0.0001, minigrid 0.001 "
        "(unless",
        "    set)",
    ]
    assert blocks[1].startswith("balancer = fixed\n")
    assert "pcgrad" in blocks[1]


def test_yaml_of_the_defaults_reads_back_as_the_defaults(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(format_yaml(key_help()) + "\n")
    config = Config.from_yaml(path)
    assert config.to_dict() == Config().to_dict()
    assert config.given_keys == set(CONFIG_KEYS) - set(FAMILY_DEFAULTS["minatar"])


def test_yaml_comments_every_key():
    lines = format_yaml(key_help()).splitlines()
    for key in CONFIG_KEYS:  # under its section's name
        entry = f"  # {key}:" if key in FAMILY_DEFAULTS["minatar"] else f"  {key}:"
        at = next(i for i, line in enumerate(lines) if line.startswith(entry))
        assert lines[at - 1].startswith("  #"), key
        section = next(line for line in reversed(lines[:at]) if line and line[0] not in " #")
        assert section == f"{KEYS[key].section}:", key
    assert "  # allowed: one of " + ", ".join(sorted(BALANCERS)) in lines


def test_yaml_leaves_the_keys_that_follow_the_tasks_commented_out(tmp_path):
    text = format_yaml(key_help(["balancer", "learning_rate"]))
    assert "# by observation family: minatar 0.00025, vector 0.001, atari 0.0001, minigrid" in text
    assert "\n  # learning_rate: 0.00025" in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert yaml.safe_load(path.read_text()) == {"mtl": {"balancer": "fixed"}, "dqn": None}
    assert Config.from_yaml(path).given_keys == {"balancer"}  # learning_rate follows the tasks


def test_family_defaults_of_each_key():
    (n_step, seed) = key_help(["n_step", "seed"])
    assert n_step.by_family == {"minatar": 1, "vector": 3, "atari": 1, "minigrid": 3}
    assert seed.by_family == {}


def test_the_listing_of_every_key_names_each_section_once_before_its_keys():
    text = format_keys(key_help(), sections=True)
    titles = [block for block in text.split("\n\n") if block.startswith("# ")]
    assert titles == [f"# {s.name}: {s.title}" for s in SECTIONS]
    assert text.index("# net: ") < text.index("\nscheme = ") < text.index("# dqn: ")
    assert "# " not in format_keys(key_help(["seed", "scheme"]))  # keys asked for: no titles
