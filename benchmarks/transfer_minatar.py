"""Does a multi-task agent transfer to a game it has not seen? Leave-one-out on MinAtar.

For each held-out game and seed, a `shared` agent is pretrained on the four other MinAtar games
(`--pretrain-steps` env steps per game), then learns the held-out game in every arm for
`--target-steps` env steps with the same seed; scratch is the baseline every other arm is
measured against. The arms (`ARMS`, `--arms`, also spelt `--modes`):
- the transfer modes ``scratch``, ``finetune``, ``freeze``, ``joint``, ``distill`` (`multiq
  transfer --mode M`, default keys);
- ``progressive``: a new column with lateral adapters from the frozen source columns (Rusu et
  al. 2016; the `shared` source becomes a column per source game);
- ``finetune-regpre``: finetune from a second source pretrained with regularisers
  (`weight_decay` 0.1, `dropout` 0.1; Farebrother et al. 2018), the run
  `pretrain-regularised-without-<game>-seed<N>`;
- ``finetune-l2init``: finetune with the L2-SP term towards the source's trunk (`l2_init` 0.01;
  Li et al. 2018).
The finetune variants keep a fresh head (`head_init: fresh`; a held-out game has its own
action set), as the `finetune` runs did. Runs of the five modes keep the names and command lines
they always had, so their recorded JSONs are reused.

Pretraining runs go first; a target run starts once its pretraining has finished. Runs are
`multiq` child processes, `--workers` at a time with one torch thread each; a run whose JSON
exists under `--out-dir/transfer_minatar_runs/` is never run again, an interrupted one is
resumed from its checkpoint, so the benchmark resumes where it stopped. The full default is 90
runs: per held-out game and seed 2 pretraining runs (plain, regularised) and 8 target runs
(3 games x 3 seeds); the regularised source is trained only when `finetune-regpre` is chosen.

The report (`transfer_minatar.md` and `.png` in `--out-dir`, rebuilt from the JSONs alone by
`--report-only`) gives per held-out game and arm the first return, jumpstart, final return,
transfer ratio and steps to threshold (means with 95% bootstrap intervals over seeds, scratch as
the reference row), a verdict per arm and per game, and the source games' forgetting.

    python benchmarks/transfer_minatar.py [--held-out Breakout Freeway SpaceInvaders]
        [--seeds 0 1 2] [--arms scratch finetune progressive ...] [--pretrain-steps 100000]
        [--target-steps 100000] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
from typing import Any

import transfer_common as common

BENCH = "transfer_minatar"
GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
HELD_OUT = ("Breakout", "Freeway", "SpaceInvaders")
MODES = ("scratch", "finetune", "freeze", "joint", "distill")
# arm -> (mode, source kind, own keys), in table order: the modes, then the arms they were
# compared with later (issue "transfer that pays")
ARMS: dict[str, common.Arm] = {**common.mode_arms(MODES), **common.REGULARISED_ARMS}
PROTOCOL_HELD_OUT = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--held-out", nargs="+", choices=GAMES, default=list(HELD_OUT))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    common.add_arms_argument(parser, ARMS, "--modes", dest="modes")
    parser.add_argument("--pretrain-steps", type=int, default=100_000, help="per source game")
    parser.add_argument("--target-steps", type=int, default=100_000)
    common.add_run_arguments(parser, BENCH, eval_episodes=10, workers=2)
    return parser.parse_args(argv)


def modes(args: argparse.Namespace) -> list[str]:
    """The arms to run, in table order; scratch (the baseline) always among them."""
    return common.chosen_arms(ARMS, args.modes)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The multiq config keys (`--set`) of the target runs."""
    return common.cpu_run_settings(args)


def pretrain_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The pretraining runs' keys: the `shared` scheme, evaluated only at the end.

    The source games' returns before target training are the target runs' step-0 evaluation.
    """
    return {"scheme": "shared", **settings(args), "eval_freq": 0}


def pretrain_name(game: str, seed: int, kind: str = common.PLAIN) -> str:
    """The pretraining run for held-out `game` (trained on the four other games), plain or
    regularised (`pretrain-regularised-without-<game>-seed<N>`)."""
    prefix = "pretrain" if kind == common.PLAIN else f"pretrain-{kind}"
    return f"{prefix}-without-{game}-seed{seed}"


def target_name(game: str, arm: str, seed: int) -> str:
    """The run that learns held-out `game` in `arm`."""
    return f"{game}-{arm}-seed{seed}"


def pretrain_job(
    game: str, seed: int, args: argparse.Namespace, kind: str = common.PLAIN
) -> common.Job:
    """Pretraining `shared` on every game but `game`, plainly or with the regularisers."""
    name, sources = pretrain_name(game, seed, kind), [g for g in GAMES if g != game]
    tasks = [f"minatar:{g}" for g in sources]
    run_dir = args.run_root / name
    config = common.source_settings(kind, pretrain_settings(args))
    kind_info = {} if kind == common.PLAIN else {"source_kind": kind}
    return common.Job(
        name=name,
        kind=common.PRETRAIN,
        argv=common.pretrain_argv(tasks, args.pretrain_steps, seed, run_dir, config),
        info={
            "benchmark": BENCH,
            "target": game,
            "seed": seed,
            "tasks": sources,
            "pretrain_steps": args.pretrain_steps,
            "settings": config,
            **kind_info,
        },
    )


def target_job(game: str, arm: str, seed: int, args: argparse.Namespace) -> common.Job:
    """Learning held-out `game` in `arm` from its (plain or regularised) pretraining run."""
    spec = ARMS[arm]
    name, source = target_name(game, arm, seed), pretrain_name(game, seed, spec.source)
    run_dir, config = args.run_root / name, {**settings(args), **spec.keys}
    argv = common.transfer_argv(
        layout(args).model_file(source),
        [f"minatar:{game}"],
        spec.mode,
        args.target_steps,
        seed,
        run_dir,
        config,
    )
    info = {
        "benchmark": BENCH,
        "target": game,
        **common.arm_info(arm, spec),
        "seed": seed,
        "pretrain": source,
        "pretrain_steps": args.pretrain_steps,
        "target_steps": args.target_steps,
        "settings": config,
    }
    return common.Job(name=name, kind=common.TARGET, argv=argv, info=info, after=source)


def build_jobs(args: argparse.Namespace) -> list[common.Job]:
    """Every pretraining run (plain, then regularised when an arm needs it), then every target
    run, seed-major (all of seed 0 first)."""
    kinds = common.source_kinds(ARMS, modes(args))
    jobs = [pretrain_job(g, s, args, k) for k in kinds for s in args.seeds for g in args.held_out]
    jobs += [
        target_job(game, arm, seed, args)
        for seed in args.seeds
        for game in args.held_out
        for arm in modes(args)
    ]
    return jobs


def layout(args: argparse.Namespace) -> common.Layout:
    """Run folders under `--run-root`, result JSONs under `--out-dir/transfer_minatar_runs`."""
    return common.Layout(args.run_root, args.out_dir / f"{BENCH}_runs")


def report_spec() -> common.ReportSpec:
    """The report's title, order and protocol notes."""
    return common.ReportSpec(
        bench=BENCH,
        title="Transfer to a held-out MinAtar game (leave one out)",
        modes=tuple(ARMS),
        target_order=GAMES,
        target_label="held-out game",
        notes=(
            "- protocol: for each held-out game and seed, one `shared` agent (per-task input "
            "layers and heads, shared trunk) is pretrained on the four other MinAtar games "
            "(evaluated only at the end); from it, each arm learns the held-out game with the "
            "same seed and budget; scratch learns it from a fresh network. MinAtar v1, minimal "
            "action sets, no sticky actions; evaluation: epsilon 0.01. The protocol asks for "
            f">= {PROTOCOL_HELD_OUT} held-out games and >= 3 seeds.",
            f"- arms: the transfer modes with their default keys; {common.REGULARISED_ARMS_NOTE}",
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """Run (or resume) the benchmark, then rebuild the report."""
    args = parse_args(argv)
    if len(args.held_out) < PROTOCOL_HELD_OUT:
        print(f"note: fewer than {PROTOCOL_HELD_OUT} held-out games: not the full protocol")
    common.run_and_report(args, build_jobs(args), layout(args), report_spec())


if __name__ == "__main__":
    main()
