"""Cost of the non-finite guard: one learner update with and without its fused check.

The learner tests `isfinite(loss + grad_norm)` once per update before the optimiser step (one
host sync on a GPU). This times `Learner.update` on the five MinAtar games (shared scheme, batch
32 per task, random observations) with `check_finite` on and off, in interleaved blocks so that
machine noise hits both alike, and prints ms per update and the ratio on / off.

    python benchmarks/nonfinite_check.py [--updates 300] [--blocks 10] [--device cpu|cuda|auto]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch

from multiq.agents.learner import Learner, LearnerSettings
from multiq.config import Config
from multiq.replay.buffers import NStepSample
from multiq.tasks import make_taskset

BATCH_PER_TASK = 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=300, help="updates per block")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per setting, interleaved")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    return parser.parse_args()


def random_batch(learner: Learner, rng: np.random.Generator) -> dict[str, NStepSample]:
    """Task name -> a batch of random transitions of that task's shapes."""
    batch = {}
    for name, spec in learner.specs.items():
        shape = (BATCH_PER_TASK, *spec.obs_shape)
        obs = rng.random(shape) < 0.1
        batch[name] = NStepSample(
            obs=obs.astype(spec.obs_dtype),
            actions=rng.integers(0, spec.num_actions, BATCH_PER_TASK),
            returns=rng.random(BATCH_PER_TASK).astype(np.float32),
            next_obs=np.roll(obs, 1, axis=0).astype(spec.obs_dtype),
            discounts=np.full(BATCH_PER_TASK, 0.99, dtype=np.float32),
        )
    return batch


def time_block(learner: Learner, batch, updates: int, check: bool) -> float:
    """Seconds per update over one block."""
    learner.check_finite = check
    if learner.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(updates):
        learner.update(batch)
    if learner.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / updates


def check_alone_us(device: str, repeats: int = 20_000) -> float:
    """Microseconds of the check itself on two scalars (what the update adds, sync included)."""
    loss = torch.tensor(1.0, device=device)
    grad_norm = torch.tensor(2.0, device=device)
    start = time.perf_counter()
    for _ in range(repeats):
        bool(torch.isfinite(loss + grad_norm))
    return (time.perf_counter() - start) / repeats * 1e6


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    cfg = Config()
    settings = LearnerSettings.from_config(cfg)
    learner = Learner(list(make_taskset("minatar")), settings, device)
    batch = random_batch(learner, np.random.default_rng(0))
    time_block(learner, batch, 20, True)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    for block in range(args.blocks):
        for check in (block % 2 == 0, block % 2 == 1):  # alternate which goes first
            times[check].append(time_block(learner, batch, args.updates, check))
    on, off = np.median(times[True]) * 1e3, np.median(times[False]) * 1e3
    print(
        f"date {datetime.date.today()}, device {device}, {platform.processor() or 'cpu'}, "
        f"torch {torch.__version__}, {args.threads} thread(s)"
    )
    print(f"update with the check    {on:.3f} ms (median of {args.blocks} blocks)")
    print(f"update without the check {off:.3f} ms")
    print(f"ratio with / without: {on / off:.3f} ({(on - off) * 1e3:+.1f} us per update)")
    alone = check_alone_us(device)
    print(f"the check alone: {alone:.1f} us = {alone / (off * 1e3) * 100:.3f}% of an update")


if __name__ == "__main__":
    main()
