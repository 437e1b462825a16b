"""Where should transfer pay? Curricula and same-game variants, every transfer arm against scratch.

A *setting* (`SETTINGS`) names source tasks, target tasks and budgets where knowledge carried
over should help and learning from scratch is slow:
- ``minigrid``: MiniGrid DoorKey 5x5 as the source, DoorKey 6x6 and 8x8 as targets (a
  curriculum of growing layouts; MiniGrid defaults);
- ``minatar-asterix``: one `shared` agent on four variants of MinAtar Asterix (sticky-action
  probability and difficulty ramping drawn per task, `family:minatar-variants`) as the source,
  two held-out variants as targets.
Per seed, the source agent learns the source tasks for `--pretrain-steps` env steps each,
twice: plainly, and with regularised pre-training (`weight_decay` and `dropout`, Farebrother et
al. 2018). Each target is then learned for `--target-steps` env steps per arm, same seed:
- ``scratch``: a fresh agent (the baseline every arm is measured against);
- ``finetune``: `multiq transfer --mode finetune` with the target's own fresh Q head
  (`head_init: fresh`);
- ``finetune-mean``: the same, the target's head starting from the mean of the source's heads
  (`head_init: mean`; with one source task, its head: the target first acts as the source);
- ``finetune-regpre``: as ``finetune-mean``, from the regularised source;
- ``finetune-l2init``: as ``finetune-mean`` plus the L2-SP term (`l2_init`, Li et al. 2018);
- ``progressive``: a new column with lateral adapters from the frozen source columns (Rusu et
  al. 2016), a copy of the source's newest column with a fresh head (`head_init: fresh`);
- ``progressive-mean``: the same with the head of the column it copies (`head_init: mean`: the
  target first acts as the source);
- ``distill``: `multiq transfer --mode distill`.
The report (`transfer_pays_<setting>.md` and `.png`, rebuilt from the result JSONs by
`--report-only`) gives per target and arm the first return, jumpstart, final return, transfer
ratio and steps to threshold against scratch (95% bootstrap intervals over seeds) and a verdict
per arm.

Resuming as `transfer_common`: a run whose JSON exists under
`--out-dir/transfer_pays_<setting>_runs` is not run again; an interrupted run resumes from its
checkpoint.

    python benchmarks/transfer_pays.py --setting minigrid [--targets ...] [--seeds 0 1 2]
        [--arms ...] [--pretrain-steps N] [--target-steps N] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transfer_common as common
from transfer_common import L2_INIT, PLAIN, REGULARISED, REGULARISERS, Arm

BENCH = "transfer_pays"


@dataclass(frozen=True)
class Setting:
    """Where transfer should pay: the source tasks, the targets and the budgets.

    Attributes:
        sources: the task entries the source agent learns together.
        targets: the target task entries (each learned alone, from the source).
        pretrain_steps: env steps per source task.
        target_steps: env steps per target.
        protocol: one sentence for the report on the tasks and their settings.
        run_keys: multiq keys every run of the setting sets besides `cpu_run_settings`.
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    pretrain_steps: int
    target_steps: int
    protocol: str
    run_keys: dict[str, Any] = field(default_factory=dict)


SETTINGS = {
    "minigrid": Setting(
        ("MiniGrid-DoorKey-5x5-v0",),
        ("MiniGrid-DoorKey-6x6-v0", "MiniGrid-DoorKey-8x8-v0"),
        50_000,
        100_000,
        "MiniGrid at its family defaults, with which DoorKey-5x5 is solved by 20k env steps "
        "(benchmarks/minigrid_defaults.py), so 50k trains the source to competence; "
        "observations: the agent's 7x7 view (object, colour and state indices); each episode a "
        "new random layout of the env's size.",
    ),
    "minatar-asterix": Setting(
        ("family:minatar-variants:train:4",),
        ("family:minatar-variants:held-out@0", "family:minatar-variants:held-out@1"),
        100_000,
        100_000,
        "MinAtar Asterix variants (`family:minatar-variants`, seed 0: sticky-action "
        "probability in [0, 0.25] and difficulty ramping on with probability 0.5, drawn per "
        "task); the source is one `shared` agent on the first four train variants; MinAtar "
        "defaults; each run steps its envs between updates in one process "
        "(`async_updates: false`), two runs at a time on the two cores.",
        {"async_updates": False},
    ),
}
# arm -> (transfer mode, source, the arm's own keys); the regularised source's target trains
# without its regularisers (only the pre-training is regularised, as in Farebrother et al. 2018)
ARMS: dict[str, Arm] = {
    "scratch": Arm("scratch"),
    "finetune": Arm("finetune", PLAIN, {"head_init": "fresh"}),
    "finetune-mean": Arm("finetune", PLAIN, {"head_init": "mean"}),
    "finetune-regpre": Arm(
        "finetune", REGULARISED, {"head_init": "mean", "weight_decay": 0.0, "dropout": 0.0}
    ),
    "finetune-l2init": Arm("finetune", PLAIN, {"head_init": "mean", "l2_init": L2_INIT}),
    "progressive": Arm("progressive", PLAIN, {"head_init": "fresh"}),
    "progressive-mean": Arm("progressive", PLAIN, {"head_init": "mean"}),
    "distill": Arm("distill"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; the setting fills the sources, targets and budgets not given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=list(SETTINGS), default="minigrid")
    parser.add_argument("--targets", nargs="+", default=None, help="default: the setting's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    common.add_arms_argument(parser, ARMS)
    parser.add_argument("--pretrain-steps", type=int, default=None, help="per source task")
    parser.add_argument("--target-steps", type=int, default=None)
    common.add_run_arguments(parser, BENCH, eval_episodes=10, workers=2)
    args = parser.parse_args(argv)
    setting = SETTINGS[args.setting]
    args.sources = list(setting.sources)
    args.targets = args.targets or list(setting.targets)
    args.pretrain_steps = args.pretrain_steps or setting.pretrain_steps
    args.target_steps = args.target_steps or setting.target_steps
    args.bench = f"{BENCH}_{args.setting}"
    if args.run_root == Path("runs") / BENCH:
        args.run_root = Path("runs") / args.bench
    return args


def task_name(task: str) -> str:
    """A target's task name in a run: `MiniGrid-DoorKey-6x6-v0` -> `MiniGrid-DoorKey-6x6`,
    `family:minatar-variants:held-out@0` -> `minatar-variants-h0` (the family's naming)."""
    if task.startswith("family:"):
        _, family, split = task.split(":")
        part, _, index = split.partition("@")
        return f"{family}-{'h' if part == 'held-out' else 't'}{index}"
    return task.rsplit("-v", 1)[0]


def short(task: str) -> str:
    """A target's name in run names: `DoorKey-6x6`, `minatar-variants-h0`."""
    return task_name(task).removeprefix("MiniGrid-")


def arms(args: argparse.Namespace) -> list[str]:
    """The arms to run, in table order; scratch (the baseline) always among them."""
    return [arm for arm in ARMS if arm == common.SCRATCH or arm in args.arms]


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keys every run sets (the rest: the tasks' family defaults)."""
    return {**common.cpu_run_settings(args), **SETTINGS[args.setting].run_keys}


def pretrain_name(kind: str, seed: int) -> str:
    return f"source-{kind}-seed{seed}"


def pretrain_job(kind: str, seed: int, args: argparse.Namespace) -> common.Job:
    """The source agent of one seed, plain or with the pre-training regularisers."""
    name = pretrain_name(kind, seed)
    config = {**settings(args), **(REGULARISERS if kind == REGULARISED else {})}
    argv = common.pretrain_argv(args.sources, args.pretrain_steps, seed, args.run_root / name,
                                config)  # fmt: skip
    info = {"benchmark": args.bench, "source_kind": kind, "seed": seed, "tasks": args.sources,
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
        "benchmark": args.bench, "target": task_name(target), "arm": arm, "seed": seed,
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
    """Run folders under `--run-root` (default `runs/transfer_pays_<setting>`), result JSONs
    under `--out-dir/transfer_pays_<setting>_runs`."""
    return common.Layout(args.run_root, args.out_dir / f"{args.bench}_runs")


def report_spec(args: argparse.Namespace) -> common.ReportSpec:
    """The report's title, order and protocol notes."""
    regularisers = ", ".join(f"{k} {v}" for k, v in REGULARISERS.items())
    setting = SETTINGS[args.setting]
    return common.ReportSpec(
        bench=args.bench,
        title=f"Where transfer should pay: {args.setting}",
        modes=tuple(ARMS),
        target_order=tuple(task_name(t) for t in setting.targets),
        target_label="target",
        notes=(
            f"- protocol: per seed, a source agent learns {', '.join(args.sources)}, plainly "
            f"and with {regularisers} (the `regularised` source); each arm then learns the "
            "target with the same seed and budget: `finetune` with a fresh head, "
            "`finetune-mean` from the mean of the source's heads (`head_init: mean`), "
            "`finetune-regpre` as finetune-mean from the regularised source (the target "
            "itself trains without the regularisers), "
            f"`finetune-l2init` as finetune-mean with `l2_init` {L2_INIT}, `progressive` (a "
            "new column with lateral adapters from the frozen source columns, copying the "
            "source's with a fresh head), `progressive-mean` (the same with the source's head), "
            "`distill`; "
            f"scratch learns from a fresh network. {setting.protocol}",
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """Run (or resume) the benchmark, then rebuild the report."""
    args = parse_args(argv)
    common.run_and_report(args, build_jobs(args), layout(args), report_spec(args))


if __name__ == "__main__":
    main()
