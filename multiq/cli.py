"""`multiq` command line: train | continual | transfer | distill | meta | adapt | eval | tasks |
report | config."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiq.errors import MultiqError
from multiq.train.stop import Interrupted

if TYPE_CHECKING:
    from multiq.config import Config

# Real command lines shown under each subcommand's help (a test parses every one of them).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "train": (
        "multiq train --tasks classic --steps 50000 --set learning_rate=1e-3 --set n_step=3",
        "multiq train configs/minatar-shared.yaml --set balancer=pcgrad --seed 1",
        "multiq train --resume runs/20261122-101500-minatar --steps 300000",
    ),
    "continual": (
        "multiq continual --sequence classic:CartPole,classic:Acrobot --method rehearsal "
        "--steps-per-task 20000",
        "multiq continual --sequence minatar:Breakout,minatar:Freeway --method ewc --cycles 2",
    ),
    "transfer": (
        "multiq transfer runs/cartpole --tasks classic:Acrobot --mode finetune --steps 20000",
        "multiq transfer runs/cartpole --tasks classic:Acrobot --mode scratch --steps 20000",
    ),
    "distill": ("multiq distill runs/breakout runs/freeway --steps 100000",),
    "meta": (
        "multiq meta --family cartpole-physics --algo reptile --meta-iterations 60",
        "multiq meta --resume runs/meta --meta-iterations 120",
    ),
    "adapt": (
        "multiq adapt reptile=runs/meta scratch --family cartpole-physics --k 0,1000,5000",
        "multiq adapt runs/meta --family cartpole-physics --split held-out --seeds 0 1",
    ),
    "eval": (
        "multiq eval runs/cartpole",
        "multiq eval runs/cartpole/model.pt --episodes 100 --epsilon 0",
        "multiq eval runs/cartpole --json",
    ),
    "tasks": ("multiq tasks",),
    "report": (
        "multiq report runs/cartpole",
        "multiq report runs/acrobot-finetune --baseline runs/acrobot-scratch",
        "multiq report runs/continual --reference runs/cartpole runs/acrobot",
    ),
    "config": (
        "multiq config",
        "multiq config learning_rate balancer",
        "multiq config --yaml > my-config.yaml",
    ),
    "sweep": (
        "multiq sweep configs/sweep-classic.yaml --max-concurrent 2",
        "multiq sweep --resume runs/sweeps/classic-schemes",
    ),
    "compare": (
        "multiq compare runs/mtl_minatar --group-by scheme,balancer --normalise random,best",
        "multiq compare runs/a runs/b --group-by seed --out compare-seeds",
        "multiq compare runs/shared runs/pcgrad --conflicts",
    ),
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog may be a function, called only when help is shown (the
    train help lists registries, whose modules import torch)."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The `multiq` parser: one subcommand per entry of `_COMMANDS`, each with `EXAMPLES`."""
    parser = _Parser(
        prog="multiq",
        description="Multi-task DQN: one agent, many tasks.",
        epilog="`multiq COMMAND --help` shows a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"multiq {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_arguments) in _COMMANDS.items():
        command = commands.add_parser(
            name,
            help=summary,
            description=summary,
            # a function: `_Parser` calls it when the help is shown (argparse types only text)
            epilog=_train_epilog if name == "train" else examples_text(name),  # type: ignore[arg-type]
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(command)
    return parser


def package_version() -> str:
    """The installed package's version, else `multiq.__version__` (e.g. a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("multiq")
    except PackageNotFoundError:
        from multiq import __version__

        return __version__


def examples_text(command: str) -> str:
    """The ``examples:`` block of a subcommand's help."""
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])


def _train_epilog() -> str:
    """The train help's examples, then where config keys, schemes and balancers are listed."""
    from multiq.config.help import registry_names

    return (
        f"{examples_text('train')}\n\n"
        "config keys (in a YAML file or --set KEY=VALUE): `multiq config` lists every key with\n"
        "its default, allowed values and meaning; `multiq config KEY` shows one.\n"
        f"  schemes   (--set scheme=NAME):   {', '.join(registry_names('scheme'))}\n"
        f"  balancers (--set balancer=NAME): {', '.join(registry_names('balancer'))}"
    )


def _train_arguments(train: argparse.ArgumentParser) -> None:
    train.add_argument("config", nargs="?", help="YAML config file (default: built-in defaults)")
    train.add_argument(
        "--tasks",
        help="suite name or comma-separated ids, e.g. minatar or gym:CartPole-v1,gym:Acrobot-v1",
    )
    train.add_argument("--steps", type=int, help="env steps per task (total_steps_per_task)")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set learning_rate=1e-4",
    )
    train.add_argument("--run-dir", help="output folder (default runs/<date-time>-<tasks>)")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR (a finished run stays as it is: --steps trains more)",
    )
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    train.add_argument("--seed", type=int, help="random seed")
    _add_threads_option(train)
    _add_env_options(train)
    train.add_argument(
        "--add-tasks",
        metavar="ID[,ID]",
        help="with --resume: these tasks join the trained agent in a new phase of --steps",
    )
    train.add_argument(
        "--train",
        choices=["all", "new"],
        default="all",
        help="with --add-tasks: every group trains, or only the new heads and input layers",
    )
    train.add_argument(
        "--rehearse",
        action="store_true",
        help="with --add-tasks: the old tasks' stored replay is sampled beside the new tasks'",
    )
    train.set_defaults(func=cmd_train)


def _continual_arguments(continual: argparse.ArgumentParser) -> None:
    continual.add_argument(
        "config", nargs="?", help="YAML config file; its `tasks` are the sequence"
    )
    continual.add_argument(
        "--sequence", help="task entries in order, e.g. minatar:Breakout,minatar:Freeway"
    )
    continual.add_argument(
        "--method",
        default="finetune",
        help="finetune | rehearsal | ewc | distill | progressive",
    )
    continual.add_argument("--cycles", type=int, default=1, help="repeat the sequence K times")
    continual.add_argument(
        "--reference",
        nargs="+",
        metavar="RUN_DIR",
        help="single-task runs of the sequence's tasks (normalised returns: random 0, them 1)",
    )
    _add_run_options(continual)
    continual.add_argument("--steps-per-task", dest="steps", type=int, help="same as --steps")
    continual.set_defaults(func=cmd_continual)


def _transfer_arguments(transfer: argparse.ArgumentParser) -> None:
    transfer.add_argument("source", help="the source: a finished run folder or a model.pt file")
    transfer.add_argument(
        "--tasks", required=True, help="target task entries, e.g. minatar:Seaquest"
    )
    transfer.add_argument(
        "--mode",
        default="finetune",
        help="scratch | finetune | freeze | joint | distill | progressive (default finetune)",
    )
    _add_run_options(transfer)
    transfer.set_defaults(func=cmd_transfer)


def _distill_arguments(distill: argparse.ArgumentParser) -> None:
    distill.add_argument("sources", nargs="+", help="trained run folders or model.pt files")
    _add_run_options(distill)
    distill.set_defaults(func=cmd_distill)


def _meta_arguments(meta: argparse.ArgumentParser) -> None:
    meta.add_argument("config", nargs="?", help="YAML config file (its meta_* and inner_* keys)")
    meta.add_argument(
        "--family", help="the task family to meta-train on (its train split), e.g. cartpole-physics"
    )
    meta.add_argument("--algo", help="reptile | fomaml (meta_algo)")
    meta.add_argument("--meta-iterations", type=int, help="outer-loop iterations")
    meta.add_argument("--resume", metavar="RUN_DIR", help="continue the meta run in RUN_DIR")
    _add_run_options(meta)
    meta.set_defaults(func=cmd_meta)


def _adapt_arguments(adapt: argparse.ArgumentParser) -> None:
    adapt.add_argument(
        "models", nargs="+", metavar="MODEL",
        help="run folders or model.pt files, or `scratch`; LABEL=MODEL names one",
    )  # fmt: skip
    adapt.add_argument("--family", required=True, help="the task family, e.g. cartpole-physics")
    adapt.add_argument("--split", default="held-out", help="train | held-out (default held-out)")
    adapt.add_argument("--n-tasks", type=int, help="the split's first N tasks (default all)")
    adapt.add_argument("--k", default="0,2000,10000", help="env steps, e.g. 0,2000,10000")
    adapt.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    adapt.add_argument("--out", help="output folder (default runs/<date-time>-adapt)")
    adapt.add_argument("--adapt-config", help="YAML config of the adaptation's training settings")
    adapt.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a training setting of the adaptation (e.g. learning_rate=1e-3)",
    )  # fmt: skip
    adapt.add_argument(
        "--family-set", action="append", default=[], metavar="KEY=VALUE",
        help="a family option (default: the options the models were trained with)",
    )  # fmt: skip
    adapt.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    _add_threads_option(adapt)
    adapt.set_defaults(func=cmd_adapt)


def _eval_arguments(evaluate: argparse.ArgumentParser) -> None:
    evaluate.add_argument("run_dir", help="a run folder (or a model.pt file)")
    evaluate.add_argument("--episodes", type=int, help="episodes per task")
    evaluate.add_argument("--epsilon", type=float, help="exploration rate while evaluating")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    _add_threads_option(evaluate)
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="print only the results as one JSON line (task -> return_mean, return_std, ...)",
    )
    evaluate.set_defaults(func=cmd_eval)


def _tasks_arguments(tasks: argparse.ArgumentParser) -> None:
    tasks.set_defaults(func=cmd_tasks)


def _report_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("run_dir")
    report.add_argument(
        "--baseline", help="a transfer run: the scratch run to compute transfer metrics against"
    )
    report.add_argument(
        "--reference",
        nargs="+",
        metavar="RUN_DIR",
        help="a continual run: single-task runs of its tasks, to normalise returns",
    )
    report.add_argument(
        "--html",
        action="store_true",
        help="also write RUN_DIR/report.html (one file, images inside)",
    )
    report.set_defaults(func=cmd_report)


def _sweep_arguments(sweep: argparse.ArgumentParser) -> None:
    sweep.add_argument("sweep_file", nargs="?", help="the sweep YAML (base config + grid)")
    sweep.add_argument("--out", help="the sweep folder (default runs/sweeps/<name>)")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue a sweep in its folder")
    sweep.add_argument("--address", help="a Ray cluster's HOST:PORT (default: Ray on this machine)")
    sweep.add_argument("--max-concurrent", type=int, help="trials at once (default: one per CPU)")
    sweep.set_defaults(func=cmd_sweep)


def _compare_arguments(compare: argparse.ArgumentParser) -> None:
    compare.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders, or folders of runs (a sweep)"
    )
    compare.add_argument(
        "--group-by", default="scheme,balancer",
        help="config keys whose values name a run's group (default scheme,balancer)",
    )  # fmt: skip
    compare.add_argument(
        "--normalise", default="none",
        help="none | random,best | random,GROUP: random policy = 0, that group's mean = 1",
    )  # fmt: skip
    compare.add_argument("--out", default="compare", help="output folder (default ./compare)")
    compare.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    compare.add_argument(
        "--conflicts", action="store_true",
        help="also write conflicts.png: each run's gradient-conflict map, side by side",
    )  # fmt: skip
    compare.set_defaults(func=cmd_compare)


def _config_arguments(config: argparse.ArgumentParser) -> None:
    config.add_argument("keys", nargs="*", metavar="KEY", help="only these keys (default all)")
    config.add_argument(
        "--yaml",
        action="store_true",
        help="print a commented config file of the defaults, which `multiq train FILE` reads",
    )
    config.set_defaults(func=cmd_config)


_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "train": ("train an agent (default: the five MinAtar games)", _train_arguments),
    "continual": (
        "learn tasks one after another, with a method that keeps old skills",
        _continual_arguments,
    ),
    "transfer": (
        "learn new tasks starting from a trained agent (or from scratch)",
        _transfer_arguments,
    ),
    "distill": ("distil several trained runs into one multi-task student", _distill_arguments),
    "meta": (
        "meta-train an initialisation over a task family (reptile, fomaml)",
        _meta_arguments,
    ),
    "adapt": (
        "adapt-k: train k env steps on held-out tasks from each initialisation",
        _adapt_arguments,
    ),
    "eval": ("evaluate a trained run's final model beside the random policy", _eval_arguments),
    "tasks": ("list suites and tasks with their spaces", _tasks_arguments),
    "report": (
        "rebuild a run's table and plots (also of meta runs and adapt folders)",
        _report_arguments,
    ),
    "config": (
        "list config keys: default, allowed values and meaning (--yaml: a config file)",
        _config_arguments,
    ),
    "sweep": ("run a grid of configs as Ray Tune trials, one run folder each", _sweep_arguments),
    "compare": (
        "compare runs' final returns by group with rliable (IQM, intervals, profiles)",
        _compare_arguments,
    ),
}
"""Subcommand -> (one-line help, function adding its arguments), in the order help lists them."""


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--torch-threads",
        type=int,
        metavar="N",
        help="torch intra-op threads (config key torch_threads; default 1, 0 = one per core)",
    )


def _add_env_options(parser: argparse.ArgumentParser) -> None:
    from multiq.config import ENV_BACKEND_NAMES

    parser.add_argument(
        "--env-backend",
        choices=ENV_BACKEND_NAMES,
        help="how each task's envs run (config key env_backend; default inprocess)",
    )
    parser.add_argument(
        "--env-workers",
        type=int,
        metavar="N",
        help="subprocess: processes per task; envpool: threads per task (config key env_workers)",
    )
    parser.add_argument(
        "--async-updates",
        choices=["auto", "true", "false"],
        help="act in a child process while learning (config key async_updates; default auto)",
    )


_SWITCHES = {"true": True, "false": False}
"""`--async-updates` words -> config values (``auto`` stays a word)."""

CONFIG_FLAGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "steps": ("total_steps_per_task", int),
    "seed": ("seed", int),
    "device": ("device", str),
    "torch_threads": ("torch_threads", int),
    "env_backend": ("env_backend", str),
    "env_workers": ("env_workers", int),
    "async_updates": ("async_updates", lambda word: _SWITCHES.get(word, word)),
}
"""The flags every command that builds a config shares: argparse dest -> (config key, value
of the flag's word). A command without one of them leaves it out."""


@dataclass
class Overrides:
    """The config changes of a command line: its `--set KEY=VALUE` items, in order, and the
    config key -> value of each `CONFIG_FLAGS` flag given (flags win over `--set`)."""

    sets: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)

    def apply(self, base: Config) -> Config:
        """`base` with the changes (a dotted `--set` key changes one entry of its mapping)."""
        return base.with_overrides(self.sets, **self.flags)

    def as_dict(self) -> dict[str, Any]:
        """The changes as config keyword arguments (a dotted `--set` key gives a mapping of the
        entries set), for the recipes that build the config themselves."""
        from multiq.config import parse_overrides

        return {**parse_overrides(self.sets), **self.flags}


def config_overrides(args: argparse.Namespace) -> Overrides:
    """The one place where command-line flags become config changes: `--set` and every
    `CONFIG_FLAGS` flag the command has and was given."""
    flags = {}
    for dest, (key, value) in CONFIG_FLAGS.items():
        given = getattr(args, dest, None)
        if given is not None:
            flags[key] = value(given)
    return Overrides(list(getattr(args, "set", None) or []), flags)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, help="env steps per task of the new phase")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--run-dir", help="output folder (default runs/<date-time>-<mode>)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    parser.add_argument("--seed", type=int, help="random seed")
    _add_threads_option(parser)
    _add_env_options(parser)


def cmd_transfer(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN

    model = MultiTaskDQN.from_pretrained(
        args.source,
        args.tasks,
        mode=args.mode,
        run_dir=args.run_dir,
        **config_overrides(args).as_dict(),
    )
    print(f"transfer ({args.mode}) from {args.source} to {', '.join(args.tasks.split(','))}")
    print(f"run folder: {model.run_dir}")
    model.learn()
    _print_results(model.run_dir)
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN
    from multiq.recipes.transfer import prepare_distillation

    changes = config_overrides(args).as_dict()
    student = prepare_distillation(MultiTaskDQN, args.sources, args.run_dir, changes)
    print(f"distilling {len(args.sources)} teacher(s) into {student.run_dir}")
    student.learn()
    _print_results(student.run_dir)
    teacher_returns = student.run_info["distill"]["teacher_returns"]
    print("\nstudent vs teacher (eval return):")
    for name, result in student.summary["tasks"].items():
        print(f"  {name:<16} {result['return_mean']:10.2f} vs {teacher_returns[name]:10.2f}")
    return 0


def _config_from_args(args: argparse.Namespace):
    from multiq.config import Config

    cfg = Config.from_yaml(args.config) if args.config else Config()
    overrides = config_overrides(args)
    if args.tasks is not None:
        overrides.flags["tasks"] = args.tasks
    return overrides.apply(cfg)


def cmd_continual(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN
    from multiq.config import Config

    base = Config.from_yaml(args.config) if args.config else None
    sequence = args.sequence or (base.tasks if base else None)
    if not sequence:
        raise MultiqError("give the tasks in order: --sequence ID,ID,... (or a YAML's `tasks`)")
    # the keys the file sets, so that the others can follow the tasks (multiq.tasks.defaults)
    hyperparameters = {**(base.given_values() if base else {}), **config_overrides(args).as_dict()}
    hyperparameters.pop("tasks", None)
    model = MultiTaskDQN.continual(
        sequence, args.method, args.cycles, args.run_dir, **hyperparameters
    )
    names = model.run_info["continual"]["sequence"]
    print(f"continual ({args.method}) over {' -> '.join(names)} x {args.cycles}")
    print(model.task_defaults.describe())
    print(f"run folder: {model.run_dir}")
    model.learn()
    _print_results(model.run_dir)
    _print_continual(model.run_dir, args.reference)
    return 0


def cmd_meta(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN
    from multiq.config import Config
    from multiq.recipes.meta import prepare_meta, resume_meta

    changes = config_overrides(args).as_dict()
    flags = {"meta_algo": args.algo, "meta_iterations": args.meta_iterations}
    changes.update({key: value for key, value in flags.items() if value is not None})
    if args.family:
        changes["meta_tasks"] = f"family:{args.family}:train"
    if args.resume:
        if args.config or args.family or args.run_dir:
            raise MultiqError(
                "--resume continues a meta run with its own config and folder; give only "
                "--meta-iterations or --set of training settings with it"
            )
        run = resume_meta(MultiTaskDQN, args.resume, changes)
        if run.finished:
            print(
                f"{args.resume} is finished ({run.state.iteration} iterations): nothing was "
                "changed; to train more, give --meta-iterations N beyond them"
            )
            return 0
        print(f"resuming {args.resume} at iteration {run.state.iteration}")
    else:
        base = Config.from_yaml(args.config) if args.config else Config()
        run = prepare_meta(MultiTaskDQN, args.run_dir, base.replace(**changes))
    cfg = run.cfg
    print(
        f"meta ({cfg.meta_algo}) over {len(run.pool)} tasks: {cfg.meta_iterations} iterations "
        f"of {cfg.meta_batch_size} tasks x {cfg.inner_steps} env steps"
    )
    print(f"run folder: {run.run_dir}")
    summary = run.run()
    final = summary["meta"]["final"]
    print(
        f"\n{summary['meta']['iterations']} iterations, {summary['meta']['env_steps']} env "
        f"steps; last evaluation: theta {final.get('pre_return', float('nan')):.2f}, after "
        f"{cfg.inner_steps} steps {final.get('post_return', float('nan')):.2f}"
    )
    print(f"results in {run.run_dir}/: model.pt, meta.csv, meta.png, summary.json")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN
    from multiq.config import Config
    from multiq.recipes.adapt import family_options, load_inits, parse_ks, run_adapt
    from multiq.tasks import make_taskset
    from multiq.tasks.gym_ids import import_env_modules

    ks = parse_ks(args.k)
    if args.n_tasks is not None and args.n_tasks < 1:
        raise MultiqError(f"--n-tasks must be >= 1, got {args.n_tasks}")
    inits = load_inits(MultiTaskDQN, args.models)
    # the adaptation's settings: a YAML of them, or the defaults with head_init mean
    base = Config.from_yaml(args.adapt_config) if args.adapt_config else Config(head_init="mean")
    cfg = config_overrides(args).apply(base)
    options = {**family_options(inits, args.family), **_family_overrides(args.family_set)}
    count = f":{args.n_tasks}" if args.n_tasks else ""
    entry = {"id": f"family:{args.family}:{args.split}{count}", "kwargs": options}
    import_env_modules(cfg.env_imports)
    tasks = list(make_taskset([entry]))
    print(
        f"adapt-k on {len(tasks)} {args.split} tasks of {args.family}, k = {ks}, seeds "
        f"{args.seeds}, from {', '.join(i.label for i in inits)}"
    )
    title = f"{args.family} {args.split}: {len(tasks)} tasks x {len(args.seeds)} seeds"
    folder = run_adapt(inits, tasks, ks, args.seeds, cfg, args.out, title)
    print((folder / "adapt.md").read_text())
    print(f"results in {folder}/: adapt.json, adapt.md, adapt.png")
    return 0


def _family_overrides(items: Sequence[str]) -> dict:
    """`key=value` items of free keys (family options), values read as YAML."""
    import yaml

    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise MultiqError(f"--family-set {item!r} must look like key=value, e.g. seed=1")
        try:
            options[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise MultiqError(f"--family-set {item!r}: the value is not valid YAML") from error
    return options


def _print_continual(run_dir: Path, references: Sequence[str] | None) -> None:
    """The continual report, with matrix.png and sequence.png written beside it."""
    from multiq.report import (
        evaluation_matrix,
        format_continual_report,
        plot_matrix,
        plot_sequence_curves,
        reference_returns,
    )

    print()
    print(format_continual_report(run_dir, references))
    matrix = evaluation_matrix(run_dir)
    reference = reference_returns(references, matrix.tasks) if references else None
    print(f"\nmatrix: {plot_matrix(matrix, reference=reference)}")
    print(f"tasks over the sequence: {plot_sequence_curves(matrix)}")


def _add_tasks(args: argparse.Namespace, model) -> None:
    """`--add-tasks` with `--resume`: the tasks join the trained agent in a new phase."""
    if not args.steps:
        raise MultiqError("--add-tasks needs --steps: the new phase's env steps per task")
    names = model.add_tasks_phase(args.add_tasks, args.steps, args.train, args.rehearse)
    print(f"adding {', '.join(names)} (train {args.train}, rehearse {args.rehearse})")


def cmd_train(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN

    if (args.add_tasks or args.rehearse or args.train != "all") and not args.resume:
        raise MultiqError("--add-tasks, --train and --rehearse go with --resume RUN_DIR")
    if args.resume:
        if args.config or args.tasks or args.set or args.seed is not None:
            raise MultiqError(
                "--resume continues a run with its own config; give only --steps, "
                "--device, --torch-threads, --env-backend, --env-workers or --async-updates with it"
            )
        if args.run_dir:
            raise MultiqError(
                "--run-dir cannot be combined with --resume: a resumed run continues in its own "
                "folder (copy the folder first to branch it)"
            )
        changes = config_overrides(args).flags
        if args.add_tasks or not args.steps:  # --steps of --add-tasks is the new phase's
            changes.pop("total_steps_per_task", None)
        model = MultiTaskDQN.resume(args.resume, **changes)
        if args.add_tasks:
            _add_tasks(args, model)
        if model.finished:
            print(_finished_text(args.resume, model))
            return 0
        print(f"resuming {args.resume} at {model.state.env_steps} env steps per task")
    else:
        model = MultiTaskDQN(config=_config_from_args(args), run_dir=args.run_dir)
        print(model.task_defaults.describe())
    print(f"run folder: {model.run_dir}")
    model.learn()
    _print_results(model.run_dir)
    return 0


def _finished_text(run_dir: str, model) -> str:
    """What `train --resume` says of a finished run, which it leaves as it is."""
    last = model.phases[-1]
    return (
        f"{run_dir} is finished: {len(model.phases)} phase(s), {model.state.env_steps} env "
        f"steps per task (last phase {last.name!r}: {last.steps_per_task} per task); nothing "
        "was changed. To train more, give --steps N beyond that budget, or --add-tasks ID "
        "--steps N"
    )


def _print_results(run_dir: Path) -> None:
    from multiq.report import format_table, read_summary

    print()
    print(format_table(read_summary(run_dir)))
    from multiq.runio.layout import CONFLICTS_FILE, ROUTING_FILE

    tensorboard = f"; TensorBoard: tensorboard --logdir {run_dir}/tb"
    maps = "".join(f", {name}" for name in (CONFLICTS_FILE, ROUTING_FILE)
                   if (run_dir / name).is_file())  # fmt: skip
    print(
        f"\nresults in {run_dir}/: summary.json, curves.png{maps}, metrics.csv, config.yaml, "
        f"model.pt, checkpoint.pt{tensorboard if (run_dir / 'tb').is_dir() else ''}"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN
    from multiq.train.checkpoint import MODEL_FILE

    path = Path(args.run_dir)
    changes = config_overrides(args).flags
    model = MultiTaskDQN.load(path / MODEL_FILE if path.is_dir() else path, **changes)
    results = model.evaluate(episodes=args.episodes, epsilon=args.epsilon)
    if args.json:
        print(json.dumps(results))
        return 0
    saved = _saved_random_returns(path if path.is_dir() else path.parent)
    missing = [name for name in results if name not in saved]
    measured = model.evaluate(episodes=args.episodes, epsilon=1.0, tasks=missing) if missing else {}
    print(_format_eval(results, {**saved, **measured}))
    epsilon = model.config.eval_epsilon if args.epsilon is None else args.epsilon
    source = f"measured now for {', '.join(measured)}" if measured else "from summary.json"
    print(f"\neval epsilon {epsilon:g}; random return (a uniformly random policy): {source}")
    return 0


EVAL_COLUMNS = ("task", "eval return (mean ± std)", "episodes", "random return")


def _saved_random_returns(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Task name -> {return_mean, return_std} of the random policy as the run's summary.json
    holds them (tasks without one left out); empty without a readable summary.json."""
    from multiq.report.metrics import ReportError, RunFolderError, read_summary

    try:
        tasks = read_summary(run_dir).get("tasks", {})
    except (RunFolderError, ReportError):
        return {}
    return {
        name: {
            "return_mean": task["random_return_mean"],
            "return_std": _number_or_none(task.get("random_return_std")),
        }
        for name, task in tasks.items()
        if _number_or_none(task.get("random_return_mean")) is not None
    }


def _number_or_none(value: Any) -> float | None:
    """`value` if it is a finite number (summary.json writes NaN for "not measured")."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _format_eval(results: Mapping[str, Mapping], random: Mapping[str, Mapping]) -> str:
    """The `EVAL_COLUMNS` table: per task the eval return, its episodes, the random return."""
    from multiq.report.table import aligned_table, format_mean_std

    rows = [EVAL_COLUMNS]
    for name, result in results.items():
        baseline = random.get(name, {})
        rows.append((
            name,
            format_mean_std(result["return_mean"], result["return_std"]),
            str(result["episodes"]),
            format_mean_std(baseline.get("return_mean"), baseline.get("return_std")),
        ))  # fmt: skip
    return aligned_table(rows)


def cmd_config(args: argparse.Namespace) -> int:
    from multiq.config.help import format_keys, format_yaml, key_help

    helps = key_help(args.keys)
    print(format_yaml(helps) if args.yaml else format_keys(helps, sections=not args.keys))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from multiq.tasks import describe_suites

    print(describe_suites())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from multiq.report import format_transfer_report, read_summary, write_report
    from multiq.report.meta import plot_meta, write_adapt_report
    from multiq.runio.layout import ADAPT_FILE, META_FILE

    folder = Path(args.run_dir)
    if (folder / ADAPT_FILE).is_file():  # a `multiq adapt` folder
        table, png = write_adapt_report(folder)
        print(table.read_text())
        print(f"plot: {png}")
        return 0
    if (folder / META_FILE).is_file():  # a `multiq meta` run
        print(f"meta curves: {plot_meta(folder)}")
        return 0
    text, png = write_report(args.run_dir)
    print(text)
    conflicts = _report_conflicts(folder)
    summary = read_summary(args.run_dir)
    if args.baseline or "transfer" in summary:
        print()
        print(format_transfer_report(args.run_dir, args.baseline))
    if args.reference or "continual" in summary:
        _print_continual(Path(args.run_dir), args.reference)
    print(f"\ncurves: {png}")
    if conflicts is not None:
        print(f"gradient-conflict map: {conflicts}")
    if args.html:
        from multiq.report.html import write_run_report

        print(f"html: {write_run_report(args.run_dir)}")
    return 0


def _report_conflicts(folder: Path) -> Path | None:
    """Writes the run's conflicts.png and prints its pairs in most conflict, when it logged a
    gradient-conflict map; returns the image's path (None without a map)."""
    from multiq.report import (
        format_conflicts,
        mean_shares,
        most_conflicting,
        plot_conflicts,
        read_conflicts,
    )

    conflicts = read_conflicts(folder)
    if not conflicts:
        return None
    print()
    print(format_conflicts(most_conflicting(conflicts), mean_shares(conflicts)))
    return plot_conflicts(folder)


def cmd_sweep(args: argparse.Namespace) -> int:
    from multiq.scale.sweep import run_sweep

    if not args.sweep_file and not args.resume:
        raise MultiqError("give a sweep file (multiq sweep SWEEP.yaml) or --resume SWEEP_DIR")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise MultiqError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    folder, states = run_sweep(
        args.sweep_file, args.resume or args.out, args.address, args.max_concurrent
    )
    for name, state in states.items():
        error = f": {state['error']}" if state["error"] else ""
        print(f"{state['state']:<10} {name}{error}")
    failed = [n for n, s in states.items() if s["state"] != "finished"]
    print(f"\n{len(states) - len(failed)} of {len(states)} trials finished in {folder}; "
          f"compare them with `multiq compare {folder}`")  # fmt: skip
    if failed:
        print(f"not finished: {', '.join(failed)} (rerun with --resume {folder})", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from multiq.report.compare import compare
    from multiq.runio.layout import CONFLICTS_FILE

    if args.reps < 1:
        raise MultiqError(f"--reps must be >= 1, got {args.reps}")
    group_by = [key.strip() for key in args.group_by.split(",") if key.strip()]
    markdown = compare(args.runs, args.out, group_by, args.normalise, args.reps, args.conflicts)
    print(markdown.read_text())
    files = ["compare.md", "compare.png", "report.html"]
    if args.conflicts and (markdown.parent / CONFLICTS_FILE).is_file():
        files.append(CONFLICTS_FILE)
    print(f"results in {markdown.parent}/: {', '.join(files)}")
    return 0


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each message (not the one it was
    created with, which a caller such as a test harness may have replaced and closed since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_library_log() -> None:
    """Shows the library's INFO messages (replay memory, what a load copied) on stderr."""
    logger = logging.getLogger("multiq")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_library_log()
    try:
        return args.func(args)
    except MultiqError as error:
        print(f"multiq: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as stop:  # SIGINT / SIGTERM: a checkpoint was saved
        print(f"multiq: {stop}", file=sys.stderr)
        return 128 + stop.signal_number
    except KeyboardInterrupt:
        print(
            "multiq: stopped at once; the run folder keeps its last checkpoint "
            "(resume with `multiq train --resume RUN_DIR`)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
