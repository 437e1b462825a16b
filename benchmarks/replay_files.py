"""How big is a saved replay, and how long do its save and load take, in each file layout?

A run with `save_replay: true` writes its replay beside every checkpoint; the MinAtar paper
benchmark commits its runs' checkpoints to the repository so that a later session resumes them.
This compares, on the same replay arrays:

- ``plain``: `np.savez` of the arrays as they are (multiq before 2026-12-06);
- ``bits``: compressed `.npz`, bool arrays eight to a byte (`save_arrays` alone);
- ``bits + successors``: the same after `without_successor_obs` (each `next_obs` kept only where
  it is not the next row's `obs`): `save_replay`, what `save_checkpoint` writes now.

Each layout is loaded back and checked equal to the arrays, bit for bit. The replay is the
buffers of a `multiq train` of the five MinAtar games (`configs/minatar-paper.yaml`: all
actions, sticky actions) for `--steps-per-game` env steps with no update (a random policy), or a
saved `replay.npz` given with `--replay` (e.g. a MinAtar paper run's, from a trained policy).

    python benchmarks/replay_files.py [--steps-per-game 100000] [--replay FILE] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import speed_common as common

from multiq.train import checkpoint as ckpt

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "minatar-paper.yaml"
Arrays = dict[str, np.ndarray]


def _plain_save(path: Path, arrays: Arrays) -> None:
    np.savez(path, **arrays)


def _plain_load(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


LAYOUTS: dict[str, tuple[Callable[[Path, Arrays], None], Callable[[Path], Arrays]]] = {
    "plain": (_plain_save, _plain_load),
    "bits": (ckpt.save_arrays, ckpt.load_arrays),
    "bits + successors": (ckpt.save_replay, ckpt.load_replay),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps-per-game", type=int, default=100_000)
    parser.add_argument("--replay", type=Path, default=None, help="a saved replay.npz instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/replay-files-cpu.md"))
    return parser.parse_args()


def random_policy_replay(steps: int, folder: Path) -> Arrays:
    """The replay of a `multiq train` of the five games with no update, saved and loaded."""
    run_dir = folder / "fill"
    sets = [f"learning_starts={steps - 1}", "save_replay=true", "eval_freq=0", "eval_episodes=1",
            "progress_bar=false", "tensorboard=false", f"checkpoint_freq={steps}"]  # fmt: skip
    command = [*common.multiq_command(), "train", str(CONFIG), "--steps", str(steps),
               "--run-dir", str(run_dir), "--async-updates", "false",
               *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    common.train_sps(command, run_dir)
    return ckpt.load_replay(run_dir / ckpt.REPLAY_FILE)


def measure(arrays: Arrays, rounds: int, folder: Path) -> dict[str, dict[str, float]]:
    """Layout -> {"MB", "save s", "load s"} (medians over rounds, layouts interleaved)."""
    times: dict[str, dict[str, list[float]]] = {k: {"save": [], "load": []} for k in LAYOUTS}
    sizes: dict[str, float] = {}
    for _ in range(rounds):
        for name, (save, load) in LAYOUTS.items():
            path = folder / f"{name.replace(' ', '_')}.npz"
            started = time.perf_counter()
            save(path, arrays)
            times[name]["save"].append(time.perf_counter() - started)
            started = time.perf_counter()
            back = load(path)
            times[name]["load"].append(time.perf_counter() - started)
            same = sorted(back) == sorted(arrays) and all(
                back[k].dtype == v.dtype and np.array_equal(back[k], v) for k, v in arrays.items()
            )
            if not same:
                raise SystemExit(f"{name}: the loaded arrays differ from the saved ones")
            sizes[name] = path.stat().st_size / 1e6
    return {name: {"MB": sizes[name], "save s": common.median(times[name]["save"]),
                   "load s": common.median(times[name]["load"])} for name in LAYOUTS}  # fmt: skip


def render(args: argparse.Namespace, arrays: Arrays, results, wall_s: float) -> str:
    source = (f"`{args.replay}`" if args.replay else f"a random policy's {args.steps_per_game:,} "
              "env steps per game (`configs/minatar-paper.yaml`, no update)")  # fmt: skip
    raw = sum(a.nbytes for a in arrays.values()) / 1e6
    plain = results["plain"]["MB"]
    lines = common.header("Saved replay: file size, save and load time per layout", wall_s)
    lines += [
        f"Replay: {source}; {raw:,.1f} MB of arrays. Medians of {args.rounds} rounds, layouts "
        "interleaved; every layout loads back bit for bit.",
        "",
        "| layout | file MB | vs plain | save s | load s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        lines.append(f"| {name} | {row['MB']:,.2f} | {row['MB'] / plain:.4f} | "
                     f"{row['save s']:.2f} | {row['load s']:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.replay:
            arrays = ckpt.load_replay(args.replay)
        else:
            arrays = random_policy_replay(args.steps_per_game, folder)
        results = measure(arrays, args.rounds, folder)
    common.publish(render(args, arrays, results, time.perf_counter() - started), args.out)


if __name__ == "__main__":
    main()
