"""Where one vector step's time goes: a cProfile of multiq's loop on the five MinAtar games.

The throughput benchmark's setting (`benchmarks/throughput.py`: the MinAtar net, vanilla DQN,
batch 32 per game) at train_freq 1 and 4: a run first collects `learning_starts` steps
unprofiled, then `--steps-per-game` more steps of the learning phase run under cProfile. The
time of each part is its cumulative time in the profile, per vector step (one step of all five
games' envs) and as a share of the profiled wall time:

- acting: `Policy.act` (one batched forward for every env, then epsilon-greedy);
- env steps: `MultiTaskEnvs.step` (MinAtar and its wrappers);
- replay writes: `TaskReplay.add`;
- replay sampling: `MultiTaskReplay.sample` (indices, n-step returns, gathers);
- update: `Learner.update`, and within it the forward and losses (`Learner._losses`), the
  backward pass (`Tensor.backward`), gradient clipping and the optimiser step;
- waiting for the collector process (`AsyncCollector._take`, async mode only: acting and
  env steps then run in the child, beside the update, and are not in this process's profile);
- the rest of the loop (schedules, counters, logging) is the remainder.

Each train_freq is profiled in each of `--modes`: ``sequential`` (`async_updates: false`) and
``async`` (`async_updates: true`).

    python benchmarks/profile_step.py [--steps-per-game 3000] [--train-freqs 1 4]
        [--modes sequential async] [--threads 1] [--out benchmarks/results/profile-step-cpu.md]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import speed_common as common

WARMUP_STEPS = 1_000  # learning_starts: the replay fills (+ 100 steps) before the profile
PARTS = (  # (label, file suffix, function name)
    ("acting (Policy.act)", "agents/policy.py", "act"),
    ("env steps (MultiTaskEnvs.step)", "multiq/envs/multi.py", "step"),
    ("replay writes (TaskReplay.add)", "multiq/replay/task_buffer.py", "add"),
    ("replay sampling (MultiTaskReplay.sample)", "multiq/replay/buffers.py", "sample"),
    ("update (Learner.update)", "agents/learner.py", "update"),
    ("  forward + losses (Learner._losses)", "agents/learner.py", "_losses"),
    ("  backward (Tensor.backward)", "torch/_tensor.py", "backward"),
    ("  gradient clipping", "torch/nn/utils/clip_grad.py", "clip_grad_norm_"),
    ("  optimiser step (Adam)", "torch/optim/adam.py", "step"),
    ("waiting for the collector process", "collect/child.py", "_take"),
)
MODES = {"sequential": False, "async": True}
LOOP = ("multiq/train/loop.py", "_train_steps")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps-per-game", type=int, default=3_000)
    parser.add_argument("--train-freqs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile-step-cpu.md"))
    return parser.parse_args()


def model(train_freq: int, threads: int, run_dir: str, async_updates: bool = False):
    from multiq import MultiTaskDQN

    return MultiTaskDQN(
        tasks="minatar", scheme="shared", double_q=False, n_step=1, hidden_size=128,
        learning_rate=2.5e-4, buffer_size=100_000, learning_starts=WARMUP_STEPS, batch_size=32,
        gamma=0.99, train_freq=train_freq, target_update_interval=1_000, tau=1.0,
        exploration_fraction=0.1, exploration_final_eps=0.01, max_grad_norm=10.0, eval_freq=0,
        tensorboard=False, progress_bar=False, seed=0, device="cpu", torch_threads=threads,
        checkpoint_freq=0, run_dir=run_dir, async_updates=async_updates,
    )  # fmt: skip


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Seconds spent in (and under) the outermost function `name` of a file ending with
    `suffix` (the largest cumulative time: `MultiTaskEnvs.step` calls `TaskEnvs.step`)."""
    times = [
        cum
        for (path, _, function), (_, _, _, cum, _) in stats.stats.items()
        if function == name and path.replace("\\", "/").endswith(suffix)
    ]
    return max(times, default=0.0)


def profile(train_freq: int, mode: str, args: argparse.Namespace) -> dict[str, float]:
    """Part label -> ms per vector step; also "loop", "wall" and "vector steps"."""
    with tempfile.TemporaryDirectory() as tmp:
        agent = model(train_freq, args.threads, tmp, MODES[mode])
        warm = WARMUP_STEPS + 100  # the replay filled and the first updates run
        agent.learn(total_steps_per_task=warm, evaluate=False)
        before = agent.state.vector_steps
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        agent.learn(total_steps_per_task=warm + args.steps_per_game, evaluate=False)
        profiler.disable()
        wall_s = time.perf_counter() - started
        steps = agent.state.vector_steps - before
    stats = pstats.Stats(profiler)
    result = {label: 1e3 * cumulative(stats, s, n) / steps for label, s, n in PARTS}
    result["loop"] = 1e3 * cumulative(stats, *LOOP) / steps
    result["wall"] = 1e3 * wall_s / steps
    result["vector steps"] = steps
    return result


def render(args, profiles: dict[tuple[int, str], dict[str, float]], wall_s: float) -> str:
    keys = list(profiles)
    names = [f"tf {f} {m}" for f, m in keys]
    lines = [
        *common.header("Where one vector step's time goes (five MinAtar games, CPU)", wall_s),
        f"{args.steps_per_game:,} env steps per game of the learning phase under cProfile (after "
        f"{WARMUP_STEPS:,} unprofiled), {args.threads} torch thread(s) in the training process; "
        "the throughput benchmark's setting (vanilla DQN, batch 32 per game, 5 games: batch 160 "
        "per update). A vector step steps all five games once; times are ms per vector step in "
        "the training process (cProfile's own overhead included, so the sum runs above an "
        "unprofiled run). `async` is `async_updates: true`: acting and env steps run in the "
        "collector process, beside the update; `learn() wall` is the wall time of the "
        "profiled `learn` call per vector step (in async mode it includes the collector "
        "process's start, a few seconds).",
        "",
        "| part | " + " | ".join(f"{n} (ms)" for n in names) + " | "
        + " | ".join(f"share {n}" for n in names) + " |",
        "|---|" + "---:|" * (2 * len(keys)),
    ]  # fmt: skip
    rows = [label for label, _, _ in PARTS] + ["training loop (all of it)", "learn() wall"]
    for label in rows:
        key = {"training loop (all of it)": "loop", "learn() wall": "wall"}.get(label, label)
        ms = [profiles[k][key] for k in keys]
        share = [profiles[k][key] / profiles[k]["loop"] for k in keys]
        lines.append(
            f"| {label} | " + " | ".join(f"{v:.3f}" for v in ms) + " | "
            + " | ".join(f"{100 * v:.0f}%" for v in share) + " |"
        )  # fmt: skip
    top = [p for p, _, _ in PARTS if not p.startswith("  ")]
    rest = [profiles[k]["loop"] - sum(profiles[k][p] for p in top) for k in keys]
    lines.append("| rest of the loop | " + " | ".join(f"{v:.3f}" for v in rest) + " | "
                 + " | ".join(f"{100 * r / profiles[k]['loop']:.0f}%"
                              for r, k in zip(rest, keys, strict=True)) + " |")  # fmt: skip
    steps = ", ".join(f"{int(profiles[k]['vector steps']):,} ({n})"
                      for k, n in zip(keys, names, strict=True))  # fmt: skip
    lines += ["", f"Vector steps profiled: {steps}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    profiles = {}
    for train_freq in args.train_freqs:
        for mode in args.modes:
            result = profiles[train_freq, mode] = profile(train_freq, mode, args)
            print(f"train_freq {train_freq} {mode}: {result['wall']:.3f} ms per vector step",
                  flush=True)  # fmt: skip
    report = render(args, profiles, time.monotonic() - started)
    common.publish(report, args.out)


if __name__ == "__main__":
    main()
