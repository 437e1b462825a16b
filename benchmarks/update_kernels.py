"""How fast can one update of the throughput benchmark's setting go on this CPU?

The update is most of a vector step (`benchmarks/results/profile-step-cpu-after.md`: 82-87% of
the training process's time with `async_updates`), so it bounds multiq's env steps/s. This
times `Learner.update` on the same fixed batches under ways of running its kernels that need no
change to the network or the algorithm, interleaved over `--rounds` rounds:

- ``fp32``: as multiq runs it (float32, oneDNN convolutions; the baseline);
- ``fp32 no-onednn``: convolutions by PyTorch's own kernels (`torch.backends.mkldnn` off);
- ``fp32 channels-last``: the nets' weights in channels-last memory format;
- ``bf16 autocast``: convolutions and matrix products in bfloat16 (`torch.autocast`), weights,
  optimiser and losses in float32; on CPUs with AVX-512 BF16 these kernels do twice the
  arithmetic per instruction.

The setting is `benchmarks/profile_step.py`'s: the five MinAtar games, `shared`, the MinAtar net,
vanilla DQN, batch 32 per game (batch 160 per update), one torch thread. It also prints each
variant's loss on the first batch from the same weights against fp32's (its numerical change) and
the env steps/s the update alone would allow at train_freq 4 (4 vector steps of 5 env steps per
update), against SB3's figure given by `--sb3-sps` (`benchmarks/results/throughput-cpu-async.md`).

    python benchmarks/update_kernels.py [--updates 100] [--rounds 5] [--threads 1]
        [--sb3-sps 997] [--out benchmarks/results/update-kernels-cpu.md]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import speed_common as common
import torch
from profile_step import WARMUP_STEPS, model

from multiq.threads import torch_threads

SB3_TF4_SPS = (949.8 + 1_044.6) / 2  # throughput-cpu-async.md, train_freq 4, runs 1 and 2
ENV_STEPS_PER_UPDATE = 4 * 5  # train_freq 4, five games
RESULTS = Path("benchmarks/results")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=100, help="timed updates per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sb3-sps", type=float, default=SB3_TF4_SPS)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/update-kernels-cpu.md")
    )
    return parser.parse_args()


@contextlib.contextmanager
def no_onednn(learner) -> Iterator[None]:
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


@contextlib.contextmanager
def channels_last(learner) -> Iterator[None]:
    nets = (learner.online, learner.target)
    for net in nets:
        net.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for net in nets:
            net.to(memory_format=torch.contiguous_format)


@contextlib.contextmanager
def bf16_autocast(learner) -> Iterator[None]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


VARIANTS: dict[str, Callable] = {
    "fp32": lambda learner: contextlib.nullcontext(),
    "fp32 no-onednn": no_onednn,
    "fp32 channels-last": channels_last,
    "bf16 autocast": bf16_autocast,
}
"""Variant name -> context manager (given the learner) the updates run in."""


def timed_ms(learner, batches: list, variant: str) -> float:
    """Mean ms per update over `batches`, after two untimed ones."""
    with VARIANTS[variant](learner):
        for batch in batches[:2]:
            learner.update(batch)
        started = time.perf_counter()
        for batch in batches:
            learner.update(batch)
        return 1e3 * (time.perf_counter() - started) / len(batches)


def first_loss(learner, batch, variant: str) -> float:
    """The loss of one update from a copy of the learner's current weights."""
    twin = copy.deepcopy(learner)
    with VARIANTS[variant](twin):
        return float(twin.update(batch)["loss"])


def measure(args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, float]]:
    """(variant -> ms per update of each round, variant -> loss on the first batch)."""
    with tempfile.TemporaryDirectory() as tmp:
        agent = model(4, args.threads, tmp)
        agent.learn(total_steps_per_task=WARMUP_STEPS + 100, evaluate=False)
        sample_rng = np.random.default_rng(0)
        counts = {name: agent.config.batch_size for name in agent.trainer.replay.buffers}
        batches = [agent.trainer.replay.sample(counts, sample_rng) for _ in range(args.updates)]
        learner = agent.learner
        losses = {v: first_loss(learner, batches[0], v) for v in VARIANTS}
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        with torch_threads(args.threads):
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    times[variant].append(timed_ms(learner, batches, variant))
    return times, losses


def render(args, times: dict[str, list[float]], losses: dict[str, float], wall_s: float) -> str:
    base = common.median(times["fp32"])
    lines = common.header("One update of the throughput setting under kernel variants", wall_s)
    lines += [
        f"{args.updates} updates per round, {args.rounds} rounds interleaved, {args.threads} "
        "torch thread(s); five MinAtar games, `shared`, vanilla DQN, batch 32 per game (160 per "
        "update). `update-bound env steps/s` is 20 env steps (train_freq 4, five games) per "
        f"update over the update's time alone; SB3's figure at train_freq 4 is {args.sb3_sps:,.0f}"
        " env steps/s (`throughput-cpu-async.md`), so a ratio of 4 needs "
        f"{4 * args.sb3_sps:,.0f} and leaves {1e3 * ENV_STEPS_PER_UPDATE / (4 * args.sb3_sps):.2f}"
        " ms per update for everything the training process does.",
        "",
        "| variant | ms per update (median) | rounds | speed vs fp32 | update-bound env steps/s | "
        "= x SB3 | first loss | loss vs fp32 |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for variant, values in times.items():
        ms = common.median(values)
        bound = 1e3 * ENV_STEPS_PER_UPDATE / ms
        rounds = ", ".join(f"{v:.2f}" for v in values)
        change = losses[variant] / losses["fp32"] - 1
        lines.append(
            f"| {variant} | {ms:.2f} | {rounds} | {base / ms:.2f}x | {bound:,.0f} | "
            f"{bound / args.sb3_sps:.2f} | {losses[variant]:.6f} | {change:+.2%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    times, losses = measure(args)
    common.publish(render(args, times, losses, time.perf_counter() - started), args.out)


if __name__ == "__main__":
    main()
