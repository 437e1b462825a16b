"""The sequential loop's metrics for a fixed seed, as digests that a refactor must keep.

Runs four short fixed-seed runs through the CLI (``train`` on the five MinAtar games with
``async_updates=false``, a ``transfer`` finetune from it, a two-task ``continual`` sequence and a
``meta`` run), strips the timing from each run's metrics (the ``wall_time_s`` column and the
``time/*`` keys) and prints one SHA-256 per run. With ``--against FILE`` it compares the digests
with a recorded set and exits 1 when any differs.

    python benchmarks/identity.py --out runs/identity --save benchmarks/results/identity.json
    python benchmarks/identity.py --out runs/id2 --against benchmarks/results/identity.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

SEED = 3
# metrics added after the digests were recorded, left out so that the digests compare what was
# logged before: the gradient-conflict map (issue 26), measured beside the update it watches
ADDED_KEY_PARTS = ("mtl/grad_cos/", "/grad_share")


def commands(out: Path) -> dict[str, list[str]]:
    """The four runs, each a ``multiq`` argument list writing into ``out/<name>``."""
    seq = ["--set", "async_updates=false", "--seed", str(SEED)]
    return {
        "train": [
            "train",
            "--tasks",
            "minatar",
            "--steps",
            "3000",
            *seq,
            "--run-dir",
            str(out / "train"),
        ],
        "transfer": [
            "transfer",
            str(out / "train"),
            "--tasks",
            "minatar:Breakout",
            "--mode",
            "finetune",
            "--steps",
            "2000",
            *seq,
            "--run-dir",
            str(out / "transfer"),
        ],
        "continual": [
            "continual",
            "--sequence",
            "gym:CartPole-v1,gym:Acrobot-v1",
            "--method",
            "rehearsal",
            "--steps",
            "1500",
            *seq,
            "--run-dir",
            str(out / "continual"),
        ],
        "meta": [
            "meta",
            "--family",
            "cartpole-physics",
            "--meta-iterations",
            "3",
            "--set",
            "inner_steps=300",
            "--set",
            "meta_batch_size=2",
            *seq,
            "--run-dir",
            str(out / "meta"),
        ],
    }


def metrics_digest(run: Path) -> str:
    """SHA-256 of a run's metrics without timing: ``metrics.csv`` less its ``wall_time_s``
    column, ``time/*`` rows and the keys added since (`ADDED_KEY_PARTS`), or a meta run's
    ``meta.csv`` less ``wall_time_s``."""
    digest = hashlib.sha256()
    path = run / "metrics.csv" if (run / "metrics.csv").exists() else run / "meta.csv"
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            key = row.get("key", "")
            if key.startswith("time/") or any(part in key for part in ADDED_KEY_PARTS):
                continue
            kept = [value for column, value in row.items() if column != "wall_time_s"]
            digest.update((",".join(kept) + "\n").encode())
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/identity"))
    parser.add_argument("--save", type=Path, help="write the digests to this JSON file")
    parser.add_argument("--against", type=Path, help="compare with digests recorded here")
    parser.add_argument("--only", nargs="*", help="run only these of train/transfer/continual/meta")
    args = parser.parse_args()
    multiq = [sys.executable, "-m", "multiq.cli"]
    digests = {}
    for name, argv in commands(args.out).items():
        if args.only and name not in args.only:
            continue
        subprocess.run([*multiq, *argv], check=True, stdout=subprocess.DEVNULL)
        digests[name] = metrics_digest(args.out / name)
        print(f"{name:10s} {digests[name]}")
    if args.save:
        args.save.write_text(json.dumps(digests, indent=2) + "\n")
    if args.against:
        recorded = json.loads(args.against.read_text())
        moved = [name for name in digests if recorded.get(name) != digests[name]]
        print("identical" if not moved else f"DIFFERENT: {', '.join(moved)}")
        return 1 if moved else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
