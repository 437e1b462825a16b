"""Old module paths of 0.1, kept as aliases for one version (removed in 0.3).

`import multiq.rundir` still works in 0.2: the finder below imports the new module
(`multiq.runio.layout`), registers it under the old name too, and emits a `DeprecationWarning`
that names the new path. `multiq.envs` and `multiq.replay` became packages; their old attributes
are forwarded by `forward_attribute` from the packages' `__getattr__`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

MOVED_MODULES = {
    "multiq.config_help": "multiq.config.help",
    "multiq.defaults": "multiq.tasks.defaults",
    "multiq.task_envs": "multiq.envs.inprocess",
    "multiq.env_backends": "multiq.envs.backends",
    "multiq.env_workers": "multiq.envs.workers",
    "multiq.envpool_envs": "multiq.envs.pool",
    "multiq.replay_frames": "multiq.replay.frames",
    "multiq.rundir": "multiq.runio.layout",
    "multiq.fileio": "multiq.runio.files",
    "multiq.runfolder": "multiq.runio.folder",
    "multiq.tracking": "multiq.runio.tracking",
    "multiq.transfer": "multiq.recipes.transfer",
    "multiq.continual": "multiq.recipes.continual",
    "multiq.meta": "multiq.recipes.meta",
    "multiq.adapt": "multiq.recipes.adapt",
    "multiq.train.phase": "multiq.phases.phase",
    "multiq.train.state": "multiq.phases.state",
    "multiq.train.collector_choice": "multiq.collect.choice",
    "multiq.train.collector": "multiq.collect.sequential",
    "multiq.train.async_collector": "multiq.collect.child",
    "multiq.scale.collectors": "multiq.collect.ray_actors",
    "multiq.scale.cluster": "multiq.collect.cluster",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new} in multiq 0.2; the old name goes in 0.3",
        DeprecationWarning,
        stacklevel=3,
    )


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The new module is already executed."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of `MOVED_MODULES` and loads their new modules."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder on `sys.meta_path` once."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


def forward_attribute(package: str, module: str, name: str) -> Any:
    """An attribute of an old module that became `package`, read from its new `module`."""
    if name.startswith("__"):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    target = importlib.import_module(module)
    if not hasattr(target, name):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{package}.{name}", f"{module}.{name}")
    return getattr(target, name)
