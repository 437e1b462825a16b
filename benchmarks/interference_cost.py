"""What does measuring the gradient-conflict map cost, and how often can a run afford it?

Times `Learner.update` with and without `probe` (the map: every task's gradient on the shared
parameters, their pairwise cosines and norm shares) on the same fixed batches, interleaved over
`--rounds` rounds, in `benchmarks/profile_step.py`'s setting (the five MinAtar games, `shared`,
the MinAtar net, vanilla DQN, batch 32 per game, one torch thread), for the balancers `fixed`
(the probe adds one backward pass per task) and `pcgrad` (it reuses the per-task gradients that
PCGrad takes anyway). The cost of a run's probes is the extra time of one probed update over
`interference_freq` plain updates; the update is 82-87% of a training step
(`benchmarks/results/profile-step-cpu-after.md`), so this bounds the run's slowdown from above.

    python benchmarks/interference_cost.py [--updates 200] [--rounds 5] [--threads 1]
        [--freqs 100 1000 10000] [--out benchmarks/results/interference-cost-cpu.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import speed_common as common
from profile_step import WARMUP_STEPS

from multiq.threads import torch_threads

BALANCERS = ("fixed", "pcgrad")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=200, help="timed updates per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--freqs", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/interference-cost-cpu.md")
    )
    return parser.parse_args()


def agent(balancer: str, threads: int, run_dir: str):
    """`profile_step`'s MinAtar agent with the given balancer, its replay filled."""
    from multiq import MultiTaskDQN

    model = MultiTaskDQN(
        tasks="minatar", scheme="shared", balancer=balancer, double_q=False, n_step=1,
        learning_rate=2.5e-4, buffer_size=100_000, learning_starts=WARMUP_STEPS, batch_size=32,
        train_freq=4, eval_freq=0, tensorboard=False, progress_bar=False, seed=0, device="cpu",
        torch_threads=threads, checkpoint_freq=0, run_dir=run_dir, async_updates=False,
    )  # fmt: skip
    model.learn(total_steps_per_task=WARMUP_STEPS + 100, evaluate=False)
    return model


def timed_ms(learner, batches: list, probe: bool) -> float:
    """Mean ms per update over `batches`, after two untimed ones."""
    for batch in batches[:2]:
        learner.update(batch, probe)
    started = time.perf_counter()
    for batch in batches:
        learner.update(batch, probe)
    return 1e3 * (time.perf_counter() - started) / len(batches)


def measure(args: argparse.Namespace) -> dict[str, dict[bool, list[float]]]:
    """Balancer -> probe flag -> ms per update of each round."""
    times: dict[str, dict[bool, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        for balancer in BALANCERS:
            model = agent(balancer, args.threads, f"{tmp}/{balancer}")
            counts = {name: model.config.batch_size for name in model.trainer.replay.buffers}
            rng = np.random.default_rng(0)
            batches = [model.trainer.replay.sample(counts, rng) for _ in range(args.updates)]
            times[balancer] = {False: [], True: []}
            for _ in range(args.rounds):
                for probe in (False, True):
                    times[balancer][probe].append(timed_ms(model.learner, batches, probe))
    return times


def render(args, times: dict[str, dict[bool, list[float]]], wall_s: float) -> str:
    lines = common.header("The cost of the gradient-conflict map", wall_s)
    lines += [
        f"{args.updates} updates per round, {args.rounds} rounds (plain and probed interleaved), "
        f"{args.threads} torch thread(s); five MinAtar games, `shared`, the MinAtar net, vanilla "
        "DQN, batch 32 per game (160 rows per update). `extra` is a probed update's time less a "
        "plain one's (medians); `overhead at F` is extra / (F x plain): the share of update time "
        "a run with `interference_freq` F spends on the map.",
        "",
        "| balancer | plain ms (median; rounds) | probed ms (median; rounds) | extra ms | "
        + " | ".join(f"overhead at {f:,}" for f in args.freqs)
        + " |",
        "|---|---|---|---:|" + "---:|" * len(args.freqs),
    ]
    for balancer, by_probe in times.items():
        plain, probed = common.median(by_probe[False]), common.median(by_probe[True])
        extra = probed - plain
        cells = [
            f"{plain:.2f} ({', '.join(f'{v:.2f}' for v in by_probe[False])})",
            f"{probed:.2f} ({', '.join(f'{v:.2f}' for v in by_probe[True])})",
            f"{extra:+.2f}",
            *[f"{extra / (f * plain):+.3%}" for f in args.freqs],
        ]
        lines.append(f"| {balancer} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    times = measure(args)
    common.publish(render(args, times, time.perf_counter() - started), args.out)


if __name__ == "__main__":
    main()
