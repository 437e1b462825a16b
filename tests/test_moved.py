"""The 0.1 module paths: each imports its new module with a DeprecationWarning naming it."""

from __future__ import annotations

import importlib
import sys

import pytest

from multiq.moved import MOVED_MODULES


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_an_old_module_path_is_its_new_module_with_a_warning(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {new} in multiq 0\.2"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


@pytest.mark.parametrize(
    ("package", "name", "home"),
    [
        ("multiq.envs", "MultiTaskEnvs", "multiq.envs.multi"),
        ("multiq.replay", "MultiTaskReplay", "multiq.replay.buffers"),
        ("multiq.api", "CHECKPOINT_KEYS", "multiq.train.persistence"),
    ],
)
def test_an_old_attribute_is_forwarded_with_a_warning(package: str, name: str, home: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"{package}\.{name} moved to {home}\.{name}"):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(home), name)


@pytest.mark.parametrize("package", ["multiq.envs", "multiq.replay", "multiq.api"])
def test_an_unknown_attribute_is_still_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = importlib.import_module(package).no_such_name


def test_a_module_that_never_existed_is_not_found() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("multiq.no_such_module")
