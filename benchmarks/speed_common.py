"""What the speed benchmarks share: one `multiq train` child per setting, timed by its summary,
settings interleaved over rounds, a markdown header with the machine."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def multiq_command() -> list[str]:
    beside = Path(sys.executable).with_name("multiq")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "multiq.cli"]


def train_command(tasks: str, steps: int, run_dir: Path, sets: Sequence[str], *extra: str):
    """`multiq train` of `tasks` for `steps` env steps per task with `--set` overrides."""
    return [
        *multiq_command(), "train", "--tasks", tasks, "--steps", str(steps),
        "--run-dir", str(run_dir), *extra, *[a for s in sets for a in ("--set", s)],
    ]  # fmt: skip


def train_sps(command: Sequence[str], run_dir: Path) -> float:
    """Runs one `multiq train`; its env steps/s of all tasks together (summary.json: env steps
    over the training wall time)."""
    done = subprocess.run(list(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return float(summary["env_steps_per_s"])  # all tasks' env steps over the training time


def header(title: str, wall_s: float, device: str = "cpu") -> list[str]:
    """The report's title, command, machine, date and load lines."""
    return [
        f"# {title}",
        "",
        f"Command: `python {shlex.join(sys.argv)}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}, "
        f"device {device}  ",
        f"Date: {datetime.date.today().isoformat()}; {wall_s / 60:.1f} min in all  ",
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
    ]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def publish(report: str, path: Path) -> None:
    """Prints the report and writes it to `path`."""
    print(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report)
