"""Which multi-task method helps? Every sharing scheme and balancer on the five MinAtar games.

Each method trains Asterix, Breakout, Freeway, Seaquest and SpaceInvaders in one run with the
same env steps per game, for several seeds; the runs are the trials of one `multiq sweep`
(`multiq.scale.sweep`: Ray Tune on this machine, `--workers` trials at a time with one torch
thread each, seed-major: every method's seed 0 first; the sweep folder is `--run-root`).
The report gives, per method:

- final return per game (mean over seeds and its 95% bootstrap interval),
- the mean over games of the score normalised by `independent`:
  `(R_method - R_random) / (R_independent - R_random)` (1 = as good as independent),
- env steps/s relative to `shared`, in the runs and in short runs alone on the machine,
- the update time relative to `shared` with five tasks, timed on one thread with the methods
  taking turns, on synthetic batches (the PCGrad / GradNorm overhead target is at most 2x),

and writes `mtl_minatar.md` and `mtl_minatar.png` to `--out-dir`.

Reuse. Each run's JSON (`mtl_minatar_runs/<method>-seed<seed>.json`) stores its spec: the method,
the seed, the whole multiq config of the trial (`run_config`), the env steps per game and
the games (JSONs written before the spec was stored whole give the last two by
`env_steps_per_task` and their `tasks`). A finished run is reused only when its spec equals the
one this invocation would run, so an interrupted benchmark resumes where it stopped and a run of
another configuration is run again, never reported in its place.

Where files go, so that only the default configuration writes the committed results:

- runs, update times and report live in `--out-dir` when the settings every run shares (the
  config keys but method and seed, the steps per game, the games) are the defaults, and in
  `--out-dir/mtl_minatar_config-<hash>/` otherwise, `<hash>` a short SHA-256 of those settings
  (stable across processes and dict orders); run folders (`--run-root`) are keyed alike;
- the report (`.md`, `.png`) and update times (`_update_ms.json`) are named `mtl_minatar*` for
  the default methods and seeds, `mtl_minatar_subset-<hash>*` (hash of the methods and seeds)
  for any other, and report only the runs of this invocation's methods and seeds.

    python benchmarks/mtl_minatar.py [--steps-per-game 100000] [--seeds 0 1 2]
        [--methods shared pcgrad ...] [--workers 2] [--train-freq 8]
        [--report-only | --overhead-only]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
BASELINE, REFERENCE = "independent", "shared"
METHODS: dict[str, dict[str, Any]] = {
    "independent": {"scheme": "independent"},
    "shared": {"scheme": "shared"},
    "conditioned": {"scheme": "conditioned"},
    "shared-private": {"scheme": "shared-private"},
    "routed-softmax": {"scheme": "routed", "routing": "softmax"},
    "routed-gumbel": {"scheme": "routed", "routing": "gumbel"},
    "shared+uncertainty": {"scheme": "shared", "balancer": "uncertainty"},
    "shared+gradnorm": {"scheme": "shared", "balancer": "gradnorm"},
    "shared+pcgrad": {"scheme": "shared", "balancer": "pcgrad"},
    "shared+popart": {"scheme": "shared", "popart": True},
}
OVERHEAD_METHODS = (
    "shared",
    "shared+uncertainty",
    "shared+gradnorm",
    "shared+pcgrad",
    "shared+popart",
)
BOOTSTRAP_RESAMPLES = 10_000
HASH_CHARS = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps-per-game", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument("--workers", type=int, default=2, help="runs at once, 1 thread each")
    parser.add_argument("--train-freq", type=int, default=8, help="vector steps per update")
    parser.add_argument("--eval-episodes", type=int, default=20, help="final eval per game")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--run-root",
        type=Path,
        default=Path("runs/mtl_minatar"),
        help="run folders: checkpoints, logs (not results)",
    )
    parser.add_argument("--overhead-updates", type=int, default=400, help="per method, in all")
    parser.add_argument("--overhead-rounds", type=int, default=10, help="turns each method takes")
    parser.add_argument("--overhead-threads", type=int, default=1)
    parser.add_argument(
        "--alone-steps", type=int, default=10_000, help="env steps per game of the timing runs"
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report")
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="only time updates and env steps/s (on a quiet machine), then rebuild the report",
    )
    return parser.parse_args(argv)


# --- what a run is, when it is reused, where its files go ----------------------------------


def base_config(args: argparse.Namespace) -> dict[str, Any]:
    """The multiq config keys every run of this invocation shares (built-in defaults otherwise)."""
    return {
        "tasks": "minatar",
        "train_freq": args.train_freq,
        "eval_freq": 0,
        "eval_episodes": args.eval_episodes,
        "checkpoint_freq": 0,
        "tensorboard": False,
        "progress_bar": False,
        "device": "cpu",
    }


def run_config(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The multiq config of one benchmark run: the shared keys, the method's keys and the seed."""
    return {**base_config(args), **METHODS[method], "seed": seed}


def run_spec(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Everything that shapes one run's result, as its JSON stores it."""
    return {
        "method": method,
        "seed": seed,
        "config": run_config(method, seed, args),
        "steps_per_game": args.steps_per_game,
        "games": list(GAMES),
    }


def stored_spec(run: dict[str, Any]) -> dict[str, Any]:
    """The spec a result JSON holds (older JSONs: steps and games from what they trained)."""
    return {
        "method": run.get("method"),
        "seed": run.get("seed"),
        "config": run.get("config"),
        "steps_per_game": run.get("steps_per_game", run.get("env_steps_per_task")),
        "games": run.get("games", list(run.get("tasks", {}))),
    }


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What shapes every run's result besides its method and seed."""
    return {
        "config": base_config(args),
        "steps_per_game": args.steps_per_game,
        "games": list(GAMES),
    }


def short_hash(value: Any) -> str:
    """A short SHA-256 of a JSON-ready value: the same in every process, for any dict order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def settings_tag(args: argparse.Namespace) -> str | None:
    """None for the default settings, else their short hash."""
    if settings(args) == settings(parse_args([])):
        return None
    return short_hash(settings(args))


def results_dir(args: argparse.Namespace) -> Path:
    """Where the runs, update times and report of this invocation's settings live."""
    tag = settings_tag(args)
    return args.out_dir if tag is None else args.out_dir / f"mtl_minatar_config-{tag}"


def runs_dir(args: argparse.Namespace) -> Path:
    """The folder of the result JSONs of this invocation's settings."""
    return results_dir(args) / "mtl_minatar_runs"


def run_file(args: argparse.Namespace, method: str, seed: int) -> Path:
    """Where one run's result JSON lives."""
    return runs_dir(args) / f"{method}-seed{seed}.json"


def report_stem(args: argparse.Namespace) -> str:
    """The report's file stem: `mtl_minatar` for the default methods and seeds."""
    chosen = {"methods": sorted(set(args.methods)), "seeds": sorted(set(args.seeds))}
    default = parse_args([])
    if chosen == {"methods": sorted(default.methods), "seeds": sorted(default.seeds)}:
        return "mtl_minatar"
    return f"mtl_minatar_subset-{short_hash(chosen)}"


def output_file(args: argparse.Namespace, suffix: str) -> Path:
    """The report (`.md`, `.png`) or update-times (`_update_ms.json`) file of this invocation."""
    return results_dir(args) / f"{report_stem(args)}{suffix}"


def finished_run(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any] | None:
    """The run's result when its JSON exists and holds this invocation's spec, else None."""
    path = run_file(args, method, seed)
    if not path.exists():
        return None
    run = json.loads(path.read_text())
    return run if stored_spec(run) == run_spec(method, seed, args) else None


def plan(args: argparse.Namespace) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(reused, to run): this invocation's (method, seed) pairs, seed-major, split by reuse."""
    pairs = dict.fromkeys((m, s) for s in args.seeds for m in args.methods)
    reused = [(m, s) for m, s in pairs if finished_run(m, s, args) is not None]
    return reused, [pair for pair in pairs if pair not in reused]


# --- the runs: trials of one `multiq sweep` --------------------------------------------------


def write_result(method: str, seed: int, args: argparse.Namespace, summary: dict[str, Any]) -> None:
    """Write one run's result JSON: its spec, then the model's summary (atomically)."""
    path = run_file(args, method, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**run_spec(method, seed, args), **summary}, indent=1))
    tmp.replace(path)


def trial_overrides(method: str, seed: int) -> dict[str, Any]:
    """The sweep trial of one (method, seed): the method's config keys and the seed."""
    return {**METHODS[method], "seed": seed}


def sweep_file(args: argparse.Namespace, todo: list[tuple[str, int]]) -> dict[str, Any]:
    """The `multiq sweep` file of the runs to do: the shared config and one trial per run."""
    return {
        "name": "mtl_minatar",
        "config": {**base_config(args), "total_steps_per_task": args.steps_per_game},
        "trials": [trial_overrides(m, s) for m, s in todo],
    }


def sweep_dir(args: argparse.Namespace) -> Path:
    """The sweep folder (a run folder per trial) under `--run-root`, keyed by the settings."""
    tag = settings_tag(args)
    return args.run_root if tag is None else args.run_root / tag


def run_all(args: argparse.Namespace) -> None:
    """Runs every (method, seed) without a finished run of this configuration as trials of one
    `multiq sweep` (Ray Tune, `--workers` at a time, one torch thread each; a trial's run folder
    that finished is kept, an interrupted one resumes), then writes their result JSONs."""
    import yaml

    from multiq.scale.sweep import run_sweep, trial_name

    reused, todo = plan(args)
    stale = sum(run_file(args, m, s).exists() for m, s in todo)
    print(
        f"reusing {len(reused)} finished runs with this configuration, running {len(todo)} "
        f"({stale} of them finished with another configuration), {args.workers} at a time; "
        f"runs in {runs_dir(args)}",
        flush=True,
    )
    if not todo:
        return
    folder = sweep_dir(args)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mtl_minatar.sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_file(args, todo), sort_keys=False))
    started = time.perf_counter()
    _, states = run_sweep(path, folder, max_concurrent=args.workers)
    for method, seed in todo:
        name = trial_name(trial_overrides(method, seed))
        state = states.get(name, {})
        if state.get("state") == "finished":
            write_result(
                method, seed, args, json.loads((folder / name / "summary.json").read_text())
            )
        print(f"{method} seed {seed}: {state.get('state')} {state.get('error') or ''}", flush=True)
    print(f"sweep of {len(todo)} runs: {time.perf_counter() - started:.0f} s", flush=True)


# --- update-time overhead (quiet, one thread) -----------------------------------------------


def update_runner(method: str) -> Callable[[], None]:
    """One update of `method` on fixed synthetic five-task batches of 32 samples per game."""
    from multiq import MultiTaskDQN
    from multiq.replay.buffers import NStepSample

    model = MultiTaskDQN(
        "minatar",
        **METHODS[method],
        device="cpu",
        progress_bar=False,
        tensorboard=False,
        run_dir="runs/mtl_minatar/overhead",
    )
    rng = np.random.default_rng(0)
    batch = 32

    def sample(task) -> NStepSample:
        obs = rng.random((batch, *task.obs_shape)) < 0.1
        return NStepSample(
            obs=obs.astype(task.obs_dtype),
            actions=rng.integers(0, task.num_actions, batch),
            returns=rng.normal(size=batch).astype(np.float32),
            next_obs=(rng.random((batch, *task.obs_shape)) < 0.1).astype(task.obs_dtype),
            discounts=np.full(batch, 0.99, np.float32),
        )

    samples = {task.name: sample(task) for task in model.task_specs}
    return lambda: model.learner.update(samples)


def update_ms(
    methods: tuple[str, ...], updates: int, rounds: int, threads: int
) -> dict[str, float]:
    """Median over `rounds` of each method's mean update milliseconds.

    The methods take turns within every round (in a rotated order), so drift in the machine's
    speed falls on all of them alike rather than on whichever was timed last.
    """
    import torch

    torch.set_num_threads(threads)
    runners = {m: update_runner(m) for m in methods}
    for run in runners.values():
        for _ in range(20):  # warm-up
            run()
    per_round = max(updates // rounds, 1)
    times: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(rounds):
        for method in methods[r % len(methods) :] + methods[: r % len(methods)]:
            start = time.perf_counter()
            for _ in range(per_round):
                runners[method]()
            times[method].append(1e3 * (time.perf_counter() - start) / per_round)
    return {m: float(np.median(t)) for m, t in times.items()}


def alone_steps_per_s(method: str, steps_per_game: int, threads: int = 1) -> float:
    """Total env steps/s of a short training run of `method` with nothing else running."""
    import torch

    from multiq import MultiTaskDQN

    torch.set_num_threads(threads)
    model = MultiTaskDQN(
        "minatar",
        **METHODS[method],
        device="cpu",
        progress_bar=False,
        tensorboard=False,
        checkpoint_freq=0,
        run_dir=f"runs/mtl_minatar/alone-{method}",
    )
    start = time.perf_counter()
    model.learn(total_steps_per_task=steps_per_game, evaluate=False)
    return len(GAMES) * steps_per_game / (time.perf_counter() - start)


def measure_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Update milliseconds per balancer (taking turns), then env steps/s of each method alone."""
    load = os.getloadavg()[0]
    threads = args.overhead_threads
    times = update_ms(OVERHEAD_METHODS, args.overhead_updates, args.overhead_rounds, threads)
    for method, ms in times.items():
        print(f"update time {method}: {ms:.2f} ms ({ms / times[REFERENCE]:.2f}x shared)")
    alone = {}
    if args.alone_steps > 0:
        for method in args.methods:
            alone[method] = alone_steps_per_s(method, args.alone_steps, threads)
            print(f"env steps/s alone {method}: {alone[method]:.0f}", flush=True)
    return {
        "command": shlex.join(["python", *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "threads": threads,
        "rounds": args.overhead_rounds,
        "load_before": load,
        "update_ms": times,
        "alone_steps_per_game": args.alone_steps,
        "alone_sps": alone,
    }


# --- report (numpy + matplotlib only) -------------------------------------------------------


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values` ([n] seeds)."""
    if len(values) == 1:
        return float(values[0]), float(values[0])
    picks = rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))
    means = values[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def load_runs(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Method -> its finished runs of this configuration, methods in `METHODS` order, by seed."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for method in (m for m in METHODS if m in args.methods):
        for seed in sorted(set(args.seeds)):
            run = finished_run(method, seed, args)
            if run is not None:
                runs.setdefault(method, []).append(run)
    return runs


def game_returns(runs: list[dict[str, Any]], key: str = "return_mean") -> np.ndarray:
    """[seeds, games] final (or random, with key random_return_mean) returns."""
    return np.array([[run["tasks"][g][key] for g in GAMES] for run in runs])


def scored_games(runs: dict[str, list[dict[str, Any]]]) -> np.ndarray:
    """[games] bool: games where the baseline clearly learned, so a ratio to it means something.

    A game counts when the lower end of the baseline's 95% bootstrap interval lies above the
    random policy's mean return (both over the baseline's seeds).
    """
    base, rng = runs[BASELINE], np.random.default_rng(0)
    floor = game_returns(base, "random_return_mean").mean(axis=0)
    returns = game_returns(base)
    lows = np.array([bootstrap_ci(returns[:, i], rng)[0] for i in range(len(GAMES))])
    return lows > floor


def normalised_scores(runs: dict[str, list[dict[str, Any]]]) -> dict[str, np.ndarray]:
    """Method -> [seeds] mean over the scored games of (R - R_random) / (R_independent - R_random).

    R_independent and R_random are the means over the baseline's seeds, so the baseline's own
    scores average to 1; games the baseline did not clearly learn are left out (`scored_games`).
    """
    base, keep = runs[BASELINE], scored_games(runs)
    floor = game_returns(base, "random_return_mean").mean(axis=0)[keep]  # [kept games]
    span = game_returns(base).mean(axis=0)[keep] - floor
    return {m: ((game_returns(r)[:, keep] - floor) / span).mean(axis=1) for m, r in runs.items()}


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Method -> per-game mean and interval, normalised score, steps/s, seeds."""
    rng = np.random.default_rng(0)
    scores = normalised_scores(runs) if BASELINE in runs and scored_games(runs).any() else {}
    ref_sps = np.mean([r["env_steps_per_s"] for r in runs.get(REFERENCE, [])] or [np.nan])
    table = {}
    for method, method_runs in runs.items():
        returns = game_returns(method_runs)
        row: dict[str, Any] = {
            "seeds": [r["seed"] for r in method_runs],
            "games": {
                g: (float(returns[:, i].mean()), *bootstrap_ci(returns[:, i], rng))
                for i, g in enumerate(GAMES)
            },
            "sps": float(np.mean([r["env_steps_per_s"] for r in method_runs])),
        }
        row["sps_vs_shared"] = row["sps"] / ref_sps
        if method in scores:
            row["score"] = (float(scores[method].mean()), *bootstrap_ci(scores[method], rng))
        table[method] = row
    return table


def verdicts(table: dict[str, dict[str, Any]]) -> list[str]:
    """One plain sentence per method on whether it beat the independent baseline."""
    lines = []
    for method, row in table.items():
        if method == BASELINE or "score" not in row:
            continue
        mean, low, high = row["score"]
        if len(row["seeds"]) < 2:
            verdict = "one seed only, no interval: no verdict"
        elif low > 1:
            verdict = "beat independent (the whole interval is above 1)"
        elif high < 1:
            verdict = "did worse than independent (the whole interval is below 1)"
        elif mean > 1:
            verdict = "scored above independent on average, but the interval includes 1"
        else:
            verdict = "did not beat independent (mean at or below 1, the interval includes 1)"
        lines.append(
            f"- **{method}**: normalised score {mean:.2f} [{low:.2f}, {high:.2f}]: {verdict}."
        )
    return lines


def ratio_cells(values: dict[str, float], method: str, fmt: str) -> str:
    """Two table cells: the method's value and its ratio to `shared` ("not timed" if absent)."""
    if method not in values or REFERENCE not in values:
        return "not timed | "
    return f"{values[method]:{fmt}} | {values[method] / values[REFERENCE]:.2f}x"


def markdown(table, overhead: dict[str, Any], scored: list[str], header: list[str]) -> str:
    """The result file: header, the per-game table, the summary table and the verdicts."""
    overhead_ms = overhead.get("update_ms", {})
    lines = [*header, "", "## Final return per game (mean over seeds [95% bootstrap interval])", ""]
    lines += ["| method | seeds | " + " | ".join(GAMES) + " |", "|---|---:|" + "---:|" * len(GAMES)]
    for method, row in table.items():
        cells = [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in row["games"].values()]
        lines.append(f"| {method} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", "## Summary", ""]
    if scored:
        lines += [
            f"Normalised score: mean over {', '.join(scored)} of "
            "`(R - R_random) / (R_independent - R_random)` per seed, with R_independent and "
            "R_random the baseline's means; games where the baseline's 95% interval does "
            "not clear the random return are left out; its interval is over the method's seeds "
            "with the baseline's means held fixed. Update time: "
            f"{overhead.get('threads', 1)} torch thread(s), synthetic five-task batches of "
            "32 per game, in one process, the methods taking turns; the median of "
            f"{overhead.get('rounds', 1)} turns each. Env steps/s in the "
            "runs: two runs shared the two cores, and other work ran beside some of them, so "
            "these are noisy; env steps/s alone: a "
            f"{overhead.get('alone_steps_per_game', 0):,}-steps-per-game training run of each "
            "method (1,000 of them warm-up) one after another on the quiet machine.",
            "",
        ]
    lines += [
        "| method | normalised score vs independent | env steps/s in the runs | vs shared | "
        "env steps/s alone | vs shared | update ms (5 tasks) | vs shared |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    alone = overhead.get("alone_sps", {})
    for method, row in table.items():
        score = "{:.2f} [{:.2f}, {:.2f}]".format(*row["score"]) if "score" in row else "n/a"
        lines.append(
            f"| {method} | {score} | {row['sps']:.0f} | {row['sps_vs_shared']:.2f}x | "
            f"{ratio_cells(alone, method, '.0f')} | {ratio_cells(overhead_ms, method, '.2f')} |"
        )
    lines += ["", "## Which methods beat the independent baseline at equal per-game budget", ""]
    lines += verdicts(table) or [
        "- (no normalised scores: the independent baseline has no finished runs or "
        "learned no game clearly)"
    ]
    lines += [
        "",
        "These intervals hold the baseline's per-game means fixed; the `independent` row's own "
        "interval shows how uncertain those means are, so with few seeds read a verdict whose "
        "interval only just clears 1 as indicative.",
    ]
    return "\n".join(lines) + "\n"


def plot(table: dict[str, dict[str, Any]], path: Path) -> None:
    """Per-game final returns with their intervals, one bar per method, plus the score panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(table)
    fig, axes = plt.subplots(1, len(GAMES) + 1, figsize=(4 * (len(GAMES) + 1), 4.5))
    x = np.arange(len(methods))
    panels = [(g, [table[m]["games"][g] for m in methods]) for g in GAMES]
    panels.append(("score vs independent", [table[m].get("score", (np.nan,) * 3) for m in methods]))
    for ax, (title, stats) in zip(axes, panels, strict=True):
        mean, low, high = (np.array(v) for v in zip(*stats, strict=True))
        ax.bar(x, mean, yerr=[mean - low, high - mean], color="tab:blue", capsize=3)
        ax.set_title(title)
        ax.set_xticks(x, methods, rotation=70, ha="right", fontsize=8)
    axes[-1].axhline(1.0, color="k", lw=0.8, ls="--")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def header_lines(
    runs: dict[str, list[dict[str, Any]]], load: float, overhead: dict[str, Any], source: Path
) -> list[str]:
    """Date, command, machine, the settings the finished runs used and the timing runs."""
    first = next(iter(runs.values()))[0]
    cfg = first["config"]
    seeds = sorted({r["seed"] for method_runs in runs.values() for r in method_runs})
    return [
        "# Multi-task methods on the five MinAtar games",
        "",
        f"- date of this report: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- command: `{shlex.join(['python', *sys.argv])}` (runs: `python "
        "benchmarks/mtl_minatar.py`, resumable; this file is rebuilt from the runs in "
        f"`{source}` whose stored configuration matches the command's)",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, no GPU; runs two at a time, "
        f"one torch thread each; 1-minute load average before this invocation: {load:.2f}",
        f"- budget: {first['env_steps_per_task']:,} env steps per game ({len(GAMES)} games in "
        f"one run), seeds {seeds}; one update (32 samples per game) every {cfg['train_freq']} "
        "env steps per game; otherwise the built-in defaults (Double DQN, 1-step, Adam 2.5e-4, "
        "buffer 100k per game, learning starts 1,000, hard target update every 1,000 steps, "
        "epsilon 1 -> 0.01 over the first 10%, hidden 128, uniform task schedule)",
        f"- final return: epsilon {0.01} policy, {cfg['eval_episodes']} episodes per game at the "
        "end of training; random return: as many uniformly random episodes",
        f"- update times and env steps/s alone: measured {overhead.get('date', '?')} by "
        f"`{overhead.get('command', '?')}`, 1-minute load average before: "
        f"{overhead.get('load_before', float('nan')):.2f}",
    ]


def report(args: argparse.Namespace, overhead: dict[str, Any], load: float) -> None:
    """Rebuild the report (`.md`, `.png`) from the finished runs of this configuration."""
    runs = load_runs(args)
    if not runs:
        print("no finished runs of this configuration to report")
        return
    table = summarise(runs)
    scored = (
        [g for g, k in zip(GAMES, scored_games(runs), strict=True) if k]
        if (BASELINE in runs)
        else []
    )
    path = output_file(args, ".md")
    path.write_text(
        markdown(table, overhead, scored, header_lines(runs, load, overhead, runs_dir(args)))
    )
    plot(table, path.with_suffix(".png"))
    print(path.read_text())
    print(f"report: {path} and {path.with_suffix('.png')}")


def main(argv: list[str] | None = None) -> None:
    """Run (or resume) the benchmark, time the updates, and write the report."""
    args = parse_args(argv)
    load = os.getloadavg()[0]
    overhead_file = output_file(args, "_update_ms.json")
    if not args.report_only:
        overhead_file.parent.mkdir(parents=True, exist_ok=True)
        overhead_file.write_text(json.dumps(measure_overhead(args), indent=1))
    if not (args.report_only or args.overhead_only):
        run_all(args)
    overhead = json.loads(overhead_file.read_text()) if overhead_file.exists() else {}
    report(args, overhead, load)


if __name__ == "__main__":
    main()
