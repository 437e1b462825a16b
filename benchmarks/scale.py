"""Env steps/s of the five MinAtar games with many envs per game, at the protocol's replay ratio.

The GPU target of the speed issue: one `shared` agent on the five games at 8 replay samples per
env step (SB3's DQN at train_freq 4 with batch 32), as many env steps/s as one machine gives,
>= 20,000 on one H100. With `n_envs` envs per game stepped together and an update every
`--train-freq` vector steps, each game's batch is `8 * train_freq * n_envs` (the ratio holds for
every `n_envs`). Each setting is one `multiq train` child (`--steps-per-game` env steps per game,
no evaluation), run `--rounds` times, settings interleaved; the figure is its env steps of all
games over the training wall time (`summary.json`), including the first `learning_starts` steps
without updates (the settings share them).

Settings, for each of `--n-envs`:
- ``inprocess``: the envs in the training process, acting and learning in turn;
- ``async``: `async_updates: true`, the envs in a child process beside the learner;
- ``subprocess``: `env_backend: subprocess` with `--workers` processes per game.

    python benchmarks/scale.py [--device auto] [--n-envs 1 8 32] [--steps-per-game 50000]
        [--workers 3] [--rounds 1] [--modes inprocess async subprocess] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import speed_common as common

SAMPLES_PER_ENV_STEP = 8  # SB3's DQN at train_freq 4 with batch 32
TARGET_SPS = 20_000  # the speed issue's target on one H100
GAMES = 5
MODES = {
    "inprocess": ("--async-updates", "false"),
    "async": ("--async-updates", "true"),
    "subprocess": ("--async-updates", "false", "--env-backend", "subprocess"),
}
"""Mode -> its `multiq train` flags (subprocess adds `--env-workers`)."""
VANILLA = ("double_q=false", "n_step=1", "dueling=false", "hidden_size=128", "scheme=shared")
"""The throughput benchmark's agent (`benchmarks/throughput.py`): 1-step DQN, the MinAtar net."""


@dataclass(frozen=True)
class Setting:
    """One measured configuration."""

    mode: str
    n_envs: int

    def batch_per_game(self, train_freq: int) -> int:
        return SAMPLES_PER_ENV_STEP * train_freq * self.n_envs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps-per-game", type=int, default=50_000)
    parser.add_argument("--train-freq", type=int, default=1)
    parser.add_argument("--workers", type=int, default=3, help="subprocess: processes per game")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES))
    parser.add_argument("--out", type=Path, default=None, help="default results/scale-DEVICE.md")
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> list[Setting]:
    return [Setting(mode, n) for n in args.n_envs for mode in args.modes]


def command(args: argparse.Namespace, setting: Setting, run_dir: Path) -> list[str]:
    """The `multiq train` child of one setting."""
    batch = setting.batch_per_game(args.train_freq)
    sets = [
        f"n_envs={setting.n_envs}", f"batch_size={batch}", f"train_freq={args.train_freq}",
        "learning_starts=1000", "buffer_size=100000", "eval_freq=0", "checkpoint_freq=0",
        "save_replay=false", "progress_bar=false", "tensorboard=false", *VANILLA,
    ]  # fmt: skip
    flags = [*MODES[setting.mode], "--device", args.device]
    if setting.mode == "subprocess":
        flags += ["--env-workers", str(args.workers)]
    return common.train_command("minatar", args.steps_per_game, run_dir, sets, *flags)


def measure(args: argparse.Namespace) -> dict[Setting, list[float]]:
    """Setting -> env steps/s of each round (settings interleaved within a round)."""
    results: dict[Setting, list[float]] = {s: [] for s in settings(args)}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for setting in results:
                run_dir = Path(tmp) / f"{setting.mode}-{setting.n_envs}-{round_index}"
                sps = common.train_sps(command(args, setting, run_dir), run_dir)
                results[setting].append(sps)
                print(f"{setting.mode:10s} n_envs {setting.n_envs:4d}: {sps:9,.0f} env steps/s",
                      flush=True)  # fmt: skip
    return results


def render(args: argparse.Namespace, results: dict[Setting, list[float]], wall_s: float) -> str:
    lines = common.header("Env steps/s of the five MinAtar games at 8 samples per env step",
                          wall_s, args.device_name)  # fmt: skip
    lines += [
        "`multiq train --tasks minatar` (`shared`, the MinAtar net, 1-step DQN without double "
        "Q, as `benchmarks/throughput.py`), "
        f"{args.steps_per_game:,} env steps per game, learning starts 1,000, no evaluation; "
        f"an update every {args.train_freq} vector step(s) with batch "
        f"{SAMPLES_PER_ENV_STEP} x {args.train_freq} x n_envs per game, so "
        f"{SAMPLES_PER_ENV_STEP} replay samples per env step in every row; subprocess: "
        f"{args.workers} worker processes per game. Target: {TARGET_SPS:,} env steps/s on one "
        "H100.",
        "",
        "| mode | n_envs per game | batch per game | env steps/s (median) | rounds | vs target |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for setting, values in results.items():
        sps = common.median(values)
        rounds = ", ".join(f"{v:,.0f}" for v in values)
        lines.append(
            f"| {setting.mode} | {setting.n_envs} | {setting.batch_per_game(args.train_freq)} | "
            f"{sps:,.0f} | {rounds} | {sps / TARGET_SPS:.2f} |"
        )
    return "\n".join(lines) + "\n"


def device_name(device: str) -> str:
    """`auto` resolved, with the GPU's name."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return f"cuda ({torch.cuda.get_device_name()})" if device == "cuda" else device


def main() -> None:
    args = parse_args()
    args.device_name = device_name(args.device)
    started = time.perf_counter()
    results = measure(args)
    out = args.out or Path("benchmarks/results") / f"scale-{args.device_name.split()[0]}.md"
    common.publish(render(args, results, time.perf_counter() - started), out)


if __name__ == "__main__":
    main()
