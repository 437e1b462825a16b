"""Property-based fuzz of `Config` validation.

Every key gets a strategy of values it must refuse (wrong types, and values outside its range)
and, where ``--set key=text`` can express them, a strategy of such texts. Each generated value
must raise `ConfigError` naming the key; any other exception, or a value accepted, fails. The
strategies of numbers, bools and names follow the keys' declarations (type, bounds, choices);
keys of other shapes (task lists, mappings, free text) have tables here, which fail on a new key
of such a shape until it gets its strategies.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any, NamedTuple

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from multiq.config import KEYS, MAX_N_ENVS, Config, convert
from multiq.config.declare import Bounds, Key
from multiq.errors import ConfigError

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None)


class Invalid(NamedTuple):
    """Values a key must refuse: as Python values, and as ``--set`` value texts."""

    values: st.SearchStrategy[Any]
    texts: st.SearchStrategy[str]


# --- building blocks ----------------------------------------------------------------------------

NAMES = st.text(min_size=1, max_size=8).filter(str.strip)
BLANK = st.text(alphabet=" \t\n", max_size=4)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
NON_INTEGRAL = st.floats().filter(lambda x: not x.is_integer())  # includes nan and +-inf
LISTS = st.lists(st.integers() | st.text(max_size=4), max_size=3)
DICTS = st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)
CONTAINER_TEXTS = st.sampled_from(["[1, 2]", "[]", "{a: 1}", "{}"])


def _negative_floats() -> st.SearchStrategy[float]:
    # A bound, not `.filter(lambda x: x < 0)`: Hypothesis 6.170 folds that filter into
    # max_value=0.0 and then yields 0.0.
    return st.floats(max_value=-math.ulp(0.0), allow_nan=False)


def _as_text(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """Number texts that `--set` reads back as the same number (``-1``, ``1e+300``, ``nan``)."""
    return values.map(repr)


# --- int keys: [low, high]; high None = unbounded ------------------------------------------------

NOT_INT = st.one_of(st.text(), LISTS, DICTS, st.booleans(), NON_INTEGRAL, st.none())
NOT_INT_TEXTS = st.one_of(
    _as_text(NON_INTEGRAL),
    st.from_regex(r"[a-zA-Z_][a-zA-Z_ ]{0,8}", fullmatch=True),  # strings, bools, null, inf
    st.sampled_from(["''", "~", "1.5", "-0.5", "1e-3"]),
    CONTAINER_TEXTS,
)


def _int_key(low: int, high: int | None = None) -> Invalid:
    outside = st.integers(max_value=low - 1)
    if high is not None:
        outside |= st.integers(min_value=high + 1)
    integral_floats = outside.filter(lambda v: abs(v) < 2**53).map(float)
    return Invalid(
        st.one_of(NOT_INT, outside, integral_floats), st.one_of(NOT_INT_TEXTS, _as_text(outside))
    )


# --- float keys: by range ------------------------------------------------------------------------

NOT_FLOAT = st.one_of(st.text(), LISTS, DICTS, st.booleans(), st.none())
NOT_FLOAT_TEXTS = st.one_of(
    st.from_regex(r"[a-zA-Z_][a-zA-Z_ ]{0,8}", fullmatch=True),
    st.sampled_from(["''", "~", "1e999", "-1e999", ".inf", ".nan"]),
    CONTAINER_TEXTS,
)


def _float_key(outside: st.SearchStrategy[float]) -> Invalid:
    outside = st.one_of(outside, NON_FINITE)
    return Invalid(st.one_of(NOT_FLOAT, outside), st.one_of(NOT_FLOAT_TEXTS, _as_text(outside)))


def _below(low: float, inclusive: bool) -> st.SearchStrategy[float]:
    """Floats and ints under `low` (`inclusive`: `low` itself too)."""
    # A bound, not `.filter(lambda x: x < low)`: Hypothesis 6.170 folds that filter into
    # max_value=low and then yields low.
    top = low if inclusive else math.nextafter(low, -math.inf)
    return st.floats(max_value=top, allow_nan=False) | st.integers(
        max_value=math.floor(top) if inclusive else math.ceil(low) - 1
    )


def _above(high: float, inclusive: bool) -> st.SearchStrategy[float]:
    """Floats and ints over `high` (`inclusive`: `high` itself too)."""
    bottom = high if inclusive else math.nextafter(high, math.inf)
    return st.floats(min_value=bottom, allow_nan=False) | st.integers(
        min_value=math.ceil(bottom) if inclusive else math.floor(high) + 1
    )


def _outside(bounds: Bounds) -> st.SearchStrategy[float]:
    """Numbers outside a declared range (an open end's limit included)."""
    sides = []
    if bounds.low is not None:
        sides.append(_below(bounds.low, bounds.open_low))
    if bounds.high is not None:
        sides.append(_above(bounds.high, bounds.open_high))
    return st.one_of(sides)


# --- bool keys -----------------------------------------------------------------------------------

BOOL = Invalid(
    st.one_of(st.integers(), st.floats(), st.text(), st.none(), LISTS),
    st.one_of(
        st.integers().map(str),
        _as_text(st.floats()),
        st.sampled_from(["null", "'true'", '"false"', "abc", "[true]", "{a: true}"]),
    ),
)
SWITCH = Invalid(  # true, false or auto
    st.one_of(
        st.integers(), st.floats(), st.text().filter(lambda t: t != "auto"), st.none(), LISTS
    ),  # fmt: skip
    st.one_of(st.integers().map(str), st.sampled_from(["null", "'true'", "abc", "[auto]"])),
)

# --- text keys: --set keeps their text verbatim unless it is a YAML list or mapping --------------

NOT_STR = st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), LISTS, DICTS)


def _choice_key(allowed: str) -> Invalid:
    """A text key whose (stripped) value must fully match the regex `allowed`."""

    def refused(text: str) -> bool:
        return re.fullmatch(allowed, text.strip()) is None

    return Invalid(
        st.one_of(NOT_STR, st.text().filter(lambda t: re.fullmatch(allowed, t) is None)),
        st.one_of(st.text().filter(refused), BLANK, CONTAINER_TEXTS),
    )


def _choices_key(choices: tuple[str, ...]) -> Invalid:
    return _choice_key("|".join(re.escape(choice) for choice in choices))


NAME = Invalid(st.one_of(NOT_STR, BLANK), st.one_of(BLANK, CONTAINER_TEXTS))
FREE_TEXT_KEYS: dict[str, Invalid] = {  # text keys without choices: their rules, written out
    "wandb_project": NAME,
    "wandb_group": Invalid(NOT_STR, CONTAINER_TEXTS),  # any plain text is a group ("" = none)
    "ray_address": Invalid(NOT_STR, CONTAINER_TEXTS),  # checked when Ray connects ("" = here)
    "device": _choice_key(r"auto|cpu|mps|cuda(?::\d+)?"),
}

# --- structured keys -----------------------------------------------------------------------------

BAD_ENTRIES = st.one_of(
    st.integers(),
    st.none(),
    BLANK,
    st.fixed_dictionaries({"name": NAMES}),  # no id
    st.fixed_dictionaries({"id": NAMES, "bogus": st.integers()}),
    st.fixed_dictionaries({"id": NAMES, "kwargs": st.integers() | st.text() | LISTS}),
    st.fixed_dictionaries({"id": BLANK | st.integers()}),
)
TASKS = Invalid(
    st.one_of(
        st.integers(),
        st.floats(),
        st.booleans(),
        st.none(),
        DICTS,
        BLANK,
        st.just([]),
        st.lists(BAD_ENTRIES, min_size=1, max_size=3),
    ),
    st.one_of(
        BLANK,
        st.sampled_from(["[]", "[1]", "[null]", "{a: 1}", "[{name: x}]", "[{id: x, kw: 1}]"]),
        st.sampled_from(["[{id: ''}]", "[{id: x, kwargs: 5}]", "[{id: [1]}]"]),
    ),
)


def _weights_key(too_small: st.SearchStrategy[float], refused_as_a_whole: Invalid) -> Invalid:
    """A null-or-mapping key whose values must be finite numbers above `too_small`.

    `refused_as_a_whole`: mappings of acceptable numbers that the key still refuses.
    """
    bad_weight = st.one_of(too_small, NON_FINITE, st.text(), st.none(), st.booleans(), LISTS)
    good_weight = st.floats(min_value=0.5, max_value=2.0)
    return Invalid(
        st.one_of(
            st.integers(),
            st.text(),
            st.booleans(),
            LISTS,
            st.dictionaries(NAMES, bad_weight, min_size=1, max_size=3),
            st.dictionaries(BLANK | st.integers(), good_weight, min_size=1, max_size=2),
            refused_as_a_whole.values,
        ),
        st.one_of(
            st.sampled_from(["5", "abc", "[1]", "true", "{'': 1}", "{a: x}", "{a: .nan}"]),
            too_small.map(lambda w: f"{{a: {w!r}}}"),
            refused_as_a_whole.texts,
        ),
    )


ALL_ZERO_WEIGHTS = Invalid(  # nothing would train
    st.dictionaries(NAMES, st.sampled_from([0, 0.0]), max_size=3),
    st.sampled_from(["{}", "{a: 0}", "{a: 0, b: 0.0}"]),
)
NOTHING = Invalid(st.nothing(), st.nothing())
FROZEN_GROUPS = Invalid(
    st.one_of(
        st.integers(),
        st.floats(),
        st.booleans(),
        DICTS,
        BLANK,
        st.lists(st.integers() | st.none() | BLANK | LISTS, min_size=1, max_size=3),
    ),
    st.sampled_from(["5", "1.5", "true", "{a: 1}", "[1]", "['']", "[' ']", "''", "[[a]]"]),
)
NULL_TEXTS = ("null", "~", "")  # YAML's null: allowed where a key may be unset
_OUTSIDE_FRACTION = st.one_of(_outside(Bounds(0, 1)), NON_FINITE)
OPTIONAL_FRACTION = Invalid(  # null or a number in [0, 1]
    st.one_of(st.text(), LISTS, DICTS, st.booleans(), _OUTSIDE_FRACTION),
    st.one_of(
        NOT_FLOAT_TEXTS.filter(lambda text: text.strip().lower() not in NULL_TEXTS),
        _as_text(_OUTSIDE_FRACTION),
    ),
)
STRUCTURED_KEYS: dict[str, Invalid] = {
    "transfer_initial_eps": OPTIONAL_FRACTION,
    "tasks": TASKS,
    "task_weights": _weights_key(_negative_floats(), ALL_ZERO_WEIGHTS),
    "frozen_groups": FROZEN_GROUPS,
    "env_imports": FROZEN_GROUPS,  # a list of module names: the same refusals
    "meta_tasks": TASKS,
    "loggers": Invalid(
        st.one_of(FROZEN_GROUPS.values, st.just(["tensorboard"]), st.just(["csv", "wandbb"])),
        st.one_of(FROZEN_GROUPS.texts, st.sampled_from(["[tensorboard]", "[csv, tb]", "[]"])),
    ),
    "lr_scales": _weights_key(st.floats(max_value=0.0, allow_nan=False), NOTHING),
}


def _from_declaration(key: Key) -> Invalid | None:
    """The refusals of a number, bool or named choice, from its declaration (else None)."""
    if key.convert is convert.to_int:
        high = key.bounds.high
        return _int_key(int(key.bounds.low), None if high is None else int(high))
    if key.convert is convert.to_float:
        return _float_key(_outside(key.bounds))
    if key.convert is convert.to_bool:
        return BOOL
    if key.convert is convert.to_switch:
        return SWITCH
    if key.convert is convert.to_str and key.choices:
        return _choices_key(key.choices)
    return None


TABLES = (FREE_TEXT_KEYS, STRUCTURED_KEYS)
DECLARED = {name: fuzz for name, key in KEYS.items() if (fuzz := _from_declaration(key))}
INVALID: dict[str, Invalid] = {**DECLARED, **FREE_TEXT_KEYS, **STRUCTURED_KEYS}


def test_every_key_gets_refusals_once():
    assert len(DECLARED) + sum(len(table) for table in TABLES) == len(INVALID)
    assert sorted(INVALID) == sorted(Config.keys())


def test_numbers_are_bounded_and_names_have_choices_in_their_declarations():
    for name in DECLARED:
        key = KEYS[name]
        if key.convert in (convert.to_int, convert.to_float):
            assert key.bounds is not None and key.bounds.low is not None, name


def _assert_refused(key: str, build) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert key in str(info.value)


@pytest.mark.parametrize("key", Config.keys())
@FUZZ
@given(data=st.data())
def test_invalid_value_is_refused_naming_the_key(key, data):
    value = data.draw(INVALID[key].values, label=key)
    _assert_refused(key, lambda: Config.from_dict({key: value}))


@pytest.mark.parametrize("key", Config.keys())
@FUZZ
@given(data=st.data())
def test_invalid_override_text_is_refused_naming_the_key(key, data):
    text = data.draw(INVALID[key].texts, label=key)
    _assert_refused(key, lambda: Config().with_overrides([f"{key}={text}"]))


# --- any text: --set and config files fail with ConfigError or not at all -----------------------

YAMLISH = st.text(alphabet="[]{}:,&*!<>|-'\"#% \n\tabcxyz0123456789.eE+_~@`?=", max_size=60)


@settings(FUZZ, max_examples=300)
@given(text=st.one_of(YAMLISH, st.text(max_size=40)))
@example(text="!!python/object/apply:os.system [true]")
@example(text="!!timestamp 2024-13-45")
@example(text="!!int 0x")
@example(text="&a [*a]")
@example(text="{<<: 5}")
@example(text="[" * 5000)
def test_any_override_text_is_accepted_or_a_config_error(text):
    for key in ("seed", "tasks", "task_weights", "frozen_groups"):
        with contextlib.suppress(ConfigError):
            Config().with_overrides([f"{key}={text}"])


@pytest.fixture(scope="module")
def yaml_path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "config.yaml"


@settings(FUZZ, max_examples=200)
@given(body=YAMLISH)
def test_any_config_file_is_accepted_or_a_config_error(yaml_path, body):
    yaml_path.write_text(f"tasks:\n  - id: gym:CartPole-v1\n    kwargs: {body}\n")
    with contextlib.suppress(ConfigError):
        Config.from_yaml(yaml_path)


# --- cross-key rules: any pair that breaks one is refused naming both keys ----------------------

UNIT_FLOATS = st.floats(min_value=0.0, max_value=1.0)
TEMPERATURES = st.floats(min_value=1e-6, max_value=1e6)


def _assert_names_all(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(changes)
    assert all(f"{key} ({changes[key]!r})" in str(info.value) for key in changes)


@FUZZ
@given(pair=st.tuples(UNIT_FLOATS, UNIT_FLOATS).filter(lambda p: p[0] < p[1]))
@example(pair=(0.0, 1.0))
@example(pair=(0.5, 0.5000001))
def test_rising_epsilon_is_refused(pair):
    _assert_names_all({"exploration_initial_eps": pair[0], "exploration_final_eps": pair[1]})


@FUZZ
@given(pair=st.tuples(TEMPERATURES, TEMPERATURES).filter(lambda p: p[0] < p[1]))
@example(pair=(0.1, 1.0))
def test_rising_routing_temperature_is_refused(pair):
    _assert_names_all({"routing_tau_start": pair[0], "routing_tau_end": pair[1]})


@FUZZ
@given(buffer_size=st.integers(1, 10_000), extra=st.integers(0, 100))
@example(buffer_size=1, extra=0)
@example(buffer_size=5, extra=0)
def test_n_step_not_below_the_buffer_is_refused(buffer_size, extra):
    with pytest.raises(ConfigError) as info:
        Config(buffer_size=buffer_size, batch_size=1, n_step=buffer_size + extra)
    assert f"n_step ({buffer_size + extra}) >= buffer_size ({buffer_size})" in str(info.value)


@FUZZ
@given(buffer_size=st.integers(2, 10**6), extra=st.integers(1, 10**8))
@example(buffer_size=100_000, extra=49_900_000)
def test_batch_above_the_buffer_is_refused(buffer_size, extra):
    with pytest.raises(ConfigError) as info:
        Config(buffer_size=buffer_size, batch_size=buffer_size + extra)
    message = str(info.value)
    assert f"batch_size ({buffer_size + extra}) > buffer_size ({buffer_size})" in message


@FUZZ
@given(
    starts=st.integers(0, 10**6),
    train_freq=st.integers(1, 100),
    n_envs=st.integers(1, MAX_N_ENVS),
    short=st.integers(1, 10**6),
)
@example(starts=0, train_freq=1, n_envs=2, short=1)
@example(starts=1000, train_freq=4, n_envs=1, short=1)
def test_budget_without_an_update_is_refused(starts, train_freq, n_envs, short):
    total = starts + train_freq * n_envs - short
    assume(total >= 1)
    changes = {
        "learning_starts": starts,
        "train_freq": train_freq,
        "n_envs": n_envs,
        "total_steps_per_task": total,
    }
    with pytest.raises(ConfigError, match="no update would ever run") as info:
        Config.from_dict(changes)
    assert all(f"{key} ({value})" in str(info.value) for key, value in changes.items())
