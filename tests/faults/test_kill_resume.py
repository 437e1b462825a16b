"""Faults from outside, on `multiq` subprocesses: SIGINT, SIGTERM, kill -9, two runs at once.

Each stopped run must leave a checkpoint that `multiq train --resume` takes to the full budget.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from multiq.runio.layout import CHECKPOINT_FILE, LOCK_FILE, METRICS_FILE, SUMMARY_FILE

FAULTS_DIR = Path(__file__).parent
LAUNCH = "import sys, faulty_envs; from multiq.cli import main; sys.exit(main(sys.argv[1:]))"
SETTINGS = (
    "learning_starts=100", "buffer_size=2000", "eval_freq=0", "eval_episodes=2",
    "tensorboard=false", "progress_bar=false", "log_interval=100", "target_update_interval=100",
)  # fmt: skip
WAIT_S = 120


def start(args: list[str]) -> subprocess.Popen:
    """A `multiq` CLI subprocess (the faulty test envs registered), one torch thread."""
    env = {**os.environ, "PYTHONPATH": str(FAULTS_DIR), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def train_args(run_dir: Path, steps: int, *extra: str) -> list[str]:
    sets = [a for s in (*SETTINGS, *extra) for a in ("--set", s)]
    return [
        "train",
        "--tasks",
        "gym:CartPole-v1",
        "--steps",
        str(steps),
        "--run-dir",
        str(run_dir),
    ] + sets


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def training(run_dir: Path, past_step: int = 0):
    """True once metrics.csv has a row beyond `past_step` (the run is in its training loop)."""

    def check() -> bool:
        path = run_dir / METRICS_FILE
        if not path.is_file():
            return False
        rows = path.read_text().splitlines()[1:]
        return any(int(r.split(",")[0]) > past_step for r in rows if r[:1].isdigit())

    return check


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=WAIT_S)
    return process.returncode, stderr


def resume_to_the_end(run_dir: Path, steps: int) -> None:
    code, stderr = finish(start(["train", "--resume", str(run_dir)]))
    assert code == 0, stderr
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["env_steps_per_task"] == steps
    # wall time adds up over the sessions (it was 0 in mid-run checkpoints once: 1.7M steps/s)
    assert summary["wall_time_s"] > 0 and summary["env_steps_per_s"] < 50_000


@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_the_promised_resume_works(tmp_path, number, code):
    run_dir = tmp_path / "run"
    process = start(train_args(run_dir, 3_000))
    wait_for(training(run_dir, 200), "training")
    process.send_signal(number)
    returncode, stderr = finish(process)
    assert returncode == code, stderr
    name = signal.Signals(number).name
    assert f"stopped by {name} at env step" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    resume_to_the_end(run_dir, 3_000)


def test_kill_9_at_random_points_then_resume_reaches_the_budget(tmp_path):
    run_dir, steps, rng = tmp_path / "run", 1_500, np.random.default_rng(7)
    # checkpoints (with the replay) every 50 steps: many kills land during a write
    args = train_args(run_dir, steps, "checkpoint_freq=50", "save_replay=true")
    for attempt in range(3):
        process = start(args if attempt == 0 else ["train", "--resume", str(run_dir)])
        wait_for(lambda: (run_dir / CHECKPOINT_FILE).is_file(), "the first checkpoint")
        time.sleep(float(rng.uniform(0.5, 2.5)))
        process.kill()
        process.wait(timeout=WAIT_S)
        if process.returncode == 0:
            break  # it finished before the kill
    resume_to_the_end(run_dir, steps)
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


# Dies (SIGKILL) halfway through writing its third checkpoint.pt: the temp file is half written.
KILL_IN_WRITE = """
import os, signal, sys, faulty_envs
from multiq.runio import files as fileio
from multiq.cli import main
original, calls = fileio.atomic_write, []

def atomic_write(path, write):
    if os.path.basename(str(path)) == "checkpoint.pt":
        calls.append(path)
        if len(calls) == 3:
            def half(handle):
                handle.write(b"half a checkpoint")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return original(path, half)
    return original(path, write)

fileio.atomic_write = atomic_write
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    run_dir, steps = tmp_path / "run", 1_000
    args = train_args(run_dir, steps, "checkpoint_freq=200")
    env = {**os.environ, "PYTHONPATH": str(FAULTS_DIR), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_WRITE, *args], env=env, capture_output=True, timeout=WAIT_S
    )
    assert killed.returncode == -signal.SIGKILL
    leftovers = [p.name for p in run_dir.iterdir() if p.name.startswith(".checkpoint.pt.")]
    assert leftovers  # the half-written temp file
    resume_to_the_end(run_dir, steps)  # from the second checkpoint (step 200)
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_second_run_on_a_folder_in_use_is_refused_with_the_holders_pid(tmp_path):
    run_dir = tmp_path / "run"
    first = start(train_args(run_dir, 50_000))
    try:
        wait_for(lambda: (run_dir / CHECKPOINT_FILE).is_file(), "the first run")
        code, stderr = finish(start(train_args(run_dir, 1_000)))
        assert code == 2
        assert f"in use by process {first.pid}" in stderr and "Traceback" not in stderr
        assert (run_dir / LOCK_FILE).is_file()
    finally:
        first.terminate()
        finish(first)


def group_alive(group: int) -> bool:
    """True while a process of the process group is alive (zombies excepted)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def test_ctrl_c_with_async_updates_checkpoints_and_leaves_no_child(tmp_path):
    """Ctrl-C reaches the whole process group: the collector process ignores it, the training
    process checkpoints, stops the child and exits 130; the resume finishes."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(FAULTS_DIR), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *train_args(run_dir, 3_000, "async_updates=true")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    wait_for(training(run_dir, 200), "training")
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the group, child too
    returncode, stderr = finish(process)
    assert returncode == 130, stderr
    assert "stopped by SIGINT at env step" in stderr and "Traceback" not in stderr
    wait_for(lambda: not group_alive(process.pid), "the collector process to end")
    resume_to_the_end(run_dir, 3_000)
