"""Env steps/s of Ray collectors against in-process collection, five MinAtar games.

One `multiq train` child per setting, the same config (the five MinAtar games, scheme shared,
`--n-envs` envs per game, train_freq 4, batch 32 per game: 8 replay samples per env step) with
`collectors: 0` (the envs step in the training process) and `collectors: N` for each N of
`--collectors` (N Ray actors, each a block of the games). Settings are interleaved over
`--rounds` rounds; a setting's figure is the median over rounds of its run's env steps/s
(summary.json: all games' env steps over the training wall time, Ray's start-up and the first
chunks included; it is run once before the rounds so that its files are cached). The ratio is
to in-process collection of the same round.

What to expect: Ray collectors move acting and env steps out of the training process, so the
learner's updates overlap them; with as many cores as actors + 1 that is the gain, on two cores
the actors and the learner share them and no gain is expected.

    python benchmarks/collectors.py [--steps-per-game 20000] [--collectors 1 2 4]
        [--n-envs 4] [--rounds 2] [--device cpu] [--out benchmarks/results/collectors-cpu.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import speed_common as common

GAMES = "minatar"
SETTINGS = (
    "learning_starts=1000", "train_freq=4", "batch_size=32", "buffer_size=100000",
    "eval_freq=0", "eval_episodes=2", "checkpoint_freq=0", "tensorboard=false",
    "progress_bar=false", "log_interval=10000", "collector_chunk=64", "broadcast_interval=100",
)  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps-per-game", type=int, default=20_000)
    parser.add_argument("--collectors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/collectors-cpu.md"))
    return parser.parse_args()


def run(args: argparse.Namespace, collectors: int, run_dir: Path) -> float:
    """One training run; its env steps/s of all games together."""
    sets = [*SETTINGS, f"collectors={collectors}", f"n_envs={args.n_envs}"]
    command = common.train_command(
        GAMES, args.steps_per_game, run_dir, sets, "--device", args.device, "--torch-threads", "1"
    )
    return common.train_sps(command, run_dir)


def main() -> None:
    args = parse_args()
    settings = [0, *args.collectors]
    figures: dict[int, list[float]] = {n: [] for n in settings}
    ratios: dict[int, list[float]] = {n: [] for n in args.collectors}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        run(argparse.Namespace(**{**vars(args), "steps_per_game": 2000}), 1, Path(tmp) / "warm")
        for round_index in range(args.rounds):
            for n in settings:
                sps = run(args, n, Path(tmp) / f"r{round_index}-c{n}")
                figures[n].append(sps)
                print(f"round {round_index}: collectors={n}: {sps:,.0f} env steps/s", flush=True)
            for n in args.collectors:
                ratios[n].append(figures[n][-1] / figures[0][-1])
    report = render(args, figures, ratios, time.monotonic() - started)
    common.publish(report, args.out)


def render(args, figures, ratios, wall_s: float) -> str:
    title = "Ray collectors vs in-process collection (five MinAtar games)"
    lines = [
        *common.header(title, wall_s, args.device),
        f"{args.steps_per_game:,} env steps per game, {args.n_envs} envs per game, train_freq 4, "
        f"batch 32 per game (8 replay samples per env step), scheme shared, one torch thread; "
        f"settings `{' '.join(SETTINGS)}`. Median over {args.rounds} interleaved rounds; the "
        "ratio is to in-process collection of the same round (median of the rounds' ratios).",
        "",
        "| collection | env steps/s (all games) | ratio to in-process |",
        "|---|---:|---:|",
        f"| in-process | {common.median(figures[0]):,.0f} | 1.00 |",
    ]
    for n in args.collectors:
        lines.append(
            f"| {n} Ray actor{'s' if n > 1 else ''} | {common.median(figures[n]):,.0f} | "
            f"{common.median(ratios[n]):.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
