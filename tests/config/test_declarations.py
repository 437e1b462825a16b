"""`multiq.config.keys` and `multiq.config.declare`: every key declared once, and what is read
from the declarations (bounds, choices that equal the registries, family defaults, views)."""

from __future__ import annotations

import dataclasses

import pytest

from multiq.agents.learner import LearnerSettings
from multiq.config import (
    BASE_FAMILY,
    FAMILY_DEFAULTS,
    KEYS,
    KEYS_A_RESUME_CHANGES,
    MAX_HIDDEN_SIZE,
    SECTIONS,
    Config,
    broken_rule,
    names,
)
from multiq.config.declare import Bounds, above, at_least, between, fraction
from multiq.envs.backends import ENV_BACKENDS
from multiq.mtl import BALANCERS
from multiq.mtl.schedules import SCHEDULES
from multiq.nets import SCHEMES, SchemeOptions
from multiq.recipes.continual import METHODS
from multiq.recipes.meta import ALGORITHMS, OUTER_OPTIMIZERS
from multiq.recipes.transfer import MODES


def test_every_key_is_declared_with_type_section_and_meaning():
    assert tuple(KEYS) == Config.keys() == tuple(f.name for f in dataclasses.fields(Config))
    sections = [section.name for section in SECTIONS]
    for name, key in KEYS.items():
        assert key.name == name and key.type, name
        assert key.section in sections, name
        assert key.meaning.strip() and "\n" not in key.meaning, name
        assert key.check(key.default) == getattr(Config(), name), name  # the default passes


def test_keys_are_declared_section_by_section():
    order = [key.section for key in KEYS.values()]
    runs = [section for i, section in enumerate(order) if i == 0 or order[i - 1] != section]
    assert runs == [section.name for section in SECTIONS]  # each section once, in its order


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("scheme", SCHEMES),
        ("balancer", BALANCERS),
        ("task_schedule", SCHEDULES),
        ("meta_algo", ALGORITHMS),
        ("meta_outer_optimizer", OUTER_OPTIMIZERS),
        ("env_backend", ENV_BACKENDS),
    ],
)
def test_the_choices_of_registry_keys_are_the_registry(key, registry):
    assert set(KEYS[key].choices) == set(registry)


@pytest.mark.parametrize(
    ("declared", "registry"),
    [
        (names.SCHEME_NAMES, SCHEMES),
        (names.BALANCER_NAMES, BALANCERS),
        (names.SCHEDULE_NAMES, SCHEDULES),
        (names.META_ALGORITHM_NAMES, ALGORITHMS),
        (names.META_OUTER_OPTIMIZER_NAMES, OUTER_OPTIMIZERS),
        (names.TRANSFER_MODE_NAMES, MODES),
        (names.CONTINUAL_METHOD_NAMES, METHODS),
    ],
)
def test_declared_registry_names_are_the_registry_sorted(declared, registry):
    assert list(declared) == sorted(registry)


def test_env_backend_names_are_the_registry_in_its_order():
    assert tuple(ENV_BACKENDS) == names.ENV_BACKEND_NAMES


def test_bounds_come_from_the_declarations():
    assert KEYS["hidden_size"].bounds == between(1, MAX_HIDDEN_SIZE)
    assert KEYS["learning_rate"].bounds == above(0)
    assert KEYS["gamma"].bounds == fraction(open_low=True)
    assert broken_rule("hidden_size", MAX_HIDDEN_SIZE + 1) == f"<= {MAX_HIDDEN_SIZE}"
    assert broken_rule("hidden_size", 0) == ">= 1"
    assert broken_rule("scheme", "shraed") == "one of " + ", ".join(names.SCHEME_NAMES)
    assert broken_rule("seed", 5) is None


@pytest.mark.parametrize(
    ("bounds", "words", "inside", "outside"),
    [
        (at_least(0), ">= 0", [0, 7], [-1]),
        (above(0), "> 0", [1e-9], [0, -1]),
        (between(1, 4), ">= 1 and <= 4", [1, 4], [0, 5]),
        (fraction(), "in [0, 1]", [0, 1], [-0.1, 1.1]),
        (fraction(open_low=True, open_high=True), "in (0, 1)", [0.5], [0, 1]),
    ],
)
def test_bounds_in_words(bounds: Bounds, words, inside, outside):
    assert bounds.words() == words
    assert all(bounds.broken(v) is None for v in inside)
    assert all(bounds.broken(v) for v in outside)


def test_allowed_values_in_words():
    assert KEYS["dueling"].allowed() == "true or false"
    assert KEYS["async_updates"].allowed() == "true, false or auto"
    assert KEYS["private_merge"].allowed() == "one of sum, concat"
    assert KEYS["task_weights"].allowed() == ""  # the meaning says it


def test_family_defaults_come_from_the_declarations():
    assert list(FAMILY_DEFAULTS) == [BASE_FAMILY, "vector", "atari", "minigrid"]
    for family, row in FAMILY_DEFAULTS.items():
        assert row == {k: key.by_family[family] for k, key in KEYS.items() if key.by_family}
    defaults = Config()
    assert FAMILY_DEFAULTS[BASE_FAMILY] == {
        key: getattr(defaults, key) for key in FAMILY_DEFAULTS[BASE_FAMILY]
    }


def test_the_keys_a_resume_may_change_are_declared_so():
    assert set(KEYS_A_RESUME_CHANGES) == {
        "total_steps_per_task", "device", "torch_threads", "collectors", "collector_chunk",
        "broadcast_interval", "ray_address", "env_backend", "env_workers", "async_updates",
        "async_chunk",
    }  # fmt: skip


@pytest.mark.parametrize("view", [SchemeOptions, LearnerSettings])
def test_views_repeat_no_default(view):
    for field in dataclasses.fields(view):
        assert field.default == KEYS[field.name].default, field.name
    config = Config(hidden_size=16, routing="gumbel", learning_rate=1e-3)
    settings = view.from_config(config)
    assert all(
        getattr(settings, f.name) == getattr(config, f.name) for f in dataclasses.fields(view)
    )


def test_scheme_options_allow_the_declared_choices():
    from multiq.nets import options

    assert KEYS["task_embedding"].choices == options.TASK_EMBEDDINGS
    assert KEYS["private_merge"].choices == options.PRIVATE_MERGES
    assert KEYS["routing"].choices == options.ROUTINGS
