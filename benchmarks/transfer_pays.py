"""Does what an agent learned on a small MiniGrid layout pay on a larger one? A curriculum.

Per seed, a source agent learns `--source` (default `MiniGrid-DoorKey-5x5-v0`) for
`--pretrain-steps` env steps with the MiniGrid defaults (the `minigrid` row of the per-family
defaults), twice: plainly, and with regularised pre-training (`weight_decay` and `dropout`,
Farebrother et al. 2018). Each `--targets` layout is then learned for `--target-steps` env steps
per arm, with the same seed:
- ``scratch``: a fresh agent (the baseline every arm is measured against);
- ``finetune``: `multiq transfer --mode finetune` with the target's own fresh Q head
  (`head_init: fresh`);
- ``finetune-mean``: the same, the target's head starting from the source's (`head_init: mean`;
  the source has one head with the same actions, so the target first acts as the source does);
- ``finetune-regpre``: as ``finetune-mean``, from the regularised source;
- ``finetune-l2init``: as ``finetune-mean`` plus the L2-SP term (`l2_init`, Li et al. 2018);
- ``progressive``: a new column with lateral adapters from the frozen source column (Rusu et
  al. 2016);
- ``distill``: `multiq transfer --mode distill`.
The report (`transfer_minigrid.md` and `.png`, rebuilt from the result JSONs by `--report-only`)
gives per target and arm the first return, jumpstart, final return, transfer ratio and steps to
threshold against scratch (95% bootstrap intervals over seeds) and a verdict per arm.

Resuming as `transfer_common`: a run whose JSON exists under `--out-dir/transfer_minigrid_runs`
is not run again; an interrupted run resumes from its checkpoint.

    python benchmarks/transfer_minigrid.py [--targets MiniGrid-DoorKey-6x6-v0 ...]
        [--seeds 0 1 2] [--arms ...] [--pretrain-steps 100000] [--target-steps 100000]
        [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
from typing import Any

import transfer_common as common

BENCH = "transfer_minigrid"
SOURCE = "MiniGrid-DoorKey-5x5-v0"
TARGETS = ("MiniGrid-DoorKey-6x6-v0", "MiniGrid-DoorKey-8x8-v0")
PLAIN, REGULARISED = "plain", "regularised"
# pre-training regularisers of the `regularised` source (AdamW's usual decay; light dropout)
REGULARISERS: dict[str, Any] = {"weight_decay": 0.1, "dropout": 0.1}
L2_INIT = 0.01
# arm -> (transfer mode, source, the arm's own keys)
ARMS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "scratch": ("scratch", PLAIN, {}),
    "finetune": ("finetune", PLAIN, {"head_init": "fresh"}),
    "finetune-mean": ("finetune", PLAIN, {"head_init": "mean"}),
    "finetune-regpre": ("finetune", REGULARISED, {"head_init": "mean"}),
    "finetune-l2init": ("finetune", PLAIN, {"head_init": "mean", "l2_init": L2_INIT}),
    "progressive": ("progressive", PLAIN, {}),
    "distill": ("distill", PLAIN, {}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=SOURCE)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="scratch always runs"
    )
    parser.add_argument("--pretrain-steps", type=int, default=100_000)
    parser.add_argument("--target-steps", type=int, default=100_000)
    common.add_run_arguments(parser, BENCH, eval_episodes=10, workers=2)
    return parser.parse_args(argv)


def task_name(task: str) -> str:
    """`MiniGrid-DoorKey-6x6-v0` -> `MiniGrid-DoorKey-6x6`, the task's name in a run."""
    return task.rsplit("-v", 1)[0]


def short(task: str) -> str:
    """`MiniGrid-DoorKey-6x6-v0` -> `DoorKey-6x6` (run names)."""
    return task_name(task).removeprefix("MiniGrid-")


def arms(args: argparse.Namespace) -> list[str]:
    """The arms to run, in table order; scratch (the baseline) always among them."""
    return [arm for arm in ARMS if arm == common.SCRATCH or arm in args.arms]


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keys every run sets (the rest: the MiniGrid defaults)."""
    return {
        "train_freq": args.train_freq,
        "eval_freq": args.eval_freq,
        "eval_episodes": args.eval_episodes,
        "device": "cpu",
        "tensorboard": False,
        "progress_bar": False,
    }


def pretrain_name(kind: str, seed: int) -> str:
    return f"source-{kind}-seed{seed}"


def pretrain_job(kind: str, seed: int, args: argparse.Namespace) -> common.Job:
    """The source agent of one seed, plain or with the pre-training regularisers."""
    name = pretrain_name(kind, seed)
    config = {**settings(args), **(REGULARISERS if kind == REGULARISED else {})}
    argv = common.pretrain_argv([args.source], args.pretrain_steps, seed, args.run_root / name,
                                config)  # fmt: skip
    info = {"benchmark": BENCH, "source_kind": kind, "seed": seed, "tasks": [args.source],
            "pretrain_steps": args.pretrain_steps, "settings": config}  # fmt: skip
    return common.Job(name, common.PRETRAIN, argv, info)


def target_job(target: str, arm: str, seed: int, args: argparse.Namespace) -> common.Job:
    """Learning `target` in `arm` from its source of the same seed."""
    mode, kind, own = ARMS[arm]
    name, source = f"{short(target)}-{arm}-seed{seed}", pretrain_name(kind, seed)
    config = {**settings(args), **own}
    argv = common.transfer_argv(
        layout(args).model_file(source), [target], mode, args.target_steps, seed,
        args.run_root / name, config,
    )  # fmt: skip
    info = {
        "benchmark": BENCH, "target": task_name(target), "arm": arm, "seed": seed,
        "pretrain": source, "pretrain_steps": args.pretrain_steps,
        "target_steps": args.target_steps, "settings": config,
    }  # fmt: skip
    return common.Job(name, common.TARGET, argv, info, after=source)


def build_jobs(args: argparse.Namespace) -> list[common.Job]:
    """The sources first, then target-major (every arm and seed of the first target first)."""
    kinds = [PLAIN] + ([REGULARISED] if "finetune-regpre" in arms(args) else [])
    jobs = [pretrain_job(kind, seed, args) for seed in args.seeds for kind in kinds]
    jobs += [
        target_job(target, arm, seed, args)
        for target in args.targets
        for seed in args.seeds
        for arm in arms(args)
    ]
    return jobs


def layout(args: argparse.Namespace) -> common.Layout:
    """Run folders under `--run-root`, result JSONs under `--out-dir/transfer_minigrid_runs`."""
    return common.Layout(args.run_root, args.out_dir / f"{BENCH}_runs")


def report_spec(args: argparse.Namespace) -> common.ReportSpec:
    """The report's title, order and protocol notes."""
    regularisers = ", ".join(f"{k} {v}" for k, v in REGULARISERS.items())
    return common.ReportSpec(
        bench=BENCH,
        title="Transfer along a MiniGrid curriculum",
        modes=tuple(ARMS),
        target_order=tuple(task_name(t) for t in TARGETS),
        target_label="target layout",
        notes=(
            f"- protocol: per seed, a source agent learns {short(args.source)} with the "
            f"MiniGrid defaults, plainly and with {regularisers} (the `regularised` source); "
            "each arm then learns the target with the same seed and budget: `finetune` with a "
            "fresh head, `finetune-mean` from the source's head (`head_init: mean`), "
            "`finetune-regpre` as finetune-mean from the regularised source, `finetune-l2init` "
            f"as finetune-mean with `l2_init` {L2_INIT}, `progressive` (a new column with "
            "lateral adapters from the frozen source column), `distill`; scratch learns from a "
            "fresh network. MiniGrid observations: the agent's 7x7 view (object, colour and "
            "state indices); each episode a new random layout of the env's size.",
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """Run (or resume) the benchmark, then rebuild the report."""
    args = parse_args(argv)
    common.run_and_report(args, build_jobs(args), layout(args), report_spec(args))


if __name__ == "__main__":
    main()
