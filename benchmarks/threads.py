"""Torch intra-op threads: env steps/s of the default run with 1 and 2 threads, quiet and loaded.

The default run (`multiq train`: the five MinAtar games, the built-in config) for
`--steps-per-game` env steps per game, once per `--threads` count, on a quiet machine and while
a second training run (the same command at one thread, in the background for the whole loaded
block) loads it, as when a user trains while another job runs. Settings take turns over
`--rounds` rounds; each figure is the median over rounds of a run's env steps/s (all games).
The ratio is to one thread in the same round and condition.

    python benchmarks/threads.py [--steps-per-game 10000] [--threads 1 2] [--rounds 2]
        [--out benchmarks/results/threads-cpu.md]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import speed_common as common

CONDITIONS = ("quiet", "loaded")
SETTINGS = ("eval_freq=0", "eval_episodes=2", "checkpoint_freq=0", "progress_bar=false",
            "tensorboard=false")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps-per-game", type=int, default=10_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/threads-cpu.md"))
    return parser.parse_args()


class Load:
    """A second training run in the background (one torch thread) while the block runs."""

    def __init__(self, folder: Path):
        self.command = common.train_command(
            "minatar", 10_000_000, folder, SETTINGS, "--torch-threads", "1"
        )
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Load:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        time.sleep(20)  # past its start-up, into its training loop
        return self

    def __exit__(self, *exc) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def one_run(args: argparse.Namespace, run_dir: Path, threads: int) -> float:
    command = common.train_command(
        "minatar", args.steps_per_game, run_dir, SETTINGS, "--torch-threads", str(threads)
    )
    return common.train_sps(command, run_dir)


def measure(args: argparse.Namespace, tmp: Path) -> dict[tuple[str, int], list[float]]:
    """(condition, threads) -> env steps/s of each round."""
    figures: dict[tuple[str, int], list[float]] = {}
    for round_index in range(args.rounds):
        for condition in CONDITIONS:
            load = Load(tmp / f"load-{round_index}") if condition == "loaded" else nullcontext()
            with load:
                for threads in args.threads:
                    sps = one_run(args, tmp / f"r{round_index}-{condition}-t{threads}", threads)
                    figures.setdefault((condition, threads), []).append(sps)
                    where = f"round {round_index} {condition} threads={threads}"
                    print(f"{where}: {sps:,.0f} env steps/s", flush=True)
    return figures


def render(args, figures, wall_s: float) -> str:
    lines = [
        *common.header("Torch threads: 1 vs 2, quiet and loaded (the default run)", wall_s),
        f"`multiq train` on the five MinAtar games with the built-in config, "
        f"{args.steps_per_game:,} env steps per game, `{' '.join(SETTINGS)}`; loaded: a second "
        f"such run (one thread) in the background. Median over {args.rounds} rounds in turn.",
        "",
        "| condition | torch threads | env steps/s (all games) | ratio to 1 thread |",
        "|---|---:|---:|---:|",
    ]
    for condition in CONDITIONS:
        base = figures[(condition, args.threads[0])]
        for threads in args.threads:
            values = figures[(condition, threads)]
            ratio = common.median([v / b for v, b in zip(values, base, strict=True)])
            lines.append(
                f"| {condition} | {threads} | {common.median(values):,.0f} | {ratio:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(args, Path(tmp))
    report = render(args, figures, time.monotonic() - started)
    common.publish(report, args.out)


if __name__ == "__main__":
    main()
