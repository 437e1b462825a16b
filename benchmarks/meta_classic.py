"""Which initialisation learns unseen CartPole physics fastest? Meta-learning against its baselines.

Per seed, on the first `--n-train` train tasks of a task family (default `cartpole-physics`), with
the same pretraining budget of `--pretrain-steps` env steps each (each a `multiq` child process
with one torch thread, `--workers` at a time):
- ``reptile`` and ``fomaml``: `multiq meta` (outer iterations = budget / (meta_batch_size x env
  steps per inner loop, plus the query steps of fomaml));
- ``multitask``: `multiq train` on the train tasks together (scheme `shared`, budget / n_train env
  steps per task): the baseline that often wins (Mandi et al. 2022);
then adapt-k (`multiq adapt`): from each of the three and from ``scratch``, `--ks` env steps of
DQN on each of the first `--n-held-out` held-out tasks, evaluated after each k. Every
initialisation adapts with the same settings, tasks and env seeds (paired). Results: returns after
k with 95% bootstrap intervals over (task, seed) pairs, the paired difference of each
initialisation against multitask and scratch, a plot, and a verdict computed from the intervals.

Each family has its own folders: run folders under `--run-root/<family>`, result JSONs under
`--out-dir/meta_classic_runs/<family>`, the report `--out-dir/meta_classic_<family>.md` and `.png`.

Resuming: a run whose JSON exists under `--out-dir/meta_classic_runs/<family>` is not run again; a
finished folder is collected; an interrupted pretraining resumes from its checkpoint; an adapt
folder keeps its finished runs. `--report-only` rebuilds the report from the JSONs.

    python benchmarks/meta_classic.py [--family cartpole-physics] [--seeds 0 1 2]
        [--pretrain-steps 120000] [--ks 0 1000 3000 10000] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import transfer_common as common

from multiq.report.meta import adapt_summary, adapt_table, plot_adapt, read_meta_csv
from multiq.report.stats import bootstrap_ci
from multiq.runio.layout import ADAPT_FILE, CHECKPOINT_FILE, MODEL_FILE, SUMMARY_FILE

BENCH = "meta_classic"
ALGOS = ("reptile", "fomaml")
MULTITASK, SCRATCH = "multitask", "scratch"
MAX_RETURN = 1 / (1 - 0.99)  # gamma 0.99, |reward| <= 1 per step
INITS = (*ALGOS, MULTITASK, SCRATCH)
# shared by pretraining and adaptation (the adapt config), CartPole-sized; n_step 1 for all
# inits alike (the multitask pretraining would otherwise take the vector defaults' 3)
SETTINGS: dict[str, Any] = {
    "hidden_size": 64, "learning_rate": 1e-3, "batch_size": 64, "train_freq": 1, "n_step": 1,
    "exploration_fraction": 0.2, "exploration_final_eps": 0.05, "eval_episodes": 10,
    "inner_learning_starts": 200, "inner_buffer_size": 10_000, "inner_target_update": 250,
    "device": "cpu", "tensorboard": False, "progress_bar": False,
}  # fmt: skip
META_SETTINGS: dict[str, Any] = {
    "meta_batch_size": 4, "inner_steps": 500, "meta_step_size": 0.5, "meta_lr": 0.001,
    "meta_query_steps": 250, "meta_eval_freq": 5, "meta_outer_optimizer": "adam",
}  # fmt: skip
MULTITASK_SETTINGS: dict[str, Any] = {
    "learning_starts": 200, "target_update_interval": 250, "buffer_size": 50_000,
    "eval_freq": 5_000, "checkpoint_freq": 5_000,
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="cartpole-physics")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=8, help="train tasks pretrained on")
    parser.add_argument("--n-held-out", type=int, default=8, help="held-out tasks adapted to")
    parser.add_argument("--pretrain-steps", type=int, default=120_000, help="env steps in all")
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 1_000, 3_000, 10_000])
    parser.add_argument("--workers", type=int, default=2, help="runs at once, 1 thread each")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--run-root", type=Path, default=Path("runs") / BENCH)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if min(args.n_train, args.n_held_out, args.pretrain_steps) < 1 or min(args.ks) < 0:
        parser.error("--n-train, --n-held-out and --pretrain-steps must be >= 1, ks >= 0")
    return args


def iterations(algo: str, budget: int) -> int:
    """Outer iterations that spend `budget` env steps (at least one)."""
    per_task = META_SETTINGS["inner_steps"] + (
        META_SETTINGS["meta_query_steps"] if algo == "fomaml" else 0
    )
    return max(1, budget // (META_SETTINGS["meta_batch_size"] * per_task))


def pretrain_jobs(
    args: argparse.Namespace,
    seed: int,
    layout: common.Layout,
    meta_settings: Mapping[str, Any] | None = None,
) -> list[common.Job]:
    """The three pretraining runs of one seed; `meta_settings` replaces `META_SETTINGS` values
    in the meta-learning runs (as `benchmarks/fomaml_outer.py` does)."""
    train_tasks = f"family:{args.family}:train:{args.n_train}"
    meta = {**META_SETTINGS, **(meta_settings or {}), "meta_tasks": train_tasks}
    jobs = []
    for algo in ALGOS:
        name = f"{algo}-seed{seed}"
        argv = (
            "meta", "--algo", algo, "--meta-iterations", str(iterations(algo, args.pretrain_steps)),
            "--run-dir", str(layout.run_dir(name)), "--seed", str(seed),
            *common.set_flags({**SETTINGS, **meta}),
        )  # fmt: skip
        jobs.append(common.Job(name, common.PRETRAIN, argv, {"init": algo, "seed": seed}))
    name = f"{MULTITASK}-seed{seed}"
    argv = (
        "train", "--tasks", train_tasks, "--steps", str(args.pretrain_steps // args.n_train),
        "--run-dir", str(layout.run_dir(name)), "--seed", str(seed),
        *common.set_flags({**SETTINGS, **MULTITASK_SETTINGS}),
    )  # fmt: skip
    jobs.append(common.Job(name, common.PRETRAIN, argv, {"init": MULTITASK, "seed": seed}))
    return jobs


def adapt_jobs(args: argparse.Namespace, seed: int, layout: common.Layout) -> list[common.Job]:
    """The adapt-k runs of one seed, one per initialisation (its pretrained model, or scratch);
    every one adapts to the same held-out tasks with the same env seeds."""
    jobs = []
    for init in INITS:
        model = SCRATCH if init == SCRATCH else f"{init}={layout.model_file(f'{init}-seed{seed}')}"
        name = f"adapt-{init}-seed{seed}"
        argv = (
            "adapt", model, "--family", args.family, "--split", "held-out",
            "--n-tasks", str(args.n_held_out), "--k", ",".join(map(str, args.ks)),
            "--seeds", str(seed), "--out", str(layout.run_dir(name)),
            *common.set_flags(SETTINGS),
        )  # fmt: skip
        jobs.append(common.Job(name, "adapt", argv, {"init": init, "seed": seed}))
    return jobs


# --- running ----------------------------------------------------------------------------------


def decide(job: common.Job, layout: common.Layout) -> str:
    """skip (JSON exists), collect (finished folder), resume (checkpoint) or start."""
    run_dir = layout.run_dir(job.name)
    if layout.result_file(job.name).is_file():
        return common.SKIP
    if job.kind == common.PRETRAIN and common.finished(run_dir):
        return common.COLLECT
    if job.kind == common.PRETRAIN and (run_dir / CHECKPOINT_FILE).is_file():
        return common.RESUME
    return common.START


def resume_argv(job: common.Job, run_dir: Path) -> tuple[str, ...]:
    if job.argv[0] == "meta":
        return ("meta", "--resume", str(run_dir))
    return common.resume_argv(run_dir)


def execute(job: common.Job, action: str, layout: common.Layout) -> bool:
    """Runs (or resumes, or collects) one job and writes its result JSON."""
    run_dir = layout.run_dir(job.name)
    if action == common.START and job.kind == common.PRETRAIN and run_dir.exists():
        shutil.rmtree(run_dir)  # a folder without a checkpoint: start afresh
    if action in (common.START, common.RESUME):
        argv = resume_argv(job, run_dir) if action == common.RESUME else job.argv
        if common.launch(job, action, argv, layout) is None:
            return False
    result = {**job.info, "name": job.name, "command": shlex.join(job.argv)}
    if job.kind == common.PRETRAIN:
        common.keep_model(run_dir / MODEL_FILE, layout.model_file(job.name))
        result.update(pretrain_fields(run_dir))
    else:
        result["adapt"] = json.loads((run_dir / ADAPT_FILE).read_text())
    result["machine"] = common.machine_info()
    common.write_json(layout.result_file(job.name), result)
    return True


def pretrain_fields(run_dir: Path) -> dict[str, Any]:
    """Budget, time and the meta curve (or the multi-task summary) of a pretraining run."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    if "meta" in summary:
        rows = read_meta_csv(run_dir)
        return {"env_steps": summary["meta"]["env_steps"],
                "wall_time_s": summary["meta"]["wall_time_s"], "meta_rows": rows}  # fmt: skip
    steps = sum(summary["task_env_steps"].values())
    returns = {n: t["return_mean"] for n, t in summary["tasks"].items()}
    return {"env_steps": steps, "wall_time_s": summary["wall_time_s"], "train_returns": returns}


def run_all(args: argparse.Namespace, layout: common.Layout) -> None:
    """Pretraining first (all seeds), then the adapt runs."""
    for jobs in (
        [job for seed in args.seeds for job in pretrain_jobs(args, seed, layout)],
        [job for seed in args.seeds for job in adapt_jobs(args, seed, layout)],
    ):
        planned = [(job, decide(job, layout)) for job in jobs]
        print(", ".join(f"{job.name}: {action}" for job, action in planned), flush=True)
        outcome = common.run_jobs(planned, args.workers, lambda j, a: execute(j, a, layout))
        failed = [name for name, ok in outcome.items() if not ok]
        if failed:
            print(f"not finished: {', '.join(failed)} (rerun the same command)", flush=True)
            return


# --- the report ---------------------------------------------------------------------------------


def load(layout: common.Layout) -> tuple[list[dict], list[dict]]:
    """(pretraining results, adapt rows of every seed)."""
    results = common.load_results(layout.results_dir)
    pretrain = [r for r in results if "adapt" not in r]
    rows = [row for r in results if "adapt" in r for row in r["adapt"]["rows"]]
    return pretrain, rows


def paired_differences(rows: Sequence[Mapping[str, Any]], base: str) -> dict[str, dict]:
    """init -> k -> (mean, low, high) of return(init) - return(base), paired by (task, seed)."""
    by_key = {(r["init"], r["task"], r["seed"], r["k"]): r["return"] for r in rows}
    out: dict[str, dict] = {}
    for init, task, seed, k in by_key:
        if init == base or (base, task, seed, k) not in by_key:
            continue
        diff = by_key[(init, task, seed, k)] - by_key[(base, task, seed, k)]
        out.setdefault(init, {}).setdefault(k, []).append(diff)
    return {i: {k: bootstrap_ci(v) for k, v in sorted(d.items())} for i, d in out.items()}


def verdict(summary: Mapping[str, dict], pairwise: Mapping[str, Mapping[str, dict]]) -> list[str]:
    """Per k: the best initialisation and its paired difference to the runner-up."""
    lines = []
    for k in sorted({k for by_k in summary.values() for k in by_k}):
        ranked = sorted(summary, key=lambda init: -summary[init][k][0])
        best, second = ranked[0], ranked[1]
        mean, low, high = pairwise[second][best][k]  # best minus second, paired
        word = "ahead of" if low > 0 else "not separated from"
        lines.append(
            f"- k = {k}: {best} is best ({summary[best][k][0]:.1f}), {word} {second} "
            f"({summary[second][k][0]:.1f}): paired difference {mean:+.1f} "
            f"[{low:+.1f}, {high:+.1f}]"
        )
    return lines


def diverged(pretrain: Sequence[Mapping[str, Any]], qs: Mapping[str, float]) -> list[str]:
    """A line per initialisation whose |Q at start| exceeds any possible |return| (all seeds)."""
    by_init: dict[str, list[float]] = {}
    for r in pretrain:
        by_init.setdefault(r["init"], []).append(qs[r["name"]])
    return [
        f"- {init}: Q at start {min(values):.0f} to {max(values):.0f} over the seeds, beyond "
        f"+-{MAX_RETURN:.0f} (no discounted return is larger): its pretraining diverged"
        for init, values in by_init.items()
        if values and min(abs(v) for v in values) > MAX_RETURN
    ]


def start_q(model_file: Path, family: str, states: int = 256) -> float:
    """Mean over `states` start states of the family's first held-out task of max_a Q."""
    from multiq.api import MultiTaskDQN
    from multiq.config import Config
    from multiq.recipes.adapt import Init, adapt_learner
    from multiq.tasks import make_taskset

    if not model_file.is_file():
        return math.nan
    model = MultiTaskDQN.load(model_file, device="cpu")
    (spec,) = make_taskset(f"family:{family}:held-out@0")
    learner = adapt_learner(Init("", model), spec, Config(head_init="mean"), model.config, 0)
    env = spec.make_env()
    obs = [env.reset(seed=i)[0] for i in range(states)]
    env.close()
    q = learner.policy.q_values({spec.name: np.stack(obs)})
    return float(q.max(1).values.mean())


def write_report(args: argparse.Namespace, layout: common.Layout) -> Path | None:
    pretrain, rows = load(layout)
    if not rows:
        print("no adapt results yet")
        return None
    data = {"rows": rows, "title": f"{args.family}: held-out tasks, adapt-k"}
    summary = adapt_summary(rows)
    pairwise = {base: paired_differences(rows, base) for base in summary}
    lines = [
        f"# Meta-learning on `{args.family}`: adapt-k on held-out tasks",
        "",
        f"Command: `{common.invocation().replace(' --report-only', '')}` (`--report-only` "
        "rebuilds this file)  ",
        f"Date: {common.now()}; machine: {common.machine_text(common.machine_info())}  ",
        f"Seeds: {sorted({r['seed'] for r in rows})}; held-out tasks: "
        f"{len({r['task'] for r in rows})}; pretraining budget: {args.pretrain_steps} env "
        f"steps per initialisation on {args.n_train} train tasks.",
        "",
        "Settings (all runs): " + ", ".join(f"{k}={v}" for k, v in SETTINGS.items()),
        "Meta: "
        + ", ".join(f"{k}={v}" for k, v in META_SETTINGS.items())
        + f"; iterations reptile {iterations('reptile', args.pretrain_steps)}, fomaml "
        f"{iterations('fomaml', args.pretrain_steps)}",
        "",
        "## Return after k env steps of adaptation",
        "",
        adapt_table(data),
        "",
        "## Paired differences (init minus base, same task and seed; mean [95% CI])",
        "",
    ]
    for base in (MULTITASK, SCRATCH):
        if base not in summary:
            continue
        lines.append(f"Against {base}:")
        lines.append("")
        for init, by_k in pairwise[base].items():
            cells = ", ".join(f"k={k}: {m:+.1f} [{lo:+.1f}, {hi:+.1f}]"
                              for k, (m, lo, hi) in by_k.items())  # fmt: skip
            lines.append(f"- {init}: {cells}")
        lines.append("")
    qs = {r["name"]: start_q(layout.model_file(r["name"]), args.family) for r in pretrain}
    lines += ["## Verdict", "", *verdict(summary, pairwise), *diverged(pretrain, qs), ""]
    lines += [
        "## Pretraining",
        "",
        "Q at start: the mean over 256 start states of the first held-out task of max_a Q (the",
        "initialisation's own scale; with gamma 0.99 and rewards in [-1, 1] no discounted return",
        f"exceeds {MAX_RETURN:.0f}).",
        "",
        "| run | env steps | wall s | last post-adaptation return | Q at start |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in sorted(pretrain, key=lambda r: r["name"]):
        post = [row["post_return"] for row in r.get("meta_rows", [])
                if not math.isnan(row["post_return"])]  # fmt: skip
        last = f"{post[-1]:.1f}" if post else "–"
        q = qs[r["name"]]
        lines.append(
            f"| {r['name']} | {r['env_steps']} | {r['wall_time_s']:.0f} | {last} | {q:.1f} |"
        )
    out = args.out_dir / f"{BENCH}_{args.family}.md"
    plot_adapt(data, args.out_dir / f"{BENCH}_{args.family}.png")
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    family = args.family
    layout = common.Layout(args.run_root / family, args.out_dir / f"{BENCH}_runs" / family)
    if not args.report_only:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        run_all(args, layout)
    path = write_report(args, layout)
    if path is not None:
        print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
