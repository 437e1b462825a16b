"""`multiq` command line: train | eval | tasks | report."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from multiq.errors import MultiqError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multiq", description="Multi-task DQN: one agent, many tasks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train an agent (default: the five MinAtar games)")
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
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    train.add_argument("--seed", type=int, help="random seed")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a trained run's final model")
    evaluate.add_argument("run_dir", help="a run folder (or a model.pt file)")
    evaluate.add_argument("--episodes", type=int, help="episodes per task")
    evaluate.add_argument("--epsilon", type=float, help="exploration rate while evaluating")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    evaluate.set_defaults(func=cmd_eval)

    tasks = commands.add_parser("tasks", help="list suites and tasks with their spaces")
    tasks.set_defaults(func=cmd_tasks)

    report = commands.add_parser("report", help="rebuild a run's table and curves.png")
    report.add_argument("run_dir")
    report.set_defaults(func=cmd_report)
    return parser


def _config_from_args(args: argparse.Namespace):
    from multiq.config import Config

    cfg = Config.from_yaml(args.config) if args.config else Config()
    cfg = cfg.with_overrides(args.set) if args.set else cfg
    flags = {
        "tasks": args.tasks,
        "total_steps_per_task": args.steps,
        "device": args.device,
        "seed": args.seed,
    }
    changes = {key: value for key, value in flags.items() if value is not None}
    return cfg.replace(**changes) if changes else cfg


def cmd_train(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN

    if args.resume:
        if args.config or args.tasks or args.set or args.seed is not None:
            raise MultiqError(
                "--resume continues a run with its own config; give only --steps, "
                "--device or --run-dir with it"
            )
        steps = {"total_steps_per_task": args.steps} if args.steps else {}
        model = MultiTaskDQN.resume(args.resume, device=args.device, **steps)
        print(f"resuming {args.resume} at {model.state.env_steps} env steps per task")
    else:
        model = MultiTaskDQN(config=_config_from_args(args), run_dir=args.run_dir)
    print(f"run folder: {model.run_dir}")
    model.learn()
    _print_results(model.run_dir)
    return 0


def _print_results(run_dir: Path) -> None:
    from multiq.report import format_table, read_summary

    print()
    print(format_table(read_summary(run_dir)))
    print(
        f"\nresults in {run_dir}/: summary.json, curves.png, metrics.csv, config.yaml, "
        f"model.pt, checkpoint.pt; TensorBoard: tensorboard --logdir {run_dir}/tb"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from multiq.api import MultiTaskDQN
    from multiq.train.checkpoint import MODEL_FILE

    path = Path(args.run_dir)
    model = MultiTaskDQN.load(path / MODEL_FILE if path.is_dir() else path, device=args.device)
    results = model.evaluate(episodes=args.episodes, epsilon=args.epsilon)
    for name, r in results.items():
        print(f"{name:<16} {r['return_mean']:10.2f} ± {r['return_std']:.2f}  ({r['episodes']} ep)")
    print(json.dumps(results))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from multiq.tasks import describe_suites

    print(describe_suites())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from multiq.report import write_report

    table, png = write_report(args.run_dir)
    print(table)
    print(f"\ncurves: {png}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MultiqError as error:
        print(f"multiq: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("multiq: interrupted; resume with `multiq train --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
