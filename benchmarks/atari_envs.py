"""Env steps/s of the env backends: Atari on ALE in process, ALE in worker processes and
EnvPool; MinAtar in process and in worker processes. No learning: random actions only.

Each setting builds `MultiTaskEnvs` for its tasks with `--n-envs` envs per task and the backend,
resets them, takes `WARMUP_STEPS` vector steps, then steps for `--seconds`; its figure is the
env steps of all its tasks over that time, the median over `--rounds` rounds (settings take
turns within a round). Worker processes and EnvPool threads: `--workers` per task (default one
per core, at most `n_envs`). Atari: each game alone, the suite's training options (sticky
actions 0.25, up to 30 no-op starts, reward clipping); MinAtar: the five games together, as the
trainer steps them. The ratio is to the in-process ALE (or MinAtar) setting of the same round.

Also measured: one pipe round trip of one step's observations between two processes (what a
worker sends back per step), to say whether shared memory for observations would pay.

    python benchmarks/atari_envs.py [--seconds 3] [--n-envs 1 8] [--workers N] [--rounds 1]
        [--atari-games Tetris MsPacman] [--minatar] [--out benchmarks/results/atari-envs-cpu.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import speed_common as common

from multiq import make_taskset
from multiq.envs.backends import EnvSettings
from multiq.envs.multi import MultiTaskEnvs
from multiq.envs.pool import envpool_installed

WARMUP_STEPS = 5
PIPE_ROUND_TRIPS = 200
ECHO = """import sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
while (message := conn.recv()) is not None:
    conn.send(message)
"""


@dataclass(frozen=True)
class Setting:
    """One row: a suite's tasks, envs per task, backend; `base` names the row it is compared to."""

    suite: str
    tasks: str
    n_envs: int
    backend: str

    @property
    def label(self) -> str:
        engine = "EnvPool" if self.backend == "envpool" else self.suite.split()[0]
        where = {"inprocess": "in process", "subprocess": "worker processes"}.get(self.backend)
        return f"{engine} {where}" if where else engine

    @property
    def base(self) -> Setting:
        return Setting(self.suite, self.tasks, self.n_envs, "inprocess")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed stepping per setting")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--atari-games", nargs="*", default=["Tetris", "MsPacman"])
    parser.add_argument("--minatar", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/atari-envs-cpu.md"))
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> list[Setting]:
    atari_backends = ["inprocess", "subprocess", *(["envpool"] if envpool_installed() else [])]
    rows = [
        Setting(f"ALE {game}", f"atari:{game}", n_envs, backend)
        for game in args.atari_games
        for n_envs in args.n_envs
        for backend in atari_backends
    ]
    if args.minatar:
        rows += [
            Setting("MinAtar (5 games)", "minatar", n_envs, backend)
            for n_envs in args.n_envs
            for backend in ("inprocess", "subprocess")
        ]
    return rows


def env_steps_per_s(setting: Setting, args: argparse.Namespace) -> float:
    """Random-action env steps of all the setting's tasks per second."""
    tasks = make_taskset(setting.tasks)
    workers = max(1, min(args.workers, setting.n_envs))
    envs = MultiTaskEnvs(tasks, setting.n_envs, 0, settings=EnvSettings(setting.backend, workers))
    rng = np.random.default_rng(0)
    try:
        envs.reset()
        steps, started = -WARMUP_STEPS, 0.0
        while steps < 1 or time.perf_counter() - started < args.seconds:
            if steps == 0:
                started = time.perf_counter()
            envs.step({t.name: rng.integers(0, t.num_actions, setting.n_envs) for t in tasks})
            steps += 1
        elapsed = time.perf_counter() - started
    finally:
        envs.close()
    return steps * setting.n_envs * len(tasks) / elapsed


def pipe_round_trip_us(n_envs: int) -> float:
    """Microseconds to send one step's Atari observations [n_envs, 4, 84, 84] uint8 to another
    process and back through a multiprocessing connection (as the workers' pipes do; a worker's
    reply carries them once: half of this)."""
    here, there = socket.socketpair()
    echo = subprocess.Popen(
        [sys.executable, "-c", ECHO, str(there.fileno())], pass_fds=[there.fileno()]
    )
    there.close()
    conn = Connection(here.detach())
    obs = np.zeros((n_envs, 4, 84, 84), dtype=np.uint8)
    conn.send(obs)
    conn.recv()
    started = time.perf_counter()
    for _ in range(PIPE_ROUND_TRIPS):
        conn.send(obs)
        conn.recv()
    elapsed = time.perf_counter() - started
    conn.send(None)
    echo.wait()
    conn.close()
    return elapsed / PIPE_ROUND_TRIPS * 1e6


def measure(args: argparse.Namespace) -> dict[Setting, list[float]]:
    figures: dict[Setting, list[float]] = {}
    for round_index in range(args.rounds):
        for setting in settings(args):
            sps = env_steps_per_s(setting, args)
            figures.setdefault(setting, []).append(sps)
            where = f"round {round_index} {setting.suite} n_envs={setting.n_envs} {setting.label}"
            print(f"{where}: {sps:,.0f} env steps/s", flush=True)
    return figures


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def render(
    args: argparse.Namespace, figures, pipes: dict[int, float], wall_s: float, load: str
) -> str:
    lines = [
        *common.header("Env backends: env steps/s, random actions", wall_s),
        f"CPU: {cpu_model()}  ",
        f"Load average at the start: {load} (the machine is shared: figures under load are "
        "low, and worker processes suffer most)",
        "",
        f"Workers (processes or EnvPool threads) per task: min(n_envs, {args.workers}); "
        f"{args.seconds:g} s of stepping per setting, median over {args.rounds} round(s). "
        "Atari: one game per row with the suite's training options; MinAtar: the five games "
        "stepped together. Ratio: to the in-process row of the same suite and n_envs.",
        "",
        "| suite | n_envs per task | backend | env steps/s | ratio to in process |",
        "|---|---:|---|---:|---:|",
    ]
    for setting, values in figures.items():
        base = figures[setting.base]
        ratio = common.median([v / b for v, b in zip(values, base, strict=True)])
        lines.append(
            f"| {setting.suite} | {setting.n_envs} | {setting.label} | "
            f"{common.median(values):,.0f} | {ratio:.2f} |"
        )
    lines += ["", "Pipe round trip of one step's Atari observations (pickled numpy):", ""]
    lines += [
        f"- {n} envs ({n * 4 * 84 * 84 / 1024:.0f} KiB): {us:,.0f} µs" for n, us in pipes.items()
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started, load = time.monotonic(), ", ".join(f"{x:.2f}" for x in os.getloadavg())
    figures = measure(args)
    pipes = {n: pipe_round_trip_us(n) for n in args.n_envs}
    common.publish(render(args, figures, pipes, time.monotonic() - started, load), args.out)


if __name__ == "__main__":
    main()
