"""Throughput vs Stable-Baselines3 on the five MinAtar games (CPU).

multiq trains Asterix, Breakout, Freeway, Seaquest and SpaceInvaders in one run; SB3 DQN trains
the same five games one after the other with the same per-game steps. Both use the MinAtar paper's
network, vanilla 1-step DQN and identical hyper-parameters. The figure reported is total env steps
per second (5 * steps-per-game / wall seconds of training) and the ratio multiq / SB3, for one
update per env step per task (train_freq=1) and one per four (train_freq=4). multiq runs in each
of `--modes`: ``sequential`` (`async_updates: false`: act, step, update in turn, with one torch
thread per core like SB3) and ``async`` (`async_updates: true`: a child process acts and steps
the envs on one core while the learner updates with the other cores' threads).

The default of 10,000 steps per game keeps the whole benchmark to a few minutes on two CPU cores;
longer runs converge to the same ratio (both sides spend nearly all their time in the steady
learning phase once past the first 1,000 warm-up steps).

    python benchmarks/throughput.py [--steps-per-game N] [--train-freqs 1 4]
        [--modes sequential async] [--device cpu|cuda|auto] [--seed S]
        [--out benchmarks/results/throughput.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from multiq.threads import usable_cores

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
SETTINGS = (
    "MinAtar/<Game>-v1 (minimal action sets); net: 3x3 conv 16 filters stride 1 no padding, ReLU "
    "-> Linear 128, ReLU -> Linear num_actions; vanilla DQN (no double Q, 1-step); batch 32 per "
    "task per update; buffer 100k per task; learning starts 1,000; hard target update every "
    "1,000; Adam lr 2.5e-4; gamma 0.99; max_grad_norm 10; exploration_fraction 0.1; final eps 0.01"
)


MODES = {"sequential": False, "async": True}  # --modes -> async_updates


@dataclass
class Row:
    """One train_freq setting's result: total env steps per second of SB3 and of multiq in
    each mode."""

    train_freq: int
    sb3: float
    multiq: dict[str, float]

    def ratio(self, mode: str) -> float:
        """multiq throughput in `mode` divided by SB3 throughput."""
        return self.multiq[mode] / self.sb3


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps-per-game", type=int, default=10_000)
    parser.add_argument("--train-freqs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES))
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="markdown result file")
    return parser.parse_args()


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda`` when a GPU is available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pin_threads() -> None:
    """Give torch one thread per usable core, identically before each library's run."""
    torch.set_num_threads(usable_cores())


def load_average() -> float:
    """The 1-minute load average, or NaN where the platform has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def warn_if_busy(load: float) -> None:
    """Warn when other processes already use the CPU: they distort both timings, SB3's most."""
    if load > 0.5:
        print(
            f"warning: 1-minute load average is {load:.2f} before the benchmark; other processes "
            "compete for the CPU and the figures will be unreliable",
            file=sys.stderr,
        )


def sb3_steps_per_sec(steps: int, train_freq: int, seed: int) -> float:
    """Train SB3 DQN on the five games one after another; return total env steps per second."""
    # imported here: async_updates' child process imports this script again (spawn), and SB3
    # would add 2 s to its start that no multiq run pays
    from sb3_minatar import run_sb3

    seconds = 0.0
    for game in GAMES:
        pin_threads()
        seconds += run_sb3(game, steps, train_freq, seed)
    return len(GAMES) * steps / seconds


def multiq_steps_per_sec(
    steps: int, train_freq: int, seed: int, device: str, mode: str = "sequential"
) -> float:
    """Train multiq on the five games in one run; return total env steps per second."""
    from multiq import MultiTaskDQN

    pin_threads()
    side_by_side = MODES[mode]
    # SB3's threads (`pin_threads`), not multiq's default 1; async leaves a core to the child
    threads = max(1, usable_cores() - 1) if side_by_side else usable_cores()
    model = MultiTaskDQN(
        tasks="minatar",
        scheme="shared",
        double_q=False,
        n_step=1,
        dueling=False,
        hidden_size=128,
        learning_rate=2.5e-4,
        buffer_size=100_000,
        learning_starts=1_000,
        batch_size=32,
        gamma=0.99,
        train_freq=train_freq,
        gradient_steps=1,
        target_update_interval=1_000,
        tau=1.0,
        exploration_fraction=0.1,
        exploration_final_eps=0.01,
        max_grad_norm=10.0,
        eval_freq=0,
        tensorboard=False,
        progress_bar=False,
        seed=seed,
        device=device,
        torch_threads=threads,
        async_updates=side_by_side,
        run_dir=tempfile.mkdtemp(prefix="multiq-throughput-"),
    )
    start = time.perf_counter()
    model.learn(total_steps_per_task=steps, evaluate=False)
    return len(GAMES) * steps / (time.perf_counter() - start)


def measure(train_freq: int, args: argparse.Namespace, device: str) -> Row:
    """Run both libraries for one train_freq and print their throughput."""
    sb3 = sb3_steps_per_sec(args.steps_per_game, train_freq, args.seed)
    print(f"train_freq={train_freq}  SB3:    {sb3:8.1f} env steps/s", flush=True)
    row = Row(train_freq, sb3, {})
    for mode in args.modes:
        row.multiq[mode] = multiq_steps_per_sec(
            args.steps_per_game, train_freq, args.seed, device, mode
        )
        print(
            f"train_freq={train_freq}  multiq {mode}: {row.multiq[mode]:8.1f} env steps/s  "
            f"ratio {row.ratio(mode):.2f}",
            flush=True,
        )
    return row


def markdown(rows: list[Row], args: argparse.Namespace, device: str, load: float) -> str:
    """Render the result file: date, command, machine, settings and the table."""
    machine = platform.processor() or platform.machine()
    lines = [
        "# Throughput vs Stable-Baselines3 (MinAtar)",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- command: `{shlex.join(['python', *sys.argv])}`",
        f"- machine: {machine}, {os.cpu_count()} CPUs ({usable_cores()} usable), "
        f"torch {torch.__version__}, torch threads {torch.get_num_threads()}",
        f"- 1-minute load average before the run: {load:.2f} "
        "(well above 0 means other processes were competing for the CPU)",
        f"- device: multiq {device}, SB3 cpu",
        f"- games: {', '.join(GAMES)}; {args.steps_per_game:,} env steps per game "
        f"({len(GAMES) * args.steps_per_game:,} in all); seed {args.seed}",
        "- multiq trains the five games in one run; SB3 DQN trains them one after another",
        f"- settings: {SETTINGS}",
        "",
        "- multiq modes: sequential (async_updates false, torch threads = usable cores, as SB3), "
        "async (async_updates true: a child process acts and steps the envs with one thread, "
        "the learner has usable cores - 1 threads)",
        "",
        "| train_freq | SB3 steps/s | "
        + " | ".join(f"multiq {m} steps/s | ratio {m}" for m in args.modes) + " |",
        "|---:|---:|" + "---:|---:|" * len(args.modes),
        *(
            f"| {r.train_freq} | {r.sb3:.1f} | "
            + " | ".join(f"{r.multiq[m]:.1f} | {r.ratio(m):.2f}" for m in args.modes) + " |"
            for r in rows
        ),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark, print the ratio line and write the markdown result file."""
    args = parse_args()
    device = resolve_device(args.device)
    load_before = load_average()
    warn_if_busy(load_before)
    rows = [measure(train_freq, args, device) for train_freq in args.train_freqs]
    out = args.out or Path("benchmarks/results") / f"throughput-{device}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(rows, args, device, load_before))
    print(f"wrote {out}")
    ratios = ", ".join(
        f"train_freq={r.train_freq} {m} {r.ratio(m):.2f}" for r in rows for m in args.modes
    )
    print(f"throughput ratio vs SB3: {ratios}")


if __name__ == "__main__":
    main()
