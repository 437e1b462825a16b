"""The suite registry and the parsing of task entries into a TaskSet.

A task entry is a string or a dict `{"id": <entry string>, "name": ..., "kwargs": {...}}`.
Entry strings are a suite name (`minatar`: all its tasks), a suite member (`minatar:Breakout`),
`gym:<id>` (any Gymnasium id), a registered Gymnasium id without the prefix (`CartPole-v1`,
`ALE/Pong-v5`: taken as `gym:<id>` when it names no suite), `family:<name>...` (tasks of a task
family, see `multiq.tasks.families`) or `factory:<module>:<name>` (a function or env class that
builds one env, called with the kwargs). For suites, kwargs are suite options; for `gym:<id>`
they go to `gym.make`; for families they are the family's options.

From Python, an entry (or an entry dict's `id`) may also be an env factory, an env class or an
env instance: `make_taskset([make_env, {"id": MyEnv, "kwargs": {"size": 5}, "name": "mine"},
gymnasium.make("CartPole-v1")])`; see `multiq.tasks.python_entries` for their names, what the
config records and which instances are taken.

New suites are added by putting a `Suite` into `SUITES`; prefixes that parse their own entries
live in `ENTRY_BUILDERS`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from multiq.errors import TaskError
from multiq.tasks import atari, classic, families, gym_ids, minatar, python_entries
from multiq.tasks.spec import TaskSet, TaskSpec

Builder = Callable[[str, "str | None", dict[str, Any]], TaskSpec]
Entries = str | Mapping[str, Any] | Sequence[Any] | Callable[..., Any] | gym.Env
"""Task entries: strings and dicts; from Python also factories, env classes and instances."""
ENTRY_KEYS = ("id", "name", "kwargs")


@dataclass(frozen=True)
class Suite:
    """A named family of tasks.

    Attributes:
        name: the entry prefix (`minatar` in `minatar:Breakout`).
        summary: one line for `multiq tasks`.
        build: `build(member, name, options)` returns the member's TaskSpec (without
            `source`); `name` None means the default name.
        members: the suite's tasks; empty for an open suite (`gym`), whose member is free-form
            and must be given.
        options: option defaults; None for an open suite, whose kwargs pass through unchecked.
    """

    name: str
    summary: str
    build: Builder
    members: tuple[str, ...] = ()
    options: Mapping[str, Any] | None = None

    def select(self, member: str, entry: str) -> list[str]:
        """The members an entry selects: all for an empty `member`, else the one named."""
        if not member:
            if not self.members:
                raise TaskError(f"task entry {entry!r} needs an id: {self.name}:<id>")
            return list(self.members)
        if not self.members:
            return [member]
        by_lower = {m.lower(): m for m in self.members}
        if member.lower() in by_lower:
            return [by_lower[member.lower()]]
        raise TaskError(
            f"unknown member {member!r} of suite {self.name!r} in task entry {entry!r};"
            f"{_did_you_mean(member, self.members)} its members are {', '.join(self.members)}"
        )

    def resolve(self, kwargs: Mapping[str, Any], entry: str) -> dict[str, Any]:
        """The suite options of an entry: defaults updated with `kwargs`, after checking them."""
        if self.options is None:
            return dict(kwargs)
        bad = sorted(set(kwargs) - set(self.options))
        if bad:
            valid = ", ".join(self.options) or "none (the suite has no options)"
            raise TaskError(
                f"unknown option(s) {', '.join(bad)} for suite {self.name!r} in task entry "
                f"{entry!r}; valid options: {valid}"
            )
        for key, value in kwargs.items():
            _check_type(self.name, key, value, self.options[key])
        return {**self.options, **kwargs}


SUITES: dict[str, Suite] = {
    "minatar": Suite("minatar", minatar.SUMMARY, minatar.build, minatar.GAMES, minatar.OPTIONS),
    "classic": Suite(
        "classic", classic.SUMMARY, classic.build, tuple(classic.ENV_IDS), classic.OPTIONS
    ),
    "atari": Suite("atari", atari.SUMMARY, atari.build, atari.GAMES, atari.OPTIONS),
    "gym": Suite(
        "gym",
        "any registered Gymnasium id, e.g. gym:CartPole-v1; kwargs go to gym.make",
        gym_ids.build_gym,
    ),
}


# Prefix -> `build(member, name, kwargs, entry_id)`, for entries that are not suite members.
ENTRY_BUILDERS: dict[str, Callable[[str, str | None, Mapping[str, Any], str], list[TaskSpec]]] = {
    families.PREFIX: families.build_entry,
    python_entries.FACTORY_PREFIX: python_entries.build_factory_entry,
    python_entries.PYTHON_PREFIX: python_entries.refuse_python_entry,
}


def make_taskset(entries: Entries) -> TaskSet:
    """Builds the TaskSet of the config's task entries.

    Args:
        entries: a comma-separated string of entry strings, one entry dict, or a list of
            entry strings and dicts `{"id": ..., "name": ..., "kwargs": {...}}`; from Python
            also env factories, env classes and env instances (alone, in the list, or as a
            dict's `id`).

    Returns:
        The tasks, in entry order; each spec's `source` is the entry dict that rebuilds it.

    Raises:
        TaskError: if an entry is malformed, unknown, or builds an unsupported task.
    """
    return TaskSet([spec for entry in _normalise(entries) for spec in _build_entry(entry)])


def task_entries(specs: Sequence[TaskSpec]) -> list[dict[str, Any]]:
    """The task entries (config `tasks`) that rebuild `specs`: their source entries."""
    return [
        dict(s.source) if s.source else {"id": f"gym:{s.env_id}", "name": s.name} for s in specs
    ]


def describe_suites() -> str:
    """A listing of every suite and task family, with options and tasks.

    Each suite task shows its env id, observation and actions; families show their options.

    Returns:
        Multi-line text for `multiq tasks`.
    """
    lines = [
        "Task entries: <suite> (all its tasks), <suite>:<Member> (one task), gym:<id> or a "
        "registered Gymnasium id, factory:<module>:<name>."
    ]
    for suite in SUITES.values():
        lines += ["", f"{suite.name}: {suite.summary}"]
        if suite.options is not None:
            options = ", ".join(f"{k}={v}" for k, v in suite.options.items()) or "none"
            lines.append(f"  options: {options}")
        lines += [_describe_task(suite, member) for member in suite.members]
    lines += ["", *families.describe_families()]
    return "\n".join(lines)


def _describe_task(suite: Suite, member: str) -> str:
    try:
        spec = suite.build(member, None, dict(suite.options or {}))
    except TaskError as exc:
        return f"  {member:<14} unavailable: {exc}"
    obs = f"obs {spec.obs_shape} {spec.obs_dtype}"
    return f"  {member:<14} {spec.env_id:<26} {obs:<24} {spec.num_actions} actions"


def _build_entry(entry: dict[str, Any]) -> list[TaskSpec]:
    entry_id, name = entry["id"], entry["name"]
    if not isinstance(entry_id, str):  # a factory or an env class
        return [python_entries.build_factory(entry_id, name, entry["kwargs"])]
    prefix, _, member = entry_id.partition(":")
    builder = ENTRY_BUILDERS.get(prefix.strip().lower())
    if builder is not None:
        return builder(member.strip(), name, entry["kwargs"], entry_id)
    suite = SUITES.get(prefix.strip().lower())
    if suite is None and gym_ids.is_bare_id(entry_id):
        return _build_entry({**entry, "id": f"gym:{entry_id}"})
    if suite is None:
        raise TaskError(_unknown_entry_message(entry_id))
    members = suite.select(member.strip(), entry_id)
    if name is not None and len(members) > 1:
        raise TaskError(f"task entry {entry_id!r} has several tasks and cannot take one `name`")
    options = suite.resolve(entry["kwargs"], entry_id)
    specs = []
    for one in members:
        spec = suite.build(one, name, copy.deepcopy(options))
        source = {"id": f"{suite.name}:{one}", "name": spec.name, "kwargs": options}
        specs.append(dataclasses.replace(spec, source=copy.deepcopy(source)))
    return specs


def _normalise(entries: Entries) -> list[dict[str, Any]]:
    if isinstance(entries, str | Mapping) or python_entries.is_python_object(entries):
        entries = [entries]
    if not isinstance(entries, Sequence):
        raise TaskError(f"tasks must be a string or a list of entries, got {entries!r}")
    normalised = []
    for item in entries:
        if isinstance(item, str):
            normalised += [_entry(part.strip()) for part in item.split(",") if part.strip()]
        elif isinstance(item, Mapping):
            normalised.append(_entry_from_dict(item))
        elif python_entries.is_python_object(item):
            normalised.append(python_entries.object_entry(item, None, {}))
        else:
            raise TaskError(
                f"a task entry must be a string or a dict, got {item!r}; from Python it may also "
                "be an env factory, an env class or a gymnasium.Env"
            )
    return normalised


def _entry(entry_id: Any, name: str | None = None, kwargs: Any = None) -> dict[str, Any]:
    if name is not None and (not isinstance(name, str) or not name):
        raise TaskError(f"task entry {entry_id!r}: `name` must be a non-empty string, got {name!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TaskError(f"task entry {entry_id!r}: `kwargs` must be a dict, got {kwargs!r}")
    return {"id": entry_id, "name": name, "kwargs": dict(kwargs or {})}


def _entry_from_dict(item: Mapping[str, Any]) -> dict[str, Any]:
    bad = sorted(set(item) - set(ENTRY_KEYS))
    entry_id: Any = item.get("id")
    python_id = python_entries.is_python_object(entry_id)
    if bad or not (isinstance(entry_id, str) or python_id):
        raise TaskError(
            f"a task entry dict needs a string `id` (from Python also an env factory, class or "
            f"instance) and may have `name` and `kwargs`, got {dict(item)!r}"
        )
    if python_id:
        checked = _entry(entry_id, item.get("name"), item.get("kwargs"))
        return python_entries.object_entry(entry_id, checked["name"], checked["kwargs"])
    return _entry(entry_id.strip(), item.get("name"), item.get("kwargs"))


def _check_type(suite: str, key: str, value: Any, default: Any) -> None:
    expected: type | tuple[type, ...] = type(default)
    if isinstance(default, float):
        expected = (int, float)
    if isinstance(value, expected) and (isinstance(default, bool) or not isinstance(value, bool)):
        return
    raise TaskError(
        f"option {key!r} of suite {suite!r} must be a {type(default).__name__} "
        f"(default {default!r}), got {value!r}"
    )


def _unknown_entry_message(entry_id: str) -> str:
    suites = ", ".join(name for name, suite in SUITES.items() if suite.members)
    return (
        f"unknown task entry {entry_id!r};{_entry_hint(entry_id)} supported: a suite name "
        f"({suites}) for all its tasks, <suite>:<Member> for one task (see `multiq tasks`), "
        "a registered Gymnasium id (or gym:<id>, gym:<module>:<id>), family:<name> for a task "
        "family, or factory:<module>:<name> for a function or class that builds the env"
    )


def _entry_hint(entry_id: str) -> str:
    known_ids = gym_ids.all_ids()
    members = {f"{s.name}:{m}": m.lower() for s in SUITES.values() for m in s.members}
    matches = [full for full, member in members.items() if member == entry_id.lower()]
    if matches:
        return f" did you mean {' or '.join(map(repr, matches))}?"
    suite_hint = _did_you_mean(entry_id.partition(":")[0], [*SUITES, *ENTRY_BUILDERS])
    return suite_hint or _did_you_mean(entry_id, known_ids)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3)
    return f" did you mean {' or '.join(map(repr, close))}?" if close else ""
