"""What the MinAtar-paper benchmarks share: resumable `multiq train` children of
`configs/minatar-paper.yaml`, the copy of what their reports read, and the measures.

A run lives in its own folder under a git-ignored run root (checkpoint, replay and all); when its
child ends (finished or stopped), the files a report reads (`REPORT_FILES`) are copied to its
folder under the results root, in the repository. A stopped run resumes exactly
(`multiq train --resume`) from its run folder. `run_jobs` runs the children `workers` at a time,
each with one torch thread, stops them with SIGINT at a deadline (each saves a checkpoint and
exits) and starts no further run once one was stopped by a signal.

The measures read a run's metrics.csv: the evaluation return (`task/<game>/return`, epsilon
0.01) and the paper's own measure (`training_returns`: the logged running training return,
epsilon 0.1, averaged over the last `TRAINING_WINDOW_STEPS` env steps per game).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiq.config import Config

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "minatar-paper.yaml"
REPORT_FILES = ("config.yaml", "metrics.csv", "run.json", "curves.png", "summary.json", "model.pt")
INTERRUPTED_EXIT = 130  # `multiq train` stopped by SIGINT/SIGTERM, its checkpoint saved
STOP_GRACE_S = 600  # how long a child stopped with SIGINT may take to write its checkpoint
TRAINING_WINDOW_STEPS = 50_000  # env steps per game at the end whose training returns count
QUIET = ("progress_bar=false", "tensorboard=false")  # every child's own `--set`s


@dataclass(frozen=True)
class Job:
    """One child to run.

    Attributes:
        label: how progress lines name the run (``shared seed 0``).
        argv: the child's command line.
        folder: the run folder (under the run root).
        result: the copy of what the report reads (under the results root); its log sits
            beside it as ``<result>.log``.
    """

    label: str
    argv: list[str]
    folder: Path
    result: Path


def paper_config() -> Config:
    """`configs/minatar-paper.yaml` as a validated `multiq.config.Config`."""
    from multiq.config import Config

    return Config.from_yaml(CONFIG)


def machine() -> str:
    """The report header's line of when, where and how the benchmark ran."""
    return (
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}; command: "
        f"`python {shlex.join(sys.argv)}`\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs; each run one torch thread"
    )


def finished(folder: Path, steps: int) -> bool:
    """Whether `folder` holds a run finished at `steps` env steps per game or more."""
    summary = folder / "summary.json"
    if not summary.is_file() or not (folder / "model.pt").is_file():
        return False
    return json.loads(summary.read_text()).get("env_steps_per_task", 0) >= steps


def child_command(
    folder: Path, seed: int, steps: int, async_updates: str, sets: Sequence[str] = ()
) -> list[str]:
    """The `multiq train` child of the run folder `folder`: a resume where it holds a
    checkpoint, else a new run of the paper's config with the `--set` overrides `sets`."""
    multiq = [sys.executable, "-m", "multiq.cli", "train"]
    budget = ["--steps", str(steps), "--async-updates", async_updates, "--torch-threads", "1"]
    if (folder / "checkpoint.pt").is_file():
        return [*multiq, "--resume", str(folder), *budget]
    overrides = [word for item in (*QUIET, *sets) for word in ("--set", item)]
    return [*multiq, str(CONFIG), "--seed", str(seed), "--run-dir", str(folder), *budget,
            *overrides]  # fmt: skip


def publish(run: Path, result: Path) -> None:
    """Copies the report's files of the run folder `run` to `result`; a file the run no longer
    has leaves `result` too."""
    result.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, result / name)
        else:
            (result / name).unlink(missing_ok=True)


def wait_until(child: subprocess.Popen, deadline: float | None) -> int:
    """Waits for `child`; at `deadline` (monotonic seconds) stops it with SIGINT, after which
    multiq saves a checkpoint and exits. Returns its exit code."""
    try:
        return child.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)
        return child.wait(STOP_GRACE_S)


def run_jobs(jobs: Sequence[Job], workers: int, hours: float | None) -> None:
    """Runs `jobs` in order, `workers` at a time, each child's output appended to its log;
    publishes each run when its child ends. After `hours` (None: no limit) the children are
    stopped with SIGINT; once one is stopped by a signal, no further job starts."""
    deadline = None if hours is None else time.monotonic() + hours * 3600
    interrupted = threading.Event()

    def launch(job: Job) -> None:
        if interrupted.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return
        job.folder.parent.mkdir(parents=True, exist_ok=True)
        job.result.parent.mkdir(parents=True, exist_ok=True)
        with open(job.result.with_name(job.result.name + ".log"), "a") as log:
            child = subprocess.Popen(job.argv, stdout=log, stderr=log,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
            code = wait_until(child, deadline)
        if job.folder.is_dir():
            publish(job.folder, job.result)
        if code == INTERRUPTED_EXIT:
            interrupted.set()
        print(f"{job.label}: exit {code}", flush=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(launch, jobs))


def run_points(
    folder: Path, until: int | None = None
) -> dict[str, dict[str, list[tuple[int, float]]]] | None:
    """Measure (``eval``: the evaluation return, ``training``: the training episodes' running
    return) -> game -> [(env steps per game, value), ...] from a run's metrics.csv, the points
    at or before `until` (None: all); None without a metrics.csv."""
    from multiq.report.metrics import read_metrics
    from multiq.runio.layout import return_key, training_return_key

    if not (folder / "metrics.csv").is_file():
        return None
    series = read_metrics(folder)
    limit = math.inf if until is None else until
    keys = {"eval": return_key, "training": training_return_key}
    return {
        m: {g: [p for p in series.get(key(g), []) if p[0] <= limit] for g in GAMES}
        for m, key in keys.items()
    }


def latest_returns(folder: Path, until: int | None = None) -> tuple[int, dict[str, float]] | None:
    """(step, game -> return) of a run's latest evaluation at or before `until` (None: its
    last); None before the first."""
    points = (run_points(folder, until) or {}).get("eval")
    if not points or not all(points.values()):
        return None
    step = min(p[-1][0] for p in points.values())
    return step, {g: p[-1][1] for g, p in points.items()}


def training_returns(
    folder: Path, window: int, until: int | None = None
) -> tuple[int, dict[str, float]] | None:
    """(step, game -> the mean of the run's logged training-episode returns, each the mean of
    its last 20 epsilon-greedy episodes, over the `window` env steps per game up to `step`, its
    latest log at or before `until` (None: its last)); None without them."""
    points = (run_points(folder, until) or {}).get("training")
    if not points or not all(points.values()):
        return None
    end = min(p[-1][0] for p in points.values())
    means = {}
    for game, series_of_game in points.items():
        values = [v for step, v in series_of_game if end - window < step <= end]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return None
        means[game] = sum(values) / len(values)
    return end, means


def cell(values: list[float]) -> tuple[str, float, float]:
    """(``mean [low, high] (n=N)`` with a 95% bootstrap interval, mean, high); ``-`` and NaNs
    without values."""
    from multiq.report.stats import bootstrap_ci

    if not values:
        return "-", float("nan"), float("nan")
    mean, low, high = bootstrap_ci(values)
    return f"{mean:.2f} [{low:.2f}, {high:.2f}] (n={len(values)})", mean, high
