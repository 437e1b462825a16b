"""Repository hygiene: no run state and no large file is tracked by git.

Run state (checkpoint.pt, replay.npz) belongs in run folders under runs/, which git ignores;
benchmarks/results/ keeps only what reports read and models a benchmark reuses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import multiq

REPO_ROOT = Path(multiq.__file__).resolve().parents[1]
RUN_STATE_FILES = {"checkpoint.pt", "replay.npz"}
MAX_TRACKED_BYTES = 10 * 1024 * 1024


def tracked_files() -> list[Path]:
    """The files git tracks in this checkout (skips the test outside a git checkout)."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [REPO_ROOT / name for name in listed.split("\0") if name]


def test_no_run_state_is_tracked() -> None:
    tracked = [p.relative_to(REPO_ROOT) for p in tracked_files() if p.name in RUN_STATE_FILES]
    assert not tracked, f"run state tracked by git (git rm --cached them): {tracked}"


def test_no_tracked_file_is_over_10_mb() -> None:
    large = [
        f"{p.relative_to(REPO_ROOT)} ({p.stat().st_size / 2**20:.1f} MiB)"
        for p in tracked_files()
        if p.is_file() and p.stat().st_size > MAX_TRACKED_BYTES
    ]
    assert not large, f"files over 10 MiB tracked by git: {large}"
