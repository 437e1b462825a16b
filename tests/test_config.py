"""Tests for multiq.config: validation, YAML round trips and CLI-style overrides."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest
import yaml

import multiq.config
from multiq.config import (
    CONFIG_KEYS,
    KEYS,
    MAX_EVAL_EPISODES,
    MAX_GRADIENT_STEPS,
    MAX_HIDDEN_SIZE,
    MAX_N_ENVS,
    MAX_NESTING_DEPTH,
    MAX_ROUTING_MODULES,
    MAX_SCHEDULE_WINDOW,
    MAX_SEED,
    MAX_TASK_EMBEDDING_DIM,
    MAX_YAML_NODES,
    Config,
)
from multiq.config.names import SCHEME_NAMES
from multiq.errors import ConfigError
from multiq.runio.config_file import save_config
from multiq.runio.layout import CONFIG_FILE


def test_defaults_are_valid_and_match_the_keys():
    cfg = Config()
    assert Config.from_dict({}) == cfg
    assert Config.keys() == CONFIG_KEYS == tuple(f.name for f in dataclasses.fields(Config))
    assert cfg.to_dict()["learning_rate"] == 2.5e-4


def test_class_docstring_documents_every_key():
    documented = set(re.findall(r"^\s{8}(\w+):", Config.__doc__, flags=re.MULTILINE))
    assert documented == set(CONFIG_KEYS)


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().seed = 3  # type: ignore[misc]


def _rich_config() -> Config:
    return Config(
        tasks=[
            "gym:CartPole-v1",
            {"id": "gym:Acrobot-v1", "name": "acro", "kwargs": {"max_steps": 5, "tag": "1e5"}},
        ],
        task_weights={"CartPole": 2.0, "acro": 0.5, "1e-3": 0.0},
        learning_rate=1e-10,
        seed=7,
        device="cuda:1",
    )


@pytest.mark.parametrize("cfg", [Config(), _rich_config()], ids=["defaults", "rich"])
def test_yaml_round_trip_is_exact(tmp_path, cfg):
    path = save_config(cfg, tmp_path / "run" / CONFIG_FILE)
    assert path == tmp_path / "run" / CONFIG_FILE
    loaded = Config.from_yaml(path)
    assert loaded == cfg.settled()  # the same values, every key given
    assert loaded.to_dict() == cfg.to_dict()
    assert os.listdir(path.parent) == [CONFIG_FILE]


def test_save_config_replaces_atomically_and_cleans_up_on_failure(tmp_path, monkeypatch):
    path = tmp_path / CONFIG_FILE
    save_config(Config(seed=1), path)
    assert save_config(Config(seed=2), tmp_path) == path  # a folder: its config.yaml
    assert Config.from_yaml(path).seed == 2

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_config(Config(seed=3), path)
    assert os.listdir(tmp_path) == [CONFIG_FILE]
    assert Config.from_yaml(path).seed == 2


def test_to_dict_is_plain_and_a_copy():
    cfg = _rich_config()
    data = cfg.to_dict()
    data["tasks"][1]["kwargs"]["max_steps"] = 99
    assert cfg.tasks[1]["kwargs"]["max_steps"] == 5
    assert yaml.safe_load(yaml.safe_dump(data)) == data


def test_from_dict_copies_and_normalizes_input():
    kwargs = {"shape": (2, 3)}
    tasks = [{"id": "gym:CartPole-v1", "kwargs": kwargs}]
    cfg = Config.from_dict({"tasks": tasks, "learning_rate": 1, "buffer_size": 1e5})
    kwargs["shape"] = (9,)
    assert cfg.tasks == [{"id": "gym:CartPole-v1", "kwargs": {"shape": [2, 3]}}]
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.buffer_size == 100_000 and isinstance(cfg.buffer_size, int)


def test_unknown_key_suggests_the_closest_key():
    with pytest.raises(ConfigError, match="unknown config key 'learning_rat'") as info:
        Config.from_dict({"learning_rat": 1e-3})
    assert "did you mean 'learning_rate'?" in str(info.value)
    assert "Valid keys: tasks, env_imports, seed" in str(info.value)


def test_unknown_task_entry_key_suggests_the_closest_key():
    with pytest.raises(ConfigError, match=r"tasks\[0\] key 'nmae'; did you mean 'name'"):
        Config(tasks=[{"id": "gym:CartPole-v1", "nmae": "cp"}])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("seed", "1", "an integer"),
        ("seed", 2.5, "an integer"),
        ("seed", True, "an integer"),
        ("learning_rate", "fast", "a number"),
        ("learning_rate", False, "a number"),
        ("dueling", 1, "a bool"),
        ("dueling", "yes", "a bool"),
        ("scheme", 3, "a string"),
        ("device", None, "a string"),
        ("tasks", 5, "a string or a non-empty list"),
        ("tasks", [], "a string or a non-empty list"),
        ("tasks", [3], "a task id string or a mapping"),
        ("task_weights", [1.0], "null or a mapping"),
        ("task_weights", {"a": "x"}, "a number"),
    ],
)
def test_wrong_type_names_key_and_expected_type(key, value, expected):
    with pytest.raises(ConfigError, match=rf"^{key}.*expected {expected}"):
        Config.from_dict({key: value})


def test_non_finite_float_rejected():
    with pytest.raises(ConfigError, match="max_grad_norm: expected a finite number"):
        Config(max_grad_norm=float("inf"))


@pytest.mark.parametrize(
    ("key", "bad", "allowed"),
    [
        ("learning_rate", 0.0, "> 0"),
        ("buffer_size", 0, ">= 1"),
        ("batch_size", 0, ">= 1"),
        ("n_envs", 0, ">= 1"),
        ("total_steps_per_task", 0, ">= 1"),
        ("learning_starts", -1, ">= 0"),
        ("tau", 0.0, "in (0, 1]"),
        ("tau", 1.5, "in (0, 1]"),
        ("gamma", 0.0, "in (0, 1]"),
        ("gamma", 1.01, "in (0, 1]"),
        ("train_freq", 0, ">= 1"),
        ("gradient_steps", 0, ">= 1"),
        ("target_update_interval", 0, ">= 1"),
        ("exploration_fraction", -0.1, "in [0, 1]"),
        ("exploration_fraction", 1.1, "in [0, 1]"),
        ("exploration_initial_eps", 1.5, "in [0, 1]"),
        ("exploration_final_eps", -0.5, "in [0, 1]"),
        ("max_grad_norm", 0.0, "> 0"),
        ("n_step", 0, ">= 1"),
        ("eval_freq", -1, ">= 0"),
        ("eval_episodes", 0, ">= 1"),
        ("eval_epsilon", 2.0, "in [0, 1]"),
        ("checkpoint_freq", -5, ">= 0"),
        ("hidden_size", 0, ">= 1"),
        ("scheme", " ", "one of " + ", ".join(SCHEME_NAMES)),
        ("device", "gpu", "one of auto, cpu, cuda, cuda:<index>, mps"),
        ("device", "cuda:x", "one of auto, cpu, cuda, cuda:<index>, mps"),
    ],
)
def test_range_rule_rejects_bad_value(key, bad, allowed):
    with pytest.raises(ConfigError) as info:
        Config.from_dict({key: bad})
    assert str(info.value) == f"{key} must be {allowed}, got {bad!r}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("tau", 1.0),
        ("gamma", 1.0),
        ("learning_starts", 0),
        ("eval_freq", 0),
        ("checkpoint_freq", 0),
        ("exploration_final_eps", 0.0),
        ("device", "cpu"),
        ("device", "cuda"),
        ("device", "cuda:3"),
        ("device", "mps"),
    ],
)
def test_range_edges_accepted(key, value):
    assert getattr(Config.from_dict({key: value}), key) == value


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"a": -1.0}, "task_weights.a must be >= 0"),
        ({"a": 0.0, "b": 0}, "at least one weight must be > 0"),
        ({}, "at least one weight must be > 0"),
        ({"": 1.0}, "non-empty string"),
    ],
)
def test_task_weights_rules(weights, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config(task_weights=weights)


def test_task_entry_needs_id_and_plain_kwargs():
    with pytest.raises(ConfigError, match=r"tasks\[0\]: a task mapping needs an 'id'"):
        Config(tasks=[{"name": "cp"}])
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.kwargs\.f: expected plain data"):
        Config(tasks=[{"id": "gym:CartPole-v1", "kwargs": {"f": object()}}])


def test_several_errors_are_reported_together():
    with pytest.raises(ConfigError, match=r"invalid config \(2 errors\)") as info:
        Config.from_dict({"gamma": 2.0, "seed": "x"})
    assert "gamma must be in (0, 1]" in str(info.value)
    assert "seed: expected an integer" in str(info.value)


def test_int_field_accepts_integral_float_only():
    assert Config(total_steps_per_task=1e5).total_steps_per_task == 100_000
    with pytest.raises(ConfigError, match="total_steps_per_task: expected an integer, got 2.5"):
        Config(total_steps_per_task=2.5)


def test_overrides_parse_values():
    cfg = Config().with_overrides(
        [
            "learning_rate=1e-4",
            "total_steps_per_task=1e5",
            "dueling=true",
            "double_q = false",
            "seed=42",
            "device=cuda:0",
            "task_weights.Breakout=2.0",
            "task_weights.Pong=1",
            "tasks=[gym:CartPole-v1, gym:Acrobot-v1]",
        ]
    )
    assert cfg.learning_rate == 1e-4
    assert cfg.total_steps_per_task == 100_000
    assert cfg.dueling is True and cfg.double_q is False
    assert cfg.seed == 42
    assert cfg.device == "cuda:0"
    assert cfg.task_weights == {"Breakout": 2.0, "Pong": 1.0}
    assert cfg.tasks == ["gym:CartPole-v1", "gym:Acrobot-v1"]


def test_overrides_keep_text_values_verbatim_and_apply_in_order():
    cfg = Config().with_overrides(["tasks=gym:CartPole-v1,gym:Acrobot-v1", "seed=1", "seed=2"])
    assert cfg.tasks == "gym:CartPole-v1,gym:Acrobot-v1"
    assert cfg.seed == 2
    assert Config().with_overrides(["scheme=shared-private"]).scheme == "shared-private"


def test_override_can_reset_task_weights():
    cfg = Config(task_weights={"a": 1.0}).with_overrides(["task_weights=null"])
    assert cfg.task_weights is None


@pytest.mark.parametrize("item", ["learning_rate", "=3", "learning_rate 1e-4"])
def test_override_without_equals_sign_shows_example(item):
    with pytest.raises(ConfigError, match="must look like key=value, e.g. learning_rate=1e-4"):
        Config().with_overrides([item])


def test_override_errors_name_the_key():
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        Config().with_overrides(["learning_rat=1e-4"])
    with pytest.raises(ConfigError, match="dotted key sets one entry of task_weights"):
        Config().with_overrides(["seed.x=1"])
    with pytest.raises(ConfigError, match="gamma must be in"):
        Config().with_overrides(["gamma=1.5"])
    with pytest.raises(ConfigError, match="invalid YAML in the value of dueling at line 1"):
        Config().with_overrides(["dueling=[1, 2"])


def test_replace_validates_and_suggests():
    cfg = Config()
    assert cfg.replace(seed=3, device="cpu") == Config(seed=3, device="cpu")
    assert cfg.seed == 0
    with pytest.raises(ConfigError, match="n_envs must be >= 1"):
        cfg.replace(n_envs=0)
    with pytest.raises(ConfigError, match="did you mean 'seed'"):
        cfg.replace(sed=3)


def test_from_yaml_reads_exponent_floats_and_empty_files(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("learning_rate: 1e-4\ntotal_steps_per_task: 1.0e5\n")
    cfg = Config.from_yaml(path)
    assert cfg.learning_rate == 1e-4
    assert cfg.total_steps_per_task == 100_000
    path.write_text("")
    assert Config.from_yaml(path) == Config()


def test_from_yaml_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"config file not found: {re.escape(str(missing))}"):
        Config.from_yaml(missing)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 1\ngamma: [0.9\n", 3),
        ("seed: 1\n  dueling: true\n", 2),
        ("seed: 1\nseed: 2\n", 2),
    ],
    ids=["unclosed", "bad-indent", "duplicate-key"],
)
def test_from_yaml_syntax_error_mentions_file_and_line(tmp_path, text, line):
    path = tmp_path / CONFIG_FILE
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=rf"invalid YAML in {re.escape(str(path))} at line {line}"
    ):
        Config.from_yaml(path)


def test_from_yaml_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("- seed\n- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping.*got list"):
        Config.from_yaml(path)


def test_from_yaml_invalid_value_names_file_and_key(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("batch_sise: 64\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: .*did you mean 'batch_size'"):
        Config.from_yaml(path)


# --- upper limits -------------------------------------------------------------------------------

_LIMITS = [
    ("seed", MAX_SEED, "MAX_SEED"),
    ("eval_episodes", MAX_EVAL_EPISODES, "MAX_EVAL_EPISODES"),
    ("n_envs", MAX_N_ENVS, "MAX_N_ENVS"),
    ("hidden_size", MAX_HIDDEN_SIZE, "MAX_HIDDEN_SIZE"),
    ("task_embedding_dim", MAX_TASK_EMBEDDING_DIM, "MAX_TASK_EMBEDDING_DIM"),
    ("routing_modules", MAX_ROUTING_MODULES, "MAX_ROUTING_MODULES"),
    ("gradient_steps", MAX_GRADIENT_STEPS, "MAX_GRADIENT_STEPS"),
    ("schedule_window", MAX_SCHEDULE_WINDOW, "MAX_SCHEDULE_WINDOW"),
]


def test_limit_values():
    assert MAX_SEED == 2**31 - 1
    assert (MAX_EVAL_EPISODES, MAX_N_ENVS, MAX_ROUTING_MODULES) == (10_000, 1024, 1024)
    assert MAX_HIDDEN_SIZE == MAX_TASK_EMBEDDING_DIM == 65_536
    assert (MAX_GRADIENT_STEPS, MAX_SCHEDULE_WINDOW) == (10_000, 1_000_000)


@pytest.mark.parametrize(("key", "limit", "name"), _LIMITS, ids=[k for k, _, _ in _LIMITS])
def test_limit_rejects_the_next_value_and_names_key_and_limit(key, limit, name):
    with pytest.raises(ConfigError) as info:
        Config.from_dict({key: limit + 1})
    assert str(info.value) == f"{key} must be <= {limit}, got {limit + 1}"
    with pytest.raises(ConfigError, match=rf"^{key} must be <= {limit}, got"):
        Config().with_overrides([f"{key}={limit * 1000}"])


@pytest.mark.parametrize(("key", "limit", "name"), _LIMITS, ids=[k for k, _, _ in _LIMITS])
def test_limit_itself_is_accepted_declared_and_documented(key, limit, name):
    assert getattr(Config.from_dict({key: limit}), key) == limit
    assert KEYS[key].bounds.high == limit
    entry = re.search(rf"^\s{{8}}{key}:(.*?)(?=^\s{{8}}\w+:)", Config.__doc__, re.M | re.S)
    assert f"<= {limit}" in " ".join(entry.group(1).split())
    assert name in multiq.config.__all__


@pytest.mark.parametrize(
    ("key", "bad", "allowed"),
    [
        ("seed", -1, ">= 0"),
        ("seed", 2**64, f"<= {MAX_SEED}"),
        ("eval_episodes", 2_000_000, f"<= {MAX_EVAL_EPISODES}"),
        ("schedule_window", 3, ">= 4"),
        ("routing_modules", 0, ">= 1"),
    ],
)
def test_limit_messages(key, bad, allowed):
    with pytest.raises(ConfigError) as info:
        Config.from_dict({key: bad})
    assert str(info.value) == f"{key} must be {allowed}, got {bad!r}"


def test_seed_override_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="seed must be >= 0, got -1"):
        Config().with_overrides(["seed=-1"])
    with pytest.raises(ConfigError, match=f"seed must be <= {MAX_SEED}"):
        Config().with_overrides(["seed=99999999999999999999999"])


def test_huge_numbers_give_config_errors_not_tracebacks():
    with pytest.raises(ConfigError, match=f"seed must be <= {MAX_SEED}, got <int too large"):
        Config(seed=10**5000)
    with pytest.raises(ConfigError, match="learning_rate: expected a finite number"):
        Config(learning_rate=10**400)
    with pytest.raises(ConfigError, match=r"^seed: expected an integer, got inf"):
        Config().with_overrides(["seed=" + "9" * 5000])


def test_long_values_are_abridged_in_messages():
    with pytest.raises(ConfigError) as info:
        Config(scheme=7, device="x" * 10_000)
    assert "device must be one of" in str(info.value)
    assert "scheme: expected a string" in str(info.value)
    assert len(str(info.value)) < 400


# --- cross-key rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"exploration_initial_eps": 0.1, "exploration_final_eps": 0.5},
            "exploration_final_eps (0.5) > exploration_initial_eps (0.1): epsilon would rise "
            "during training; lower exploration_final_eps or raise exploration_initial_eps",
        ),
        (
            {"routing_tau_start": 0.5, "routing_tau_end": 2.0},
            "routing_tau_end (2.0) > routing_tau_start (0.5): the Gumbel temperature anneals "
            "downwards; lower routing_tau_end or raise routing_tau_start",
        ),
        (
            {"n_step": 10, "buffer_size": 10, "batch_size": 4},
            "n_step (10) >= buffer_size (10): the buffer cannot hold an n-step transition; "
            "lower n_step or raise buffer_size",
        ),
        (
            {"batch_size": 50_000_000},
            "batch_size (50000000) > buffer_size (100000): a batch would be larger than the "
            "replay buffer; lower batch_size or raise buffer_size",
        ),
        (
            {"learning_starts": 1000, "train_freq": 4, "n_envs": 8, "total_steps_per_task": 1031},
            "learning_starts (1000) + train_freq (4) * n_envs (8) > total_steps_per_task (1031): "
            "no update would ever run; lower learning_starts or raise total_steps_per_task",
        ),
        (
            {"total_steps_per_task": 500},
            "learning_starts (1000) + train_freq (4) * n_envs (1) > total_steps_per_task (500): "
            "no update would ever run; lower learning_starts or raise total_steps_per_task",
        ),
    ],
    ids=["eps", "routing-tau", "n-step", "batch", "no-update", "no-update-default-start"],
)
def test_cross_rule_names_both_keys_values_and_fix(changes, message):
    with pytest.raises(ConfigError) as info:
        Config.from_dict(changes)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "changes",
    [
        {"exploration_initial_eps": 0.3, "exploration_final_eps": 0.3},
        {"routing_tau_start": 0.5, "routing_tau_end": 0.5},
        {"n_step": 9, "buffer_size": 10, "batch_size": 10},
        {"learning_starts": 1000, "train_freq": 4, "n_envs": 8, "total_steps_per_task": 1032},
        {"learning_starts": 0, "train_freq": 1, "n_envs": 1, "total_steps_per_task": 1},
    ],
)
def test_cross_rule_edges_accepted(changes):
    cfg = Config.from_dict(changes)
    assert all(getattr(cfg, key) == value for key, value in changes.items())


def test_cross_rules_skip_keys_that_failed_their_own_rule():
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"exploration_final_eps": 2.0, "batch_size": "x"})
    message = str(info.value)
    assert message.startswith("invalid config (2 errors)")
    assert "exploration_final_eps must be in [0, 1]" in message
    assert "batch_size: expected an integer" in message
    assert "exploration_initial_eps (" not in message and "buffer_size (" not in message


def test_cross_rule_errors_are_collected_with_the_others():
    with pytest.raises(ConfigError, match=r"invalid config \(3 errors\)") as info:
        Config.from_dict({"gamma": 2.0, "batch_size": 64, "buffer_size": 32, "n_step": 40})
    message = str(info.value)
    assert "gamma must be in (0, 1]" in message
    assert "batch_size (64) > buffer_size (32)" in message
    assert "n_step (40) >= buffer_size (32)" in message


def test_overrides_are_checked_together_not_one_by_one():
    cfg = Config().with_overrides(["learning_starts=200000", "total_steps_per_task=300000"])
    assert (cfg.learning_starts, cfg.total_steps_per_task) == (200_000, 300_000)


# --- YAML bounds and safety ---------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
_TOO_LARGE = f"expands to more than {MAX_YAML_NODES} nodes (YAML aliases); write the values out"


def test_billion_laughs_file_is_refused(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(ConfigError, match=re.escape(_TOO_LARGE)) as info:
        Config.from_yaml(path)
    assert str(info.value).startswith(f"invalid YAML in {path} at line ")


def test_billion_laughs_override_is_refused():
    flow = "{" + BILLION_LAUGHS.strip().replace("\n", ", ") + "}"
    for key in ("task_weights", "frozen_groups", "seed"):
        with pytest.raises(ConfigError, match=re.escape(_TOO_LARGE)) as info:
            Config().with_overrides([f"{key}={flow}"])
        assert f"the value of {key}" in str(info.value)


def test_small_aliases_still_load(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text(
        "tasks:\n"
        "  - {id: gym:CartPole-v1, name: a, kwargs: &kw {max_episode_steps: 50}}\n"
        "  - {id: gym:CartPole-v1, name: b, kwargs: *kw}\n"
        "lr_scales: {trunk: &s 0.5, head: *s}\n"
    )
    cfg = Config.from_yaml(path)
    assert [t["kwargs"] for t in cfg.tasks] == [{"max_episode_steps": 50}] * 2
    assert cfg.lr_scales == {"trunk": 0.5, "head": 0.5}
    weights = Config().with_overrides(["task_weights={a: &w 2.0, b: *w}"]).task_weights
    assert weights == {"a": 2.0, "b": 2.0}


def test_aliases_expanding_below_the_node_limit_load():
    doc = "{a: &a [1,1,1,1,1,1,1,1,1]"  # each level nests nine aliases of the one before
    for level, name in enumerate("bcde"):
        doc += f", {name}: &{name} [{','.join(['*' + 'abcd'[level]] * 9)}]"
    doc += "}"
    cfg = Config().with_overrides([f"tasks=[{{id: x, kwargs: {doc}}}]"])
    assert len(cfg.tasks[0]["kwargs"]["e"]) == 9  # about 75,000 nodes in all
    assert cfg.tasks[0]["kwargs"]["e"][8][8][8][8] == [1] * 9


def test_deep_nesting_is_refused(tmp_path):
    path = tmp_path / CONFIG_FILE
    deep = "[" * 1000 + "]" * 1000
    path.write_text(f"tasks:\n  - id: gym:CartPole-v1\n    kwargs: {{v: {deep}}}\n")
    message = f"the document nests deeper than {MAX_NESTING_DEPTH} levels"
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_yaml(path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config().with_overrides([f"seed={'[' * 100_000}"])


def test_deep_nesting_through_aliases_is_refused():
    levels = [f"l0: &l0 {'[' * 40}1{']' * 40}"]
    levels += [f"l{i}: &l{i} {'[' * 40}*l{i - 1}{']' * 40}" for i in range(1, 4)]
    with pytest.raises(ConfigError, match=r"nests deeper than \d+ levels \(YAML aliases\)"):
        Config().with_overrides(["task_weights={" + ", ".join(levels) + "}"])


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text("tasks:\n  - {id: gym:CartPole-v1, kwargs: &k {me: *k}}\n")
    with pytest.raises(ConfigError, match="an alias refers to a node that contains it"):
        Config.from_yaml(path)


def test_recursive_python_kwargs_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.kwargs\.x.*nested deeper than"):
        Config(tasks=[{"id": "gym:CartPole-v1", "kwargs": {"x": loop}}])


@pytest.mark.parametrize("text", ["seed: 2024-13-45\n", f"seed: {'7' * 5000}\n"])
def test_unreadable_scalar_is_a_config_error(tmp_path, text):
    path = tmp_path / CONFIG_FILE
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"invalid YAML in {re.escape(str(path))}: cannot read"):
        Config.from_yaml(path)


def test_python_tags_are_refused_without_running(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command) or 0)
    marker = tmp_path / "pwned"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    path = tmp_path / CONFIG_FILE
    path.write_text(f"scheme: {tag}\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        Config.from_yaml(path)
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        Config().with_overrides([f"seed={tag}"])
    assert calls == [] and not marker.exists()
