"""Does a fine-tuned target keep its source's return? The target's own exploration, measured.

The meta benchmark's setting (`benchmarks/meta_classic.py`): per seed, one multi-task agent is
pretrained on the first `--n-train` train tasks of `cartpole-physics` (the same command and
settings as that benchmark's ``multitask`` run), then fine-tuned (`multiq transfer --mode
finetune`, `head_init=mean`: the target starts from the mean of the source's heads, so it acts
as the source does) on each of the first `--n-held-out` held-out tasks for max(`--ks`) env steps,
once per arm:
- ``today``: the defaults (exploration from `exploration_initial_eps` = 1, a random warm-up of
  `learning_starts` steps, an empty replay);
- ``eps``: `transfer_initial_eps` = `--initial-eps` (default 0.1);
- ``prefill``: `transfer_prefill_steps` = `--prefill` (default 1000): the source's policy fills
  the replay at `exploration_final_eps` first (those steps count against the budget);
- ``both``: the two together;
- ``scratch``: a fresh agent, for reference.
Each target run evaluates at step 0 and every gcd(ks) steps. The report gives the return at each
k (95% bootstrap intervals over (task, seed) pairs), each arm's paired difference to ``today``,
the dip (return at k - return at 0) and a verdict per arm from the intervals.

Resuming as `transfer_common`: a run whose JSON exists under `--out-dir/transfer_exploration_runs`
is not run again; `--report-only` rebuilds the report from the JSONs.

    python benchmarks/transfer_exploration.py [--seeds 0 1 2] [--ks 0 1000 3000 10000]
        [--pretrain-steps 120000] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import meta_classic
import transfer_common as common

from multiq.report.stats import bootstrap_ci

BENCH = "transfer_exploration"
FAMILY = "cartpole-physics"
TODAY, SCRATCH = "today", "scratch"
ARMS = (TODAY, "eps", "prefill", "both", SCRATCH)
# the target runs' settings besides the arm's: the meta benchmark's pretraining settings
TARGET_SETTINGS: dict[str, Any] = {
    **meta_classic.SETTINGS,
    "learning_starts": meta_classic.MULTITASK_SETTINGS["learning_starts"],
    "target_update_interval": meta_classic.MULTITASK_SETTINGS["target_update_interval"],
    "buffer_size": meta_classic.MULTITASK_SETTINGS["buffer_size"],
    "head_init": "mean",
    "checkpoint_freq": 0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=8, help="train tasks pretrained on")
    parser.add_argument("--n-held-out", type=int, default=4, help="held-out target tasks")
    parser.add_argument("--pretrain-steps", type=int, default=120_000, help="env steps in all")
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 1_000, 3_000, 10_000])
    parser.add_argument("--initial-eps", type=float, default=0.1, help="arms eps and both")
    parser.add_argument("--prefill", type=int, default=1_000, help="arms prefill and both")
    parser.add_argument("--workers", type=int, default=2, help="runs at once, 1 thread each")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--run-root", type=Path, default=Path("runs") / BENCH)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if min(args.n_train, args.n_held_out, args.pretrain_steps) < 1 or min(args.ks) < 0:
        parser.error("--n-train, --n-held-out and --pretrain-steps must be >= 1, ks >= 0")
    if not 0 < args.prefill < max(args.ks):
        parser.error("--prefill must be in (0, max(ks)): the target must train after it")
    return args


def arm_settings(args: argparse.Namespace, arm: str) -> dict[str, Any]:
    """The transfer keys of one arm (today and scratch: none, so the defaults)."""
    eps = {"transfer_initial_eps": args.initial_eps}
    prefill = {"transfer_prefill_steps": args.prefill}
    return {"eps": eps, "prefill": prefill, "both": {**eps, **prefill}}.get(arm, {})


def eval_every(ks: Sequence[int]) -> int:
    """The evaluation interval that lands on every k > 0: their gcd."""
    return math.gcd(*[k for k in ks if k > 0]) or max(ks)


def pretrain_job(args: argparse.Namespace, seed: int, layout: common.Layout) -> common.Job:
    """The meta benchmark's multitask pretraining of one seed (same command and settings)."""
    (job,) = [
        j for j in meta_classic.pretrain_jobs(args_for_meta(args), seed, layout)
        if j.info["init"] == meta_classic.MULTITASK
    ]  # fmt: skip
    info = {**job.info, "pretrain_steps": args.pretrain_steps // args.n_train}
    return common.Job(job.name, common.PRETRAIN, job.argv, info)


def args_for_meta(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(
        family=FAMILY, n_train=args.n_train, pretrain_steps=args.pretrain_steps
    )


def target_jobs(args: argparse.Namespace, seed: int, layout: common.Layout) -> list[common.Job]:
    """Every arm on every held-out task of one seed, after that seed's pretraining."""
    source = f"{meta_classic.MULTITASK}-seed{seed}"
    steps = max(args.ks)
    jobs = []
    for index in range(args.n_held_out):
        target = f"family:{FAMILY}:held-out@{index}"
        for arm in ARMS:
            name = f"{arm}-t{index}-seed{seed}"
            settings = {**TARGET_SETTINGS, "eval_freq": eval_every(args.ks),
                        **arm_settings(args, arm)}  # fmt: skip
            mode = SCRATCH if arm == SCRATCH else "finetune"
            argv = common.transfer_argv(
                layout.model_file(source), [target], mode, steps, seed, layout.run_dir(name),
                settings,
            )  # fmt: skip
            info = {
                "arm": arm, "target": f"t{index}", "seed": seed, "target_steps": steps,
                "pretrain_steps": args.pretrain_steps // args.n_train, "settings": settings,
            }  # fmt: skip
            jobs.append(common.Job(name, common.TARGET, argv, info, after=source))
    return jobs


def all_jobs(args: argparse.Namespace, layout: common.Layout) -> list[common.Job]:
    pretrain = [pretrain_job(args, seed, layout) for seed in args.seeds]
    return pretrain + [job for seed in args.seeds for job in target_jobs(args, seed, layout)]


# --- the report ---------------------------------------------------------------------------------


def return_at(curve: Sequence[Sequence[float]], k: int) -> float:
    """The evaluation return at step k (the first evaluation at or after k; nan if none)."""
    later = [value for step, value in curve if step >= k]
    return float(later[0]) if later else math.nan


def returns_table(results: Sequence[Mapping[str, Any]], ks: Sequence[int]) -> dict:
    """arm -> k -> {(target, seed): return} of the target runs."""
    table: dict[str, dict[int, dict[tuple[str, int], float]]] = {}
    for result in results:
        if result["kind"] != common.TARGET:
            continue
        (task,) = result["target_tasks"]
        curve = result["curves"][task]
        for k in ks:
            cell = table.setdefault(result["arm"], {}).setdefault(k, {})
            cell[(result["target"], result["seed"])] = return_at(curve, k)
    return table


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    return bootstrap_ci(values) if len(values) else (math.nan, math.nan, math.nan)


def shared_pairs(table: Mapping, arm: str, base: str, k: int, base_k: int | None = None) -> list:
    """The (task, seed) pairs with a return of `arm` at k and of `base` at `base_k` (or k)."""
    ours = table.get(arm, {}).get(k, {})
    theirs = table.get(base, {}).get(k if base_k is None else base_k, {})
    return sorted(set(ours) & set(theirs))


def paired(table: Mapping, arm: str, base: str, k: int, base_k: int | None = None) -> tuple:
    """Mean and 95% interval of return(arm, k) - return(base, base_k) over shared pairs."""
    ours = table.get(arm, {}).get(k, {})
    theirs = table.get(base, {}).get(k if base_k is None else base_k, {})
    keys = shared_pairs(table, arm, base, k, base_k)
    return interval([ours[key] - theirs[key] for key in keys])


def fmt(stat: Sequence[float]) -> str:
    mean, low, high = stat
    return "n/a" if math.isnan(mean) else f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def verdict(table: Mapping, ks: Sequence[int]) -> list[str]:
    """Per arm and k > 0: ahead of, behind, or no clear difference from today (interval)."""
    lines = []
    for arm in ARMS:
        if arm == TODAY or arm not in table:
            continue
        words = []
        for k in ks:
            if k == 0:
                continue
            if len(shared_pairs(table, arm, TODAY, k)) < 2:
                words.append(f"k = {k}: fewer than 2 (task, seed) pairs, no interval: no verdict")
                continue
            mean, low, high = paired(table, arm, TODAY, k)
            word = "no clear difference"
            if low > 0:
                word = "ahead"
            elif high < 0:
                word = "behind"
            words.append(f"k = {k}: {word} ({mean:+.1f} [{low:.1f}, {high:.1f}])")
        lines.append(f"- {arm} against today: " + "; ".join(words))
    return lines


def markdown(args: argparse.Namespace, results: Sequence[Mapping[str, Any]], load: float) -> str:
    table = returns_table(results, args.ks)
    arms = [arm for arm in ARMS if arm in table]
    lines = common.header_lines(
        "Transfer exploration: keeping the source's return while fine-tuning", results, load
    )
    lines += [
        f"- arms: eps = transfer_initial_eps {args.initial_eps}; prefill = "
        f"transfer_prefill_steps {args.prefill} (counted in the target budget); both; scratch",
        "",
        "## Return after k target env steps (mean [95% interval] over (task, seed) pairs)",
        "",
        "| arm | " + " | ".join(f"k = {k}" for k in args.ks) + " |",
        "|---" * (len(args.ks) + 1) + "|",
    ]
    for arm in arms:
        cells = [fmt(interval(list(table[arm][k].values()))) for k in args.ks]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "## Dip: return at k - return at k = 0 (paired)", ""]
    later = [k for k in args.ks if k > 0]
    lines += ["| arm | " + " | ".join(f"k = {k}" for k in later) + " |"]
    lines += ["|---" * (len(later) + 1) + "|"]
    for arm in arms:
        cells = [fmt(paired(table, arm, arm, k, base_k=min(args.ks))) for k in later]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "## Verdict (paired difference to today; interval above / below 0)", ""]
    lines += verdict(table, args.ks)
    return "\n".join(lines) + "\n"


def write_report(args: argparse.Namespace, layout: common.Layout, load: float) -> Path | None:
    path = args.out_dir / f"{BENCH}.md"
    return common.write_markdown_report(
        layout, path, common.TARGET, lambda results: markdown(args, results, load)
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = common.Layout(args.run_root, args.out_dir / f"{BENCH}_runs")
    common.run_then_report(
        args, all_jobs(args, layout), layout, lambda load: write_report(args, layout, load)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
