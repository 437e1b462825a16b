"""Task entries made of Python objects: env factories, env classes and env instances.

From Python (YAML keeps string entries), a task entry may also be
- an env factory: a callable that returns one `gymnasium.Env`, such as a module-level
  `make_env` or `lambda: gymnasium.make("CartPole-v1", max_episode_steps=200)`;
- an env class, such as `CartPoleEnv`; keyword arguments go in an entry dict,
  `{"id": MyEnv, "kwargs": {"size": 5}, "name": "mine"}` (as SB3's
  `make_vec_env(MyEnv, env_kwargs=...)`), or in `functools.partial(MyEnv, size=5)`;
- an env instance, such as `gymnasium.make("CartPole-v1")`. multiq needs several envs per task
  (`n_envs` to train, more to evaluate), so it makes new ones from the instance's `spec` and
  never steps or closes the instance: one made by `gymnasium.make` without further wrappers
  becomes the entry `gym:<id>` with the spec's kwargs (`render_mode` dropped: multiq's envs do
  not render); one whose wrappers Gymnasium can recreate is rebuilt by
  `gymnasium.make(env.spec)`. An instance without a spec (made by calling its class), with a
  wrapper Gymnasium cannot recreate, or a vector env is refused with what to pass instead.

A task's name is the entry's `name`, else the short id of its env's `spec` (`CartPole` of
`CartPole-v1`), else the class's or function's name (the env's class name for a lambda).

Configs record such a task as `factory:<module>:<qualname>` with its kwargs when the callable
imports by that path (a function or class at module level, not in a script run as
`__main__`) and the kwargs are plain data: `MultiTaskDQN.load`, `resume` and `multiq report`
rebuild it, and YAML may use that entry too. Otherwise (a lambda, a local function, kwargs
that are not plain data, a wrapped instance) the record is `python:<what it was>`: a saved
model still loads and predicts, and building its envs again needs the same factory passed
again (`MultiTaskDQN.load(path, tasks=...)`, `MultiTaskDQN.resume(run_dir, tasks=...)`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from multiq.config.convert import to_tasks
from multiq.errors import ConfigError, TaskError
from multiq.tasks.gym_ids import (
    adapt_observations,
    build_spec,
    default_name,
    import_env_modules,
    register_namespace,
)
from multiq.tasks.spec import TaskSpec

FACTORY_PREFIX = "factory"  # factory:<module>:<qualname>, rebuilt by importing it
PYTHON_PREFIX = "python"  # python:<what it was>, a record that cannot be rebuilt
DESCRIPTION_CHARS = 120
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class SpecFactory:
    """Makes new envs like an env instance: `gymnasium.make(spec)` (its wrappers included)."""

    spec: EnvSpec

    def __call__(self) -> gym.Env:
        return gym.make(self.spec)

    def __repr__(self) -> str:
        wrappers = ", ".join(w.name for w in self.spec.additional_wrappers)
        return f"gymnasium.make(<spec of {self.spec.id} wrapped in {wrappers}>)"


def is_python_object(item: Any) -> bool:
    """Whether a task entry (or an entry dict's `id`) is a Python object: a factory, an env
    class, an env instance or a vector env."""
    return callable(item) or isinstance(item, gym.Env | gym.vector.VectorEnv)


def holds_python_objects(entries: Any) -> bool:
    """Whether task entries hold Python objects, which a Config cannot store (it records
    what `make_taskset` built from them instead)."""
    items = entries if isinstance(entries, list | tuple) else [entries]
    return any(
        is_python_object(item) or (isinstance(item, Mapping) and is_python_object(item.get("id")))
        for item in items
    )


def object_entry(item: Any, name: str | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised entry `{"id", "name", "kwargs"}` of a Python object: a factory or class
    stays the `id`; an env instance becomes `gym:<id>` or a `SpecFactory`.

    Raises:
        TaskError: a vector env, or an instance that cannot be recreated (see the module).
    """
    if isinstance(item, gym.vector.VectorEnv):
        raise TaskError(
            f"task entry {type(item).__name__} is a vector env; multiq builds its own vector of "
            "n_envs envs per task: pass the env id (e.g. 'CartPole-v1'), the env class or a "
            "factory of one env such as `lambda: gymnasium.make(...)`"
        )
    if isinstance(item, gym.Env):
        return _instance_entry(item, name, kwargs)
    return {"id": item, "name": name, "kwargs": dict(kwargs)}


def _instance_entry(env: gym.Env, name: str | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    cls = type(env.unwrapped).__name__
    if kwargs:
        raise TaskError(
            f"task entry {cls} instance: an env instance takes no `kwargs`; pass its class "
            f"with them instead: {{'id': {cls}, 'kwargs': {dict(kwargs)!r}}}"
        )
    problem = _recreation_problem(env)
    if problem:
        env_id = _registered_id(env)
        the_id = f"the id {env_id!r}, " if env_id else ""
        raise TaskError(
            f"task entry {cls} instance: multiq builds several envs per task (n_envs to train, "
            f"more to evaluate), and this env cannot be recreated: {problem}; pass {the_id}the "
            f"class ({{'id': {cls}, 'kwargs': {{...}}}}) or a factory such as "
            "`lambda: gymnasium.make(...)` instead"
        )
    spec = env.spec
    assert spec is not None  # _recreation_problem says so otherwise
    spec = dataclasses.replace(
        spec, kwargs={k: v for k, v in spec.kwargs.items() if k != "render_mode"}
    )
    registered = _registered_kwargs(spec)
    if registered is not None:
        return {"id": f"gym:{spec.id}", "name": name, "kwargs": registered}
    return {"id": SpecFactory(spec), "name": name, "kwargs": {}}


def _recreation_problem(env: gym.Env) -> str | None:
    spec = env.spec
    if spec is None:
        return "it has no `spec` (it was not made by gymnasium.make)"
    stuck = [w.name for w in spec.additional_wrappers if w.kwargs is None]
    if stuck:
        return (
            f"its wrapper(s) {', '.join(stuck)} do not inherit from "
            "gymnasium.utils.RecordConstructorArgs"
        )
    return None


def _registered_id(env: gym.Env) -> str | None:
    """The id the env was made from, else the newest registered id of its class, else None."""
    if env.unwrapped.spec is not None:
        return env.unwrapped.spec.id
    cls = type(env.unwrapped)
    path = f"{cls.__module__}:{cls.__qualname__}"
    ids = sorted(i for i, s in gym.registry.items() if s.entry_point == path)
    return ids[-1] if ids else None


def _registered_kwargs(spec: EnvSpec) -> dict[str, Any] | None:
    """The `gym.make` kwargs that turn the registered id of `spec` into `spec`, or None when
    that id cannot: wrappers, another entry point, or kwargs that are not plain data."""
    register_namespace(spec.id)
    registered = gym.registry.get(spec.id)
    if registered is None or spec.additional_wrappers or not _plain(spec.kwargs):
        return None
    if registered.entry_point != spec.entry_point:
        return None
    changed = {k: v for k, v in spec.kwargs.items() if registered.kwargs.get(k, _MISSING) != v}
    if spec.max_episode_steps != registered.max_episode_steps:
        changed["max_episode_steps"] = spec.max_episode_steps
    return changed


def _plain(kwargs: Mapping[str, Any]) -> bool:
    """Whether `kwargs` are plain data a config can record."""
    try:
        to_tasks("kwargs", [{"id": "x", "kwargs": kwargs}])
    except (ConfigError, TypeError, ValueError):
        return False
    return True


def build_factory(
    factory: Callable[..., Any], name: str | None, kwargs: Mapping[str, Any]
) -> TaskSpec:
    """The TaskSpec of an env factory or class, with the `source` entry that records it.

    Args:
        factory: builds one env: `factory(**kwargs)`.
        name: the task name; None for the default (see the module).
        kwargs: keyword arguments for `factory`.

    Returns:
        The TaskSpec; its `make_env` calls `factory(**kwargs)` (the evaluation env is the
        same) and makes image observations channel-first.

    Raises:
        TaskError: the factory raises, returns no gymnasium.Env, or the spaces are unsupported.
    """
    kwargs = dict(kwargs)
    first = make_factory_env(factory, name or describe(factory), kwargs)
    base_spec = first.unwrapped.spec
    env_id = base_spec.id if base_spec is not None else describe(factory)
    name = name or _default_name(factory, first)
    make_env = functools.partial(make_factory_env, factory, name, kwargs)
    spec = build_spec(name, env_id, make_env, env=first)
    return dataclasses.replace(spec, source=recorded_entry(factory, name, kwargs))


def make_factory_env(
    factory: Callable[..., Any], name: str, kwargs: Mapping[str, Any], evaluation: bool = False
) -> gym.Env:
    """One env of a factory task: `factory(**kwargs)`, image observations made channel-first;
    the evaluation env is the same.

    Raises:
        TaskError: the factory raises or returns something other than a gymnasium.Env.
    """
    try:
        env = factory(**kwargs)
    except TaskError:
        raise
    except Exception as exc:  # any failure inside the user's factory
        raise TaskError(
            f"task {name!r}: its env factory {describe(factory)} raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(env, gym.Env):
        raise TaskError(
            f"task {name!r}: its env factory {describe(factory)} returned "
            f"{type(env).__name__}, not a gymnasium.Env; a factory returns one env (multiq "
            "builds the n_envs of a task by calling it several times)"
        )
    return adapt_observations(env)


def _default_name(factory: Callable[..., Any], env: gym.Env) -> str:
    spec = env.unwrapped.spec
    if spec is not None:
        return default_name(spec.id)
    target = factory.func if isinstance(factory, functools.partial) else factory
    own = getattr(target, "__name__", "")
    return own if own and not own.startswith("<") else type(env.unwrapped).__name__


def describe(factory: Any) -> str:
    """`module:qualname` of a factory (a partial's function), else its short repr."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    text = f"{module}:{qualname}" if module and qualname else repr(target)
    if target is not factory:
        text = f"functools.partial({text}, ...)"
    text = " ".join(text.split())
    return text if len(text) <= DESCRIPTION_CHARS else text[: DESCRIPTION_CHARS - 3] + "..."


def recorded_entry(
    factory: Callable[..., Any], name: str, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The entry a config records for a factory task: `factory:<module>:<qualname>` with its
    kwargs when that rebuilds it, else `python:<description>` (see the module)."""
    target, all_kwargs = factory, dict(kwargs)
    if isinstance(factory, functools.partial) and not factory.args:
        target, all_kwargs = factory.func, {**factory.keywords, **all_kwargs}
    path = import_path(target)
    if path is not None and _plain(all_kwargs):
        entry = {"id": f"{FACTORY_PREFIX}:{path}", "name": name, "kwargs": all_kwargs}
        return copy.deepcopy(entry)
    return {"id": f"{PYTHON_PREFIX}:{describe(factory)}", "name": name}


def import_path(target: Any) -> str | None:
    """`module:qualname` when importing it gives `target` back, else None."""
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    if "<" in qualname:  # a lambda or a local function
        return None
    try:
        found = _resolve(module, qualname)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is target else None


def _resolve(module: str, qualname: str) -> Any:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def build_factory_entry(
    member: str, name: str | None, kwargs: Mapping[str, Any], entry_id: str
) -> list[TaskSpec]:
    """The task of the entry `factory:<module>:<qualname>`: imports the factory and calls it
    with the entry's kwargs.

    Raises:
        TaskError: the entry is malformed, the module cannot be imported, it has no such
            callable, or the task cannot be built.
    """
    module, _, qualname = member.partition(":")
    if not module or not qualname:
        raise TaskError(
            f"task entry {entry_id!r} needs {FACTORY_PREFIX}:<module>:<name>, e.g. "
            f"{FACTORY_PREFIX}:my_pkg.envs:make_env (a function or env class at module level)"
        )
    import_env_modules([module])
    try:
        factory = _resolve(module, qualname)
    except AttributeError as exc:
        raise TaskError(
            f"task entry {entry_id!r}: module {module!r} has no {qualname!r} ({exc})"
        ) from exc
    if not callable(factory):
        raise TaskError(f"task entry {entry_id!r}: {module}:{qualname} is not callable")
    return [build_factory(factory, name, kwargs)]


def refuse_python_entry(
    member: str, name: str | None, kwargs: Mapping[str, Any], entry_id: str
) -> list[TaskSpec]:
    """Raises: a `python:` record cannot be rebuilt (the object it names is not importable)."""
    task = name or member
    raise TaskError(
        f"task {task!r} was built in Python from {member}, which its record {entry_id!r} "
        "cannot rebuild (a lambda, a local function, a script's function, kwargs that are not "
        "plain data, or a wrapped env instance): pass the same factory again, e.g. "
        f"MultiTaskDQN.load(path, tasks=[{{'id': make_env, 'name': {task!r}}}]) or "
        "MultiTaskDQN.resume(run_dir, tasks=[...]); a function or class at module level in an "
        f"importable module is recorded as {FACTORY_PREFIX}:<module>:<name> and rebuilds itself"
    )


def check_rebuildable(specs: Sequence[TaskSpec], run_dir: Any) -> None:
    """Raises before a resume trains when a task's env cannot be rebuilt from its record.

    Raises:
        TaskError: naming the tasks recorded as `python:...` and how to pass them again.
    """
    stuck = [s.name for s in specs if str(s.source.get("id", "")).startswith(f"{PYTHON_PREFIX}:")]
    if stuck:
        raise TaskError(
            f"task(s) {stuck} of {run_dir} were built in Python from a factory its config "
            f"cannot rebuild (recorded as {PYTHON_PREFIX}:...): resume from Python with the "
            f"same factories, MultiTaskDQN.resume({str(run_dir)!r}, tasks=[{{'id': make_env, "
            f"'name': {stuck[0]!r}}}, ...])"
        )
