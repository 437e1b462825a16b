"""Which defaults let a MiniGrid task learn? Candidate settings measured on several layouts.

MiniGrid had no row in the per-family defaults (`multiq.config.FAMILY_DEFAULTS`) and took the
base (MinAtar) one, with which `MiniGrid-DoorKey-5x5` learns nothing in 60k env steps. Each
candidate below is a set of `--set` keys on top of the base defaults; every candidate trains
every layout for `--steps` env steps with every seed (`multiq train`, one torch thread), and the
report gives per layout and candidate the final evaluation return and the mean of the
evaluation curve (its area per step, so slow learning counts), both with 95% bootstrap intervals
over seeds, and how many seeds solved the layout (final return >= `--solved`). The candidate
with the best mean area over the layouts (each layout's area scaled by the best candidate's
there) is named; the `minigrid` row of `by_family` in `multiq/config/keys.py` is set from it.

Resuming as `transfer_common`: a run whose JSON exists under `--out-dir/minigrid_defaults_runs`
is not run again; `--report-only` rebuilds the report from the JSONs.

    python benchmarks/minigrid_defaults.py [--layouts ...] [--seeds 0 1 2] [--steps 100000]
        [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import transfer_common as common

from multiq.report.stats import bootstrap_ci

BENCH = "minigrid_defaults"
TRAIN = "train"
LAYOUTS = ("MiniGrid-DoorKey-5x5-v0", "MiniGrid-LavaGapS5-v0")
# candidate -> the keys it sets on top of the base defaults (the MinAtar row)
CANDIDATES: dict[str, dict[str, Any]] = {
    "base": {},
    "vector-row": {
        "learning_rate": 1e-3, "batch_size": 64, "n_step": 3, "target_update_interval": 500,
        "exploration_fraction": 0.2, "buffer_size": 50_000,
    },
    # the settings with which DoorKey-5x5 was solved when the issue was filed
    "nstep3-eps0.5": {"n_step": 3, "exploration_fraction": 0.5, "learning_rate": 5e-4},
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS))
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    parser.add_argument("--solved", type=float, default=0.5, help="final return that counts")
    parser.add_argument("--workers", type=int, default=2, help="runs at once, 1 thread each")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--run-root", type=Path, default=Path("runs") / BENCH)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    args.candidates = args.candidates or list(CANDIDATES)
    return args


def short(layout: str) -> str:
    """`MiniGrid-DoorKey-5x5-v0` -> `DoorKey-5x5` (for run names and tables)."""
    return layout.removeprefix("MiniGrid-").rsplit("-v", 1)[0]


def all_jobs(args: argparse.Namespace, layout: common.Layout) -> list[common.Job]:
    """One training run per (candidate, layout, seed)."""
    jobs = []
    for candidate in args.candidates:
        settings = {**CANDIDATES[candidate], "checkpoint_freq": 0}
        for task in args.layouts:
            for seed in args.seeds:
                name = f"{candidate}-{short(task)}-seed{seed}"
                argv = common.pretrain_argv(
                    [task], args.steps, seed, layout.run_dir(name), settings
                )
                info = {"candidate": candidate, "layout": task, "seed": seed,
                        "steps": args.steps, "settings": CANDIDATES[candidate]}  # fmt: skip
                jobs.append(common.Job(name, TRAIN, argv, info))
    return jobs


# --- the report ---------------------------------------------------------------------------------


def area(curve: Sequence[Sequence[float]]) -> float:
    """The mean of the evaluation returns over the run (the step-0 evaluation excluded when
    the curve has one), i.e. the area under the eval curve per evaluation."""
    values = [value for step, value in curve if step > 0]
    return float(sum(values) / len(values)) if values else math.nan


def cells(results: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, list]]:
    """(candidate, layout) -> {"final": [...], "area": [...]} over seeds."""
    table: dict[tuple[str, str], dict[str, list]] = {}
    for result in results:
        task = result["layout"]
        (curve,) = result["curves"].values()  # one task per run (named without "-v0")
        cell = table.setdefault((result["candidate"], task), {"final": [], "area": []})
        cell["final"].append(float(curve[-1][1]))
        cell["area"].append(area(curve))
    return table


def interval(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    mean, low, high = bootstrap_ci(values)
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def scaled_areas(table: Mapping, candidates: Sequence[str], layouts: Sequence[str]) -> dict:
    """candidate -> mean over layouts of its mean area / the best candidate's on that layout."""
    scores: dict[str, float] = {}
    for candidate in candidates:
        ratios = []
        for task in layouts:
            best = max(mean(table.get((c, task), {}).get("area", [])) for c in candidates)
            own = mean(table.get((candidate, task), {}).get("area", []))
            ratios.append(own / best if best > 0 else math.nan)
        scores[candidate] = mean(ratios)
    return scores


def markdown(args: argparse.Namespace, results: Sequence[Mapping[str, Any]], load: float) -> str:
    table = cells(results)
    candidates = [c for c in args.candidates if any(k[0] == c for k in table)]
    layouts = [t for t in args.layouts if any(k[1] == t for k in table)]
    seeds = sorted({r["seed"] for r in results})
    walls = [r["wall_time_s"] for r in results if r.get("wall_time_s")]
    lines = [
        "# MiniGrid defaults: which settings let a layout learn",
        "",
        f"- date of this report: {common.now()}; command: `{common.invocation()}`",
        f"- runs launched by: {common.distinct(r.get('invocation', '?') for r in results)}",
        "- machine of the runs: "
        f"{common.distinct(common.machine_text(r.get('machine', {})) for r in results)}",
        f"- 1-minute load average at this invocation: {load:.2f} (each run: one child process, "
        "one torch thread)",
        f"- budget: {common.distinct(r['steps'] for r in results)} env steps per run; seeds "
        f"{seeds}; wall time per run {min(walls):.0f} to {max(walls):.0f} s"
        if walls
        else "",
        "- every candidate on top of the base defaults (the MinAtar row: learning_rate 2.5e-4, "
        "batch_size 32, n_step 1, target_update_interval 1000, exploration_fraction 0.1, "
        "buffer_size 100000, learning_starts 1000, train_freq 4):",
    ]
    for candidate in candidates:
        settings = ", ".join(f"{k}={v}" for k, v in CANDIDATES[candidate].items()) or "nothing"
        lines.append(f"  - `{candidate}`: {settings}")
    lines += [
        "",
        "Final = the last evaluation (10 episodes, epsilon 0.01); area = the mean of the "
        "evaluations after step 0 (learning sooner scores higher); solved = seeds whose final "
        f"return is >= {args.solved}. Means with 95% bootstrap intervals over seeds.",
        "",
        "| layout | candidate | final | area | solved |",
        "|---|---|---|---|---|",
    ]
    for task in layouts:
        for candidate in candidates:
            cell = table.get((candidate, task))
            if cell is None:
                continue
            solved = sum(value >= args.solved for value in cell["final"])
            lines.append(
                f"| {short(task)} | {candidate} | {interval(cell['final'])} | "
                f"{interval(cell['area'])} | {solved} of {len(cell['final'])} |"
            )
    scores = scaled_areas(table, candidates, layouts)
    ranked = sorted(scores, key=lambda c: -scores[c] if not math.isnan(scores[c]) else math.inf)
    lines += [
        "",
        "## Ranking (mean over layouts of area / the best candidate's area on that layout)",
        "",
    ]
    lines += [f"{i}. `{c}`: {scores[c]:.2f}" for i, c in enumerate(ranked, start=1)]
    return "\n".join(line for line in lines if line is not None) + "\n"


def write_report(args: argparse.Namespace, layout: common.Layout, load: float) -> Path | None:
    def render(results: list[dict[str, Any]]) -> str:
        return markdown(args, [r for r in results if r["kind"] == TRAIN], load)

    return common.write_markdown_report(layout, args.out_dir / f"{BENCH}.md", TRAIN, render)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = common.Layout(args.run_root, args.out_dir / f"{BENCH}_runs")
    common.run_then_report(
        args, all_jobs(args, layout), layout, lambda load: write_report(args, layout, load)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
