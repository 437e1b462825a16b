"""The founding example: does an agent trained on ALE Tetris learn Pac-Man faster?

For each seed, one agent is pretrained on `atari:Tetris` (`--pretrain-steps` env steps), then
learns each target (`atari:Pacman`; `--targets` may add `atari:MsPacman`) in every arm for
`--target-steps` env steps with the same seed; scratch is the baseline. The arms (`ARMS`,
`--arms`, also spelt `--modes`): the modes scratch, finetune and joint (default keys);
``progressive`` (a new column with lateral adapters from the frozen Tetris column, Rusu et al.
2016); ``finetune-regpre`` (finetune from a second Tetris agent pretrained with `weight_decay`
0.1 and `dropout` 0.1, the run `pretrain-regularised-Tetris-seed<N>`; Farebrother et al. 2018);
``finetune-l2init`` (finetune with `l2_init` 0.01, L2-SP; Li et al. 2018). The finetune variants
keep a fresh head (`head_init: fresh`), as the `finetune` runs did; runs of the three modes keep
their names and command lines, so their recorded JSONs are reused. The default is 8 runs per
seed and target Pac-Man (2 pretraining, 6 target runs), 6 more per added target; the
regularised Tetris agent is trained only when `finetune-regpre` is chosen.

The budgets are tiny next to the usual Atari ones (10M-50M env steps per game): this is a
smoke-scale replication of the question, not of published scores. Runs are `multiq` child
processes with the same resumable machinery as transfer_minatar.py (`transfer_common.py`): a
run whose JSON exists under `--out-dir/transfer_atari_runs/` is never run again, an interrupted
one is resumed from its checkpoint.

The report (`transfer_atari.md` and `.png` in `--out-dir`, rebuilt from the JSONs alone by
`--report-only`) gives per target and arm the first return, jumpstart, final return, transfer
ratio and steps to threshold (means with 95% bootstrap intervals over seeds), a verdict per
arm, and Tetris's forgetting under joint training.

    python benchmarks/transfer_atari.py [--targets atari:Pacman atari:MsPacman]
        [--pretrain-steps 50000] [--target-steps 50000] [--seeds 0] [--n-envs 1]
        [--arms scratch finetune progressive ...] [--device auto] [--workers 1] [--report-only]
"""

from __future__ import annotations

import argparse
from typing import Any

import transfer_common as common

BENCH = "transfer_atari"
SOURCE = "atari:Tetris"
TARGETS = ("atari:Pacman", "atari:MsPacman")
MODES = ("scratch", "finetune", "joint")
# arm -> (mode, source kind, own keys), in table order: the modes, then the arms they were
# compared with later (issue "transfer that pays")
ARMS: dict[str, common.Arm] = {**common.mode_arms(MODES), **common.REGULARISED_ARMS}
# Atari DQN keys, scaled to the small budget: learning starts and target updates come sooner
# than configs/atari.yaml's (20k, 8k) so that most of the 50k steps are learning.
ATARI_SETTINGS: dict[str, Any] = {
    "dueling": True,
    "learning_rate": 1e-4,
    "buffer_size": 50_000,
    "learning_starts": 5_000,
    "target_update_interval": 2_000,
    "n_step": 3,
    "save_replay": False,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=[TARGETS[0]])
    common.add_arms_argument(parser, ARMS, "--modes", dest="modes")
    parser.add_argument("--pretrain-steps", type=int, default=50_000, help="Tetris env steps")
    parser.add_argument("--target-steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-envs", type=int, default=1, help="envs per task")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    common.add_run_arguments(parser, BENCH, eval_episodes=5, workers=1)
    return parser.parse_args(argv)


def task_name(entry: str) -> str:
    """The task name of a suite entry (`atari:Pacman` -> `Pacman`)."""
    return entry.split(":", 1)[1]


def modes(args: argparse.Namespace) -> list[str]:
    """The arms to run, in table order; scratch (the baseline) always among them."""
    return common.chosen_arms(ARMS, args.modes)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The multiq config keys (`--set`) of the target runs."""
    return {
        **ATARI_SETTINGS,
        "n_envs": args.n_envs,
        "device": args.device,
        "train_freq": args.train_freq,
        "eval_freq": args.eval_freq,
        "eval_episodes": args.eval_episodes,
        "tensorboard": False,
        "progress_bar": False,
    }


def pretrain_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The pretraining run's keys: evaluated only at the end (the target runs' step 0 gives
    Tetris's return before target training)."""
    return {**settings(args), "eval_freq": 0}


def pretrain_name(seed: int, kind: str = common.PLAIN) -> str:
    """The Tetris pretraining run of `seed`, shared by every target; plain or regularised
    (`pretrain-regularised-Tetris-seed<N>`)."""
    prefix = "pretrain" if kind == common.PLAIN else f"pretrain-{kind}"
    return f"{prefix}-{task_name(SOURCE)}-seed{seed}"


def target_name(target: str, arm: str, seed: int) -> str:
    """The run that learns `target` (a task name) in `arm`."""
    return f"{target}-{arm}-seed{seed}"


def pretrain_job(seed: int, args: argparse.Namespace, kind: str = common.PLAIN) -> common.Job:
    """Pretraining on Tetris, plainly or with the regularisers."""
    name = pretrain_name(seed, kind)
    config = common.source_settings(kind, pretrain_settings(args))
    argv = common.pretrain_argv([SOURCE], args.pretrain_steps, seed, args.run_root / name, config)
    info = {
        "benchmark": BENCH,
        "seed": seed,
        "tasks": [task_name(SOURCE)],
        "pretrain_steps": args.pretrain_steps,
        "settings": config,
        **({} if kind == common.PLAIN else {"source_kind": kind}),
    }
    return common.Job(name=name, kind=common.PRETRAIN, argv=argv, info=info)


def target_job(entry: str, arm: str, seed: int, args: argparse.Namespace) -> common.Job:
    """Learning the target `entry` in `arm` from the (plain or regularised) Tetris run of
    `seed`."""
    spec = ARMS[arm]
    target, source = task_name(entry), pretrain_name(seed, spec.source)
    name, config = target_name(target, arm, seed), {**settings(args), **spec.keys}
    argv = common.transfer_argv(
        layout(args).model_file(source),
        [entry],
        spec.mode,
        args.target_steps,
        seed,
        args.run_root / name,
        config,
    )
    info = {
        "benchmark": BENCH,
        "target": target,
        **common.arm_info(arm, spec),
        "seed": seed,
        "pretrain": source,
        "pretrain_steps": args.pretrain_steps,
        "target_steps": args.target_steps,
        "settings": config,
    }
    return common.Job(name=name, kind=common.TARGET, argv=argv, info=info, after=source)


def build_jobs(args: argparse.Namespace) -> list[common.Job]:
    """The Tetris runs (plain, then regularised when an arm needs it), then every target run,
    seed-major."""
    kinds = common.source_kinds(ARMS, modes(args))
    jobs = [pretrain_job(seed, args, kind) for kind in kinds for seed in args.seeds]
    jobs += [
        target_job(entry, arm, seed, args)
        for seed in args.seeds
        for entry in args.targets
        for arm in modes(args)
    ]
    return jobs


def layout(args: argparse.Namespace) -> common.Layout:
    """Run folders under `--run-root`, result JSONs under `--out-dir/transfer_atari_runs`."""
    return common.Layout(args.run_root, args.out_dir / f"{BENCH}_runs")


def report_spec() -> common.ReportSpec:
    """The report's title, order and budget caveat."""
    keys = ", ".join(f"{k}={common.flag_value(v)}" for k, v in ATARI_SETTINGS.items())
    return common.ReportSpec(
        bench=BENCH,
        title="Transfer from ALE Tetris to Pac-Man",
        modes=tuple(ARMS),
        target_order=tuple(task_name(t) for t in TARGETS),
        target_label="target game",
        notes=(
            "- protocol: per seed, one agent is trained on Tetris; from it each arm learns the "
            "target with the same seed and budget; scratch learns it from a fresh network. "
            "ALE v5, 84x84 grey, frame skip 4, 4 stacked frames, sticky actions 0.25, rewards "
            "clipped in training; evaluation: unclipped, epsilon 0.01. DQN keys: " + keys + ".",
            f"- arms: the transfer modes with their default keys; {common.REGULARISED_ARMS_NOTE}",
            "- **the budget is far below the usual Atari budgets** (DQN papers train 10M-50M env "
            "steps, i.e. 40M-200M frames, per game): these numbers say how much transfer helps "
            "in the first few tens of thousands of steps, not where the agents end up.",
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """Run (or resume) the benchmark, then rebuild the report."""
    args = parse_args(argv)
    common.run_and_report(args, build_jobs(args), layout(args), report_spec())


if __name__ == "__main__":
    main()
