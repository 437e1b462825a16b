"""Which outer step keeps FOMAML finite, and does it still learn? A sweep of the outer optimiser.

FOMAML's meta-weights drifted to Q-values of 710-832 on `cartpole-physics` with the outer SGD
step at `meta_lr` 0.05, where no discounted return exceeds 100 (gamma 0.99, reward 1 per step).
This runs the meta benchmark's FOMAML pretraining (`benchmarks/meta_classic.py`: the same command,
settings, budget and 8 train tasks) once per (outer optimiser, `meta_lr`, seed) and reports for
each: Q at start (the mean over 256 start states of the first held-out task of max_a Q, as the
meta benchmark computes it), the last post-adaptation evaluation return of the run (meta.csv's
`post_return`: theta adapted for `inner_steps` on the evaluation tasks) and the wall time.

Resuming as the meta benchmark: a run whose JSON exists under
`--out-dir/fomaml_outer_runs/<family>` is not run again; `--report-only` rebuilds
`fomaml_outer_<family>.md` from the JSONs.

    python benchmarks/fomaml_outer.py [--settings adam:0.001 adam:0.01 sgd:0.05 ...]
        [--seeds 0] [--family cartpole-physics] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import meta_classic
import transfer_common as common

BENCH = "fomaml_outer"
SETTINGS = ("adam:0.001", "adam:0.003", "adam:0.01", "adam:0.03", "sgd:0.005", "sgd:0.05")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="OPTIMISER:LR")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--family", default="cartpole-physics")
    parser.add_argument("--pretrain-steps", type=int, default=120_000, help="env steps in all")
    parser.add_argument("--workers", type=int, default=2, help="runs at once, 1 thread each")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--run-root", type=Path, default=Path("runs") / BENCH)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    for setting in args.settings:
        optimiser, _, lr = setting.partition(":")
        if optimiser not in ("adam", "sgd") or not lr or float(lr) <= 0:
            parser.error(
                f"--settings takes OPTIMISER:LR with adam or sgd and LR > 0, got {setting}"
            )
    return args


def job(args: argparse.Namespace, setting: str, seed: int, layout: common.Layout) -> common.Job:
    """The meta benchmark's FOMAML pretraining with this outer optimiser and step size."""
    optimiser, _, lr = setting.partition(":")
    name = f"{optimiser}-{lr}-seed{seed}"
    meta_args = argparse.Namespace(
        family=args.family, n_train=8, pretrain_steps=args.pretrain_steps
    )
    meta = {"meta_lr": lr, "meta_outer_optimizer": optimiser}
    (base,) = [j for j in meta_classic.pretrain_jobs(meta_args, seed, layout, meta)
               if j.info["init"] == "fomaml"]  # fmt: skip
    argv = [*base.argv]
    argv[argv.index("--run-dir") + 1] = str(layout.run_dir(name))
    info = {"optimiser": optimiser, "meta_lr": float(lr), "seed": seed, "family": args.family}
    return common.Job(name, common.PRETRAIN, tuple(argv), info)


def collect_q(layout: common.Layout, jobs: Sequence[common.Job], family: str) -> None:
    """Adds `start_q` to every result JSON that lacks it (from the kept model.pt)."""
    for one in jobs:
        path = layout.result_file(one.name)
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        if "start_q" not in result:
            result["start_q"] = meta_classic.start_q(layout.model_file(one.name), family)
            common.write_json(path, result)


def last_post_return(result: Mapping[str, Any]) -> float:
    """The run's last post-adaptation evaluation (meta.csv), nan if none."""
    rows = [
        r for r in result.get("meta_rows", []) if not math.isnan(r.get("post_return", math.nan))
    ]
    return float(rows[-1]["post_return"]) if rows else math.nan


def markdown(results: Sequence[Mapping[str, Any]], load: float, family: str) -> str:
    scale = "no discounted return exceeds 100 in size (gamma 0.99, |reward| <= 1)"
    lines = [
        f"# FOMAML's outer step on `{family}`: finite, and learning?",
        "",
        f"- date of this report: {common.now()}; command: `{common.invocation()}`",
        f"- runs launched by: {common.distinct(r.get('invocation', '?') for r in results)}",
        "- machine: " + common.distinct(common.machine_text(r.get("machine", {})) for r in results),
        f"- 1-minute load average at this invocation: {load:.2f}",
        "- each run: the meta benchmark's FOMAML pretraining (120k env steps, 40 outer "
        "iterations of 4 tasks x (500 inner + 250 query steps), 8 train tasks) with the outer "
        "optimiser and `meta_lr` of its row; Q at start: mean over 256 start states of the "
        f"first held-out task of max_a Q ({scale}); post return: the run's last evaluation of "
        "theta adapted for 500 steps",
        "",
        "| optimiser | meta_lr | seed | Q at start | last post-adaptation return | wall s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    order = sorted(results, key=lambda r: (r["optimiser"], r["meta_lr"], r["seed"]))
    for r in order:
        lines.append(
            f"| {r['optimiser']} | {r['meta_lr']:g} | {r['seed']} | "
            f"{r.get('start_q', math.nan):.1f} | {last_post_return(r):.1f} | "
            f"{r.get('wall_time_s') or math.nan:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = common.Layout(
        args.run_root / args.family, args.out_dir / f"{BENCH}_runs" / args.family
    )
    jobs = [job(args, s, seed, layout) for s in args.settings for seed in args.seeds]
    load = os.getloadavg()[0]
    if not args.report_only:
        planned = [(one, meta_classic.decide(one, layout)) for one in jobs]
        print(", ".join(f"{one.name}: {action}" for one, action in planned), flush=True)
        common.run_jobs(planned, args.workers, lambda j, a: meta_classic.execute(j, a, layout))
    collect_q(layout, jobs, args.family)
    results = common.load_results(layout.results_dir)
    if not results:
        print("no finished runs yet")
        return 0
    path = args.out_dir / f"{BENCH}_{args.family}.md"
    path.write_text(markdown(results, load, args.family), encoding="utf-8")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
