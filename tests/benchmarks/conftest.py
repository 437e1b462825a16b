"""Loading benchmark scripts (they live in benchmarks/, outside the package) for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str, patch: pytest.MonkeyPatch) -> ModuleType:
    """Executes benchmarks/<name>.py as module `name`, registered in sys.modules via `patch`
    (dataclasses look their module up while the class is built)."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    patch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def load_benchmarks(**scripts: str) -> SimpleNamespace:
    """The scripts (attribute name -> script name) and transfer_common as `common`, loaded with
    benchmarks/ on sys.path for a moment: leaving the context unregisters the modules and
    restores sys.path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH_DIR))
        common = _load("transfer_common", patch)
        loaded = {attribute: _load(name, patch) for attribute, name in scripts.items()}
    return SimpleNamespace(common=common, **loaded)
