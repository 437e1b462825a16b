"""Task families: named generators of tasks with a train / held-out split fixed by a seed.

Entries (kwargs are the family's options):

- `family:<name>`: every task of the train split;
- `family:<name>:<split>`: every task of a split, `train` or `held-out`;
- `family:<name>:<split>:<n>`: the split's first n tasks;
- `family:<name>:<split>@<i>`: exactly the split's i-th task (from 0).

Tasks are named `<name>-t<i>` (train) and `<name>-h<i>` (held-out), e.g. `cartpole-physics-t3`,
unless an entry that selects one task gives a `name`. Each spec's `source` is
`{"id": "family:<name>:<split>@<i>", "name": ..., "kwargs": <all resolved options>}`.

Split rule: a family has a pool of `pool` tasks (option, default 64); the parameters of pool
task k are drawn from `np.random.default_rng(np.random.SeedSequence([seed, k]))` (option
`seed`, default 0). A permutation of the pool drawn from `np.random.default_rng(seed)` puts its
first `held_out` tasks (option, default 16) in the held-out split, in permutation order, and
the rest in the train split. So the splits are disjoint and reproducible, and a task's
parameters do not depend on how many tasks an entry asks for: `:train:8` is a prefix of
`:train:10`. New families are added by putting a `Family` into `FAMILIES`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multiq.errors import TaskError
from multiq.tasks import minatar, variations
from multiq.tasks.spec import TaskSpec

PREFIX = "family"
SPLITS = {"train": "t", "held-out": "h"}  # split -> the letter in its task names
COMMON_OPTIONS: dict[str, Any] = {"pool": 64, "held_out": 16, "seed": 0}
RAISE_HINTS = {  # split -> the options to change when it holds too few tasks
    "train": "raise the option `pool` (or lower `held_out`)",
    "held-out": "raise the option `held_out` (and `pool` if needed)",
}
GRAMMAR = "family:<name>[:<split>[:<n> | @<i>]]"
ENTRY_PATTERN = re.compile(
    r"^(?P<family>[^:@]+)(?::(?P<split>[^:@]+)(?::(?P<count>[^:@]*)|@(?P<index>[^:@]*))?)?$"
)


@dataclass(frozen=True)
class Bound:
    """The values an option may take: `(low, high]`, or `[low, high]` when `low_open` is False."""

    low: float
    high: float
    low_open: bool = True

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low}, {self.high}]"


@dataclass(frozen=True)
class Family:
    """A named generator of tasks.

    Attributes:
        name: the name in entries (`family:<name>`) and task names.
        summary: one line for `multiq tasks`.
        options: defaults of the family's own options (COMMON_OPTIONS come on top); a
            `[low, high]` list is a range to draw from.
        sample: `sample(rng, options)` draws one task's parameters (plain Python values).
        build: `build(params, name, options)` returns that task's TaskSpec (without `source`).
        bounds: option -> the values it (or both ends of its range) may take.
        choices: option -> the strings it may be.
    """

    name: str
    summary: str
    options: Mapping[str, Any]
    sample: Callable[[np.random.Generator, Mapping[str, Any]], dict[str, Any]]
    build: Callable[[dict[str, Any], str, Mapping[str, Any]], TaskSpec]
    bounds: Mapping[str, Bound] = field(default_factory=dict)
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        """Every option with its default."""
        return {**COMMON_OPTIONS, **copy.deepcopy(dict(self.options))}


FAMILIES: dict[str, Family] = {
    "cartpole-physics": Family(
        "cartpole-physics",
        "CartPole-v1 with pole half-length, pole mass, cart mass and force drawn uniformly",
        variations.CARTPOLE_RANGES,
        functools.partial(variations.sample_uniform, tuple(variations.CARTPOLE_RANGES)),
        functools.partial(variations.build_physics, "CartPole-v1", variations.derive_cartpole),
        bounds={
            "length": Bound(0.0, 5.0),
            "masspole": Bound(0.0, 10.0),
            "masscart": Bound(0.0, 10.0),
            "force_mag": Bound(0.0, 100.0),
        },
    ),
    "acrobot-physics": Family(
        "acrobot-physics",
        "Acrobot-v1 with link lengths and masses drawn uniformly (centres of mass mid-link)",
        variations.ACROBOT_RANGES,
        functools.partial(variations.sample_uniform, tuple(variations.ACROBOT_RANGES)),
        functools.partial(variations.build_physics, "Acrobot-v1", variations.derive_acrobot),
        bounds={
            "LINK_LENGTH_1": Bound(0.0, 5.0),
            "LINK_LENGTH_2": Bound(0.0, 5.0),
            "LINK_MASS_1": Bound(0.0, 10.0),
            "LINK_MASS_2": Bound(0.0, 10.0),
        },
    ),
    "minatar-variants": Family(
        "minatar-variants",
        "one MinAtar game with sticky-action probability and difficulty ramping drawn per task",
        variations.MINATAR_OPTIONS,
        variations.sample_minatar,
        variations.build_minatar,
        bounds={
            "sticky_action_prob": Bound(0.0, 1.0, low_open=False),
            "ramping_prob": Bound(0.0, 1.0, low_open=False),
        },
        choices={"game": minatar.GAMES},
    ),
    "minigrid": Family(
        "minigrid",
        "one MiniGrid env, each task one fixed layout (reset seed drawn per task)",
        variations.MINIGRID_OPTIONS,
        variations.sample_layout,
        variations.build_layout,
    ),
}


def check_family(name: str) -> Family:
    """The family called `name`.

    Raises:
        TaskError: if there is none, with close matches and the list of families.
    """
    if name in FAMILIES:
        return FAMILIES[name]
    raise TaskError(
        f"unknown task family {name!r};{_did_you_mean(name, list(FAMILIES))} "
        f"families: {', '.join(FAMILIES)}"
    )


def family_tasks(
    family: str, split: str, count: int | None = None, options: Mapping[str, Any] | None = None
) -> list[TaskSpec]:
    """The first `count` tasks (all for None) of a family's split.

    Args:
        family: a key of FAMILIES.
        split: `train` or `held-out`.
        count: how many tasks, from the split's start; None for all.
        options: the family's options (defaults for those not given).

    Returns:
        The TaskSpecs, with `source` entries that rebuild them.

    Raises:
        TaskError: for an unknown family or split, bad options, or a count the split lacks.
    """
    entry = f"{PREFIX}:{family}:{split}" + ("" if count is None else f":{count}")
    return build_entry(entry.partition(":")[2], None, options or {}, entry)


def family_params(
    family: str, split: str, options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The parameter sets of a family's split, in task order.

    Raises:
        TaskError: for an unknown family or split, or bad options.
    """
    found = check_family(family)
    _check_split(split, f"{PREFIX}:{family}:{split}")
    resolved = resolve_options(found, options or {})
    return [pool_params(found, resolved, k) for k in split_indices(resolved)[split]]


def build_entry(
    member: str, name: str | None, kwargs: Mapping[str, Any], entry: str
) -> list[TaskSpec]:
    """Builds the tasks of the entry `family:<member>` (see the module docstring).

    Args:
        member: the entry after `family:`, e.g. `cartpole-physics:train:8`.
        name: the task name, allowed only when the entry selects one task.
        kwargs: the family's options.
        entry: the whole entry id, for messages.

    Returns:
        The TaskSpecs, each with the `source` entry that rebuilds exactly it.

    Raises:
        TaskError: if the entry or its options are malformed or ask for more than a split holds.
    """
    found, split, count, index = _parse(member, entry)
    options = resolve_options(found, kwargs)
    positions = _positions(found, split, options, count, index, entry)
    if name is not None and len(positions) > 1:
        raise TaskError(f"task entry {entry!r} has several tasks and cannot take one `name`")
    pool_indices = split_indices(options)[split]
    return [_build_task(found, split, p, pool_indices[p], options, name) for p in positions]


def resolve_options(family: Family, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The family's defaults updated with `kwargs`, checked; ranges become `[low, high]` lists.

    Raises:
        TaskError: for an unknown option, a wrong type, or a value outside its bounds.
    """
    defaults = family.defaults
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        hint = _did_you_mean(unknown[0], list(defaults))
        raise TaskError(
            f"unknown option(s) {', '.join(unknown)} for family {family.name!r};{hint} "
            f"valid options: {', '.join(defaults)}"
        )
    for key, value in kwargs.items():
        _check_type(family.name, key, value, defaults[key])
    options = {**defaults, **{k: _plain(v) for k, v in kwargs.items()}}
    _check_pool(family.name, options)
    for key, bound in family.bounds.items():
        _check_bound(family.name, key, options[key], bound)
    for key, allowed in family.choices.items():
        _check_choice(family.name, key, options[key], allowed)
    return options


def split_indices(options: Mapping[str, Any]) -> dict[str, list[int]]:
    """The pool indices of each split, in task order (see the split rule above)."""
    order = np.random.default_rng(options["seed"]).permutation(options["pool"]).tolist()
    held_out = options["held_out"]
    return {"train": order[held_out:], "held-out": order[:held_out]}


def pool_params(family: Family, options: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The parameters of pool task `index`, drawn from its own seed sequence."""
    rng = np.random.default_rng(np.random.SeedSequence([options["seed"], index]))
    return family.sample(rng, options)


def describe_families() -> list[str]:
    """Lines for `multiq tasks`: the entry grammar, then each family with its options."""
    lines = [
        f"Task families: {GRAMMAR}; split train (the default) or held-out, n the first n tasks, "
        "i one task; kwargs are the family's options."
    ]
    for family in FAMILIES.values():
        options = ", ".join(f"{k}={v}" for k, v in family.defaults.items())
        lines += [f"  {family.name}: {family.summary}", f"    options: {options}"]
    return lines


def _build_task(
    family: Family,
    split: str,
    position: int,
    pool_index: int,
    options: dict[str, Any],
    name: str | None,
) -> TaskSpec:
    params = pool_params(family, options, pool_index)
    name = name or f"{family.name}-{SPLITS[split]}{position}"
    spec = family.build(params, name, copy.deepcopy(options))
    source = {
        "id": f"{PREFIX}:{family.name}:{split}@{position}",
        "name": spec.name,
        "kwargs": copy.deepcopy(options),
    }
    return dataclasses.replace(spec, source=source)


def _parse(member: str, entry: str) -> tuple[Family, str, int | None, int | None]:
    match = ENTRY_PATTERN.match(member)
    if match is None:
        raise TaskError(
            f"task entry {entry!r} does not match {GRAMMAR}; families: {', '.join(FAMILIES)}"
        )
    family = check_family(match["family"])
    split = match["split"] or "train"
    _check_split(split, entry)
    count = _number(match["count"], 1, "task count", entry)
    index = _number(match["index"], 0, "task index", entry)
    return family, split, count, index


def _number(text: str | None, minimum: int, what: str, entry: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < minimum:
        raise TaskError(
            f"the {what} in task entry {entry!r} must be an integer >= {minimum}, got {text!r}"
        )
    return int(text)


def _check_split(split: str, entry: str) -> None:
    if split not in SPLITS:
        raise TaskError(
            f"unknown split {split!r} in task entry {entry!r};{_did_you_mean(split, list(SPLITS))}"
            f" splits: {', '.join(SPLITS)}"
        )


def _positions(
    family: Family,
    split: str,
    options: Mapping[str, Any],
    count: int | None,
    index: int | None,
    entry: str,
) -> list[int]:
    size = len(split_indices(options)[split])
    positions = [index] if index is not None else list(range(size if count is None else count))
    if positions[-1] >= size:
        raise TaskError(
            f"task entry {entry!r} needs {positions[-1] + 1} task(s) of the {split} split of "
            f"family {family.name!r}, which holds {size} (pool={options['pool']}, "
            f"held_out={options['held_out']}); {RAISE_HINTS[split]}"
        )
    return positions


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_range(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_number, value))


# Default's type -> (check, what to call it in messages).
_TYPES: dict[type, tuple[Callable[[Any], bool], str]] = {
    list: (_is_range, "[low, high] list of two numbers"),
    bool: (lambda v: isinstance(v, bool), "bool"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "int"),
    float: (_is_number, "number"),
    str: (lambda v: isinstance(v, str), "string"),
}


def _check_type(family: str, key: str, value: Any, default: Any) -> None:
    check, kind = _TYPES[type(default)]
    if not check(value):
        raise TaskError(
            f"option {key!r} of family {family!r} must be a {kind} (default {default!r}), "
            f"got {value!r}"
        )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check_pool(family: str, options: Mapping[str, Any]) -> None:
    pool, held_out, seed = options["pool"], options["held_out"], options["seed"]
    if pool < 2:
        raise TaskError(
            f"option 'pool' of family {family!r} must be >= 2 so that neither split is empty, "
            f"got {pool}"
        )
    if not 1 <= held_out <= pool - 1:
        raise TaskError(
            f"option 'held_out' of family {family!r} must be in [1, pool - 1] = [1, {pool - 1}] "
            f"so that neither split is empty, got {held_out}"
        )
    if seed < 0:
        raise TaskError(f"option 'seed' of family {family!r} must be >= 0, got {seed}")


def _check_bound(family: str, key: str, value: Any, bound: Bound) -> None:
    ends = value if isinstance(value, list) else [value]
    bad = [end for end in ends if not bound.contains(end)]
    if bad:
        raise TaskError(
            f"option {key!r} of family {family!r} is {value!r}: {bad[0]!r} is outside the "
            f"allowed bounds {bound}"
        )
    if isinstance(value, list) and value[0] > value[1]:
        raise TaskError(
            f"option {key!r} of family {family!r} is {value!r}: a range needs low <= high"
        )


def _check_choice(family: str, key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise TaskError(
            f"option {key!r} of family {family!r} is {value!r};{_did_you_mean(value, allowed)} "
            f"it must be one of {', '.join(allowed)}"
        )


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3)
    return f" did you mean {' or '.join(map(repr, close))}?" if close else ""
