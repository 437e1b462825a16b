"""Can one agent learn the MinAtar games one after another without forgetting? Continual learning.

For each seed, the benchmark runs (each a `multiq` child process with one torch thread,
`--workers` at a time):
- a continual run per method (`multiq continual`; finetune, rehearsal, ewc, distill,
  progressive): the games in sequence, `--steps-per-task` env steps each, every game evaluated at
  every phase end and every `--eval-freq` steps. `progressive` (Rusu et al. 2016) gives each game
  a column of its own with lateral adapters from the earlier, frozen columns (scheme
  `progressive`, which the method sets: its runs carry no `scheme` key): no forgetting by
  construction, paid for in parameters (the result JSON records the network's weights of every
  continual and multi-task run, and each progressive column's) and perhaps in the new game's
  return;
- a single-task run per game (`multiq train`, `--steps-per-task` steps): the reference that
  normalises returns (random policy = 0, single-task final = 1) and the curve forward transfer
  is measured against;
- a multi-task `shared` run on all the games at once with the same steps per game (the same total
  budget as a continual run): the upper reference;
- the DML scenario: a `shared` agent trained on every game but `--dml-new`, then that game joins
  online: the finished run folder is copied (config, metrics, checkpoint, replay; the four-game
  run stays as it was) and `multiq train --resume <copy> --add-tasks <new> --steps N --train all
  --rehearse` adds a phase. The new game's curve is compared with its single-task (scratch) run
  of the same seed, and the old games' returns before and after.

Rehearsal and distill sample the earlier games' stored replay, so their runs, the DML base run and
the DML add run save the replay with each checkpoint (`save_replay: true`): a resumed run keeps
the old games' transitions. replay.npz holds every held game's full buffer (100k transitions by
default; obs and next obs as 10x10xC bools, plus 14 bytes): 81 MB for Asterix or Breakout, 141
Freeway, 201 Seaquest, 121 SpaceInvaders, 0.63 GB for all five, written again at every
checkpoint. Once a run's result JSON is written its replay.npz is deleted (the DML base's once
its add run is collected); the peak is about 1.3 GB per running worker (a write in progress
doubles the file) plus 0.5 GB per waiting DML base.

The full default is 39 runs (3 seeds x 13: 5 continual, 1 multi-task, 5 single-task, the DML
base and add runs), 12M env steps: about 3 hours on two CPU cores for the 36 runs without
progressive (five-game runs go at 1,000-1,300 env steps/s per process, the single-game phases of
the continual runs at about half that, rehearsal and distill slower as their batches grow), more
with progressive, whose later phases run every earlier column as well.

Resuming (as transfer_minatar.py): a run whose JSON exists under `--out-dir/continual_minatar_runs`
is never run again; a finished folder without one is collected; an interrupted one is resumed
from its checkpoint (`multiq train --resume`); a DML add run whose copy holds no added game yet
starts its add phase. `--report-only` rebuilds `continual_minatar.md` and its figures from the
JSONs alone. Another `--sequence` or budget belongs in another `--out-dir` (run names do not
carry them).

    python benchmarks/continual_minatar.py [--sequence Asterix Breakout ...] [--seeds 0 1 2]
        [--methods finetune rehearsal ewc distill progressive] [--steps-per-task 100000]
        [--dml-new SpaceInvaders] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import transfer_common as common
import yaml

from multiq.report.continual import (
    ContinualMatrix,
    ContinualMetrics,
    aggregate_continual,
    continual_metrics,
    evaluation_matrix,
    normalise,
    plot_matrix,
    plot_sequence_curves,
)
from multiq.report.metrics import Series, read_metrics, read_summary, task_names
from multiq.report.stats import bootstrap_ci
from multiq.report.transfer import TransferRun, aggregate_seeds
from multiq.runio.layout import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REPLAY_FILE,
    RUN_RECORD_FILE,
    random_return_key,
    return_key,
)

BENCH = "continual_minatar"
GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
METHODS = ("finetune", "rehearsal", "ewc", "distill", "progressive")
REPLAY_METHODS = ("rehearsal", "distill")  # they sample the earlier games' stored replay
SCHEME_METHODS = ("progressive",)  # they set their own scheme: their runs carry no `scheme` key
CONTINUAL, SINGLE, MULTITASK, DML_BASE, DML_ADD = (
    "continual",
    "single",
    "multitask",
    "dml-base",
    "dml-add",
)
# What a copy of the DML base run needs to resume (summary.json and model.pt stay behind, so the
# copy counts as finished only once its add phase has run).
RESUME_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, REPLAY_FILE, RUN_RECORD_FILE)
MINATAR_CHANNELS = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}
DEFAULT_BUFFER = 100_000  # multiq's buffer_size default, transitions per task
# Verdict thresholds, in units of the single-task reference's level (p):
KEPT_YES, KEPT_PARTLY = 0.8, 0.4  # share of the earlier tasks' own-phase p kept at the end
LEARNED_MIN = 0.2  # below this own-phase p, what was kept says nothing
COST_NONE, COST_SOME = 0.1, 0.3  # new tasks' own-phase p below finetune's by at most this


# --- command line ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (entries are MinAtar game names or `suite:Member` task entries)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", nargs="+", default=list(GAMES), help="the games in order")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps-per-task", type=int, default=100_000, help="env steps per game")
    parser.add_argument(
        "--dml-new", default="SpaceInvaders", help="the game that joins the trained agent online"
    )
    parser.add_argument(
        "--dml-train", choices=["all", "new"], default="all", help="`--train` of the add phase"
    )
    parser.add_argument(
        "--dml-rehearse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="`--rehearse` in the add phase: the old games' replay is sampled beside the new's",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a multiq config key for every run (repeatable)",
    )
    common.add_run_arguments(parser, BENCH, eval_episodes=10, workers=2)
    args = parser.parse_args(argv)
    args.entries = [entry(item) for item in args.sequence]
    args.names = [task_name(e) for e in args.entries]
    args.dml_entry = entry(args.dml_new)
    if len(set(args.names)) != len(args.names) or len(args.names) < 2:
        parser.error(f"--sequence needs two or more distinct games, got {args.names}")
    if args.dml_entry not in args.entries:
        parser.error(f"--dml-new {args.dml_new} is not in --sequence ({', '.join(args.names)})")
    if any("=" not in item for item in args.set):
        parser.error(f"--set takes KEY=VALUE, got {args.set}")
    return args


def entry(item: str) -> str:
    """A task entry: `suite:Member` as given, a bare game name as `minatar:<game>`."""
    return item if ":" in item else f"minatar:{item}"


def task_name(task_entry: str) -> str:
    """The task name multiq gives a `suite:Member` entry (the member)."""
    return task_entry.split(":", 1)[1]


def layout(args: argparse.Namespace) -> common.Layout:
    """Run folders under `--run-root`, result JSONs under `--out-dir/continual_minatar_runs`."""
    return common.Layout(args.run_root, args.out_dir / f"{BENCH}_runs")


# --- jobs -----------------------------------------------------------------------------------------


def settings(args: argparse.Namespace, save_replay: bool = False) -> dict[str, Any]:
    """The multiq config keys (`--set`) of a run; `--set` of this script comes last."""
    config: dict[str, Any] = {"scheme": "shared", **common.cpu_run_settings(args)}
    if save_replay:
        config["save_replay"] = True
    config.update(item.split("=", 1) for item in args.set)
    return config


def base_info(args: argparse.Namespace, seed: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every run's result JSON starts with."""
    return {
        "benchmark": BENCH,
        "seed": seed,
        "sequence": args.names,
        "steps_per_task": args.steps_per_task,
        "settings": dict(config),
    }


def continual_job(method: str, seed: int, args: argparse.Namespace) -> common.Job:
    """`multiq continual` over the sequence with `method`."""
    name = f"continual-{method}-seed{seed}"
    config = settings(args, save_replay=method in REPLAY_METHODS)
    if method in SCHEME_METHODS:
        del config["scheme"]
    argv = (
        "continual",
        "--sequence",
        ",".join(args.entries),
        "--method",
        method,
        "--steps-per-task",
        str(args.steps_per_task),
        "--seed",
        str(seed),
        "--run-dir",
        str(args.run_root / name),
        *common.set_flags(config),
    )
    info = {**base_info(args, seed, config), "method": method}
    return common.Job(name=name, kind=CONTINUAL, argv=argv, info=info)


def train_job(
    name: str, kind: str, entries: Sequence[str], seed: int, args: argparse.Namespace, **info: Any
) -> common.Job:
    """`multiq train` on `entries` together, `--steps-per-task` each."""
    config = settings(args, save_replay=kind == DML_BASE)
    run_dir = args.run_root / name
    argv = common.pretrain_argv(entries, args.steps_per_task, seed, run_dir, config)
    tasks = [task_name(e) for e in entries]
    return common.Job(
        name=name,
        kind=kind,
        argv=argv,
        info={**base_info(args, seed, config), "tasks": tasks, **info},
    )


def single_job(game_entry: str, seed: int, args: argparse.Namespace) -> common.Job:
    """The single-task reference run of one game."""
    game = task_name(game_entry)
    return train_job(f"single-{game}-seed{seed}", SINGLE, [game_entry], seed, args, task=game)


def multitask_job(seed: int, args: argparse.Namespace) -> common.Job:
    """`shared` on every game of the sequence at once (the upper reference)."""
    return train_job(f"multitask-seed{seed}", MULTITASK, args.entries, seed, args)


def dml_base_name(args: argparse.Namespace, seed: int) -> str:
    """The DML base run: every game but `--dml-new`."""
    return f"dml-base-without-{task_name(args.dml_entry)}-seed{seed}"


def dml_base_job(seed: int, args: argparse.Namespace) -> common.Job:
    """`shared` on every game but the new one, its replay saved (the add phase rehearses it)."""
    old = [e for e in args.entries if e != args.dml_entry]
    new = task_name(args.dml_entry)
    return train_job(dml_base_name(args, seed), DML_BASE, old, seed, args, new_task=new)


def dml_add_job(seed: int, args: argparse.Namespace) -> common.Job:
    """The new game joins a copy of the DML base run in a new phase."""
    new = task_name(args.dml_entry)
    name, base = f"dml-add-{new}-seed{seed}", dml_base_name(args, seed)
    argv = add_argv(args.run_root / name, args.dml_entry, args.steps_per_task, args)
    info = {
        **base_info(args, seed, settings(args, save_replay=True)),
        "new_task": new,
        "new_entry": args.dml_entry,
        "old_tasks": [task_name(e) for e in args.entries if e != args.dml_entry],
        "base": base,
        "dml_train": args.dml_train,
        "dml_rehearse": args.dml_rehearse,
    }
    return common.Job(name=name, kind=DML_ADD, argv=argv, info=info, after=base)


def add_argv(
    run_dir: Path, new_entry: str, steps: int, args: argparse.Namespace
) -> tuple[str, ...]:
    """`multiq train --resume RUN --add-tasks NEW --steps N --train T [--rehearse]`."""
    rehearse = ("--rehearse",) if args.dml_rehearse else ()
    return (
        "train",
        "--resume",
        str(run_dir),
        "--add-tasks",
        new_entry,
        "--steps",
        str(steps),
        "--train",
        args.dml_train,
        *rehearse,
    )


def build_jobs(args: argparse.Namespace) -> list[common.Job]:
    """Every run, seed-major; within a seed the DML base first (its add run waits for it), the
    long continual runs next, the add run last (a worker takes the first job that is ready)."""
    jobs = []
    for seed in args.seeds:
        jobs.append(dml_base_job(seed, args))
        jobs += [continual_job(method, seed, args) for method in args.methods]
        jobs.append(multitask_job(seed, args))
        jobs += [single_job(game, seed, args) for game in args.entries]
        jobs.append(dml_add_job(seed, args))
    return jobs


# --- planning and running -------------------------------------------------------------------------


def config_task_entries(run_dir: Path) -> list[str]:
    """The task entries a run folder's config.yaml holds (after an add_task, the new ones too)."""
    tasks = yaml.safe_load((run_dir / CONFIG_FILE).read_text()).get("tasks") or []
    items = tasks.split(",") if isinstance(tasks, str) else tasks
    return [str(item["id"] if isinstance(item, Mapping) else item).strip() for item in items]


def base_copyable(job: common.Job, layout: common.Layout) -> bool:
    """Whether the DML base run folder still holds what its copy needs to resume."""
    base = layout.run_dir(job.after or "")
    needed = [CONFIG_FILE, CHECKPOINT_FILE] + ([REPLAY_FILE] if job.info["dml_rehearse"] else [])
    return all((base / name).is_file() for name in needed)


def decide(job: common.Job, layout: common.Layout) -> str:
    """What to do with a job: `common.decide`, except for a DML add run.

    A DML add run is `collect`ed when its folder is finished, `resume`d when its checkpoint
    holds the new game already, `start`ed (its add phase) when the folder holds the copy only,
    `blocked` when its base finished but the base folder can no longer be copied, `restart`ed
    (copy again) when its folder has no checkpoint and `start`ed (copy, add) when it has none.
    """
    if job.kind != DML_ADD:
        return common.decide(job, layout)
    run_dir = layout.run_dir(job.name)
    if layout.result_file(job.name).is_file():
        return common.SKIP
    if common.finished(run_dir):
        return common.COLLECT
    if (run_dir / CHECKPOINT_FILE).is_file():
        added = job.info["new_entry"] in config_task_entries(run_dir)
        return common.RESUME if added else common.START
    if layout.result_file(job.after or "").is_file() and not base_copyable(job, layout):
        return common.BLOCKED
    return common.RESTART if run_dir.exists() else common.START


def plan(jobs: Sequence[common.Job], layout: common.Layout) -> list[tuple[common.Job, str]]:
    """Every job (in the given order) with what to do with it.

    Raises:
        ValueError: a job waits for a job that is not in `jobs`.
    """
    names = {job.name for job in jobs}
    unknown = sorted({job.after for job in jobs if job.after and job.after not in names})
    if unknown:
        raise ValueError(f"jobs wait for jobs that are not planned: {', '.join(unknown)}")
    return [(job, decide(job, layout)) for job in jobs]


def copy_base(base: Path, run_dir: Path) -> None:
    """Copies what a resume needs from the DML base run into `run_dir` (a temporary folder, then
    a rename, so a half copy is never taken for a copy)."""
    tmp = run_dir.with_name(run_dir.name + ".copying")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in RESUME_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, tmp / name)
    tmp.rename(run_dir)


def execute(job: common.Job, action: str, layout: common.Layout) -> bool:
    """Carries out `action` on one job, writes its result JSON, then deletes the replay files
    nothing needs any more; returns success."""
    run_dir = layout.run_dir(job.name)
    extra: dict[str, Any] = {}
    if action in common.LAUNCHING:
        if action == common.RESTART:
            shutil.rmtree(run_dir)
        if job.kind == DML_ADD and not run_dir.exists():
            copy_base(layout.run_dir(job.after or ""), run_dir)
        argv = common.resume_argv(run_dir) if action == common.RESUME else job.argv
        launched = common.launch(job, action, argv, layout)
        if launched is None:
            return False
        extra.update(launched)
    common.write_json(layout.result_file(job.name), extract_result(job, run_dir, extra))
    if job.kind != DML_BASE:  # the base's replay is copied by its add run
        (run_dir / REPLAY_FILE).unlink(missing_ok=True)
    if job.kind == DML_ADD:
        (layout.run_dir(job.after or "") / REPLAY_FILE).unlink(missing_ok=True)
    return True


def run_benchmark(jobs: Sequence[common.Job], layout: common.Layout, workers: int) -> dict:
    """Plans the jobs, says what it will do, and runs what is left.

    Returns:
        job name -> succeeded, as `common.run_jobs`.
    """
    planned = plan(jobs, layout)
    counts = Counter(action for _, action in planned)
    print(", ".join(f"{n} {action}" for action, n in counts.items()) + f"; {workers} at a time")
    for job, action in planned:
        if action == common.BLOCKED:
            print(
                f"{job.name}: blocked: {job.after} finished (its JSON exists) but its run folder "
                f"{layout.run_dir(job.after or '')} lacks checkpoint.pt or replay.npz to copy; "
                f"delete {layout.result_file(job.after or '')} to train it again",
                flush=True,
            )
    outcome = common.run_jobs(planned, workers, lambda job, action: execute(job, action, layout))
    failed = [name for name, succeeded in outcome.items() if not succeeded]
    print(f"{len(outcome) - len(failed)} of {len(outcome)} runs finished", flush=True)
    if failed:
        print(f"not finished: {', '.join(failed)} (rerun the same command to retry)", flush=True)
    return outcome


# --- result JSONs ---------------------------------------------------------------------------------


def extract_result(job: common.Job, run_dir: Path, extra: Mapping[str, Any] | None = None) -> dict:
    """The result JSON of a finished run: the job's info plus what the report needs.

    Every run: phases (name, tasks, start and end step), eval curves (task -> [[step, return],
    ...] over the whole run), random-policy returns, final returns, wall time, env steps/s,
    the machine and the command. Continual and multi-task runs get `parameters`, the weights of
    their network (from model.pt; None when unreadable). Continual runs also get summary.json's
    `continual` section, the evaluation matrix as `multiq.report.continual.evaluation_matrix`
    reads it, and for progressive `column_parameters` (task -> weights of its column).
    """
    summary, metrics = read_summary(run_dir), read_metrics(run_dir)
    tasks = summary.get("tasks", {})
    names = list(dict.fromkeys([*task_names(metrics), *tasks]))
    record = {
        "name": job.name,
        "kind": job.kind,
        **job.info,
        "phases": [
            {key: phase.get(key) for key in ("name", "tasks", "start_step", "end_step")}
            for phase in summary.get("phases", [])
        ],
        "curves": {t: [[s, v] for s, v in metrics.get(return_key(t), [])] for t in names},
        "random_returns": random_returns(names, metrics, tasks),
        "final_returns": {task: entry.get("return_mean") for task, entry in tasks.items()},
        "wall_time_s": summary.get("wall_time_s"),
        "env_steps_per_s": summary.get("env_steps_per_s"),
        "env_steps_per_task": summary.get("env_steps_per_task"),
        "machine": common.machine_info(),
        "invocation": common.invocation(),
        "collected": common.now(),
        **(extra or {}),
    }
    if job.kind in (CONTINUAL, MULTITASK):
        record["parameters"] = model_parameters(run_dir / MODEL_FILE)
    if job.kind == CONTINUAL:
        record["continual"] = summary.get("continual")
        record["matrix"] = matrix_record(evaluation_matrix(run_dir))
        if "progressive" in summary:
            record["column_parameters"] = summary["progressive"].get("column_parameters")
    return record


def model_parameters(model: Path) -> int | None:
    """The weights of a model.pt's online network (every tensor of its state dict), or None
    when the file is not a readable multiq model. Imports torch: collecting code only."""
    from multiq.errors import CheckpointError
    from multiq.train.checkpoint import load_tensors

    try:
        _, payload = load_tensors(model, "model", required=("online",))
    except CheckpointError:
        return None
    return sum(int(tensor.numel()) for tensor in payload["online"].values())


def random_returns(
    names: Iterable[str], metrics: Mapping[str, Series], tasks: Mapping[str, Mapping]
) -> dict[str, float]:
    """Each task's last logged random-policy return, else summary.json's (when finite)."""
    found = {}
    for name in names:
        logged = metrics.get(random_return_key(name))
        value = logged[-1][1] if logged else tasks.get(name, {}).get("random_return_mean")
        if value is not None and math.isfinite(float(value)):
            found[name] = float(value)
    return found


def matrix_record(matrix: ContinualMatrix) -> dict[str, Any]:
    """A matrix as JSON (its curves are the result's `curves`; NaN written as null)."""
    return {
        "phases": matrix.phases,
        "phase_steps": [list(steps) for steps in matrix.phase_steps],
        "tasks": matrix.tasks,
        "trained_in": matrix.trained_in,
        "returns": [[none_if_nan(v) for v in row] for row in matrix.returns.tolist()],
        "random": [none_if_nan(v) for v in matrix.random.tolist()],
        "notes": matrix.notes,
    }


def none_if_nan(value: float) -> float | None:
    """None for NaN (JSON has no NaN), else the value."""
    return None if math.isnan(value) else value


def as_array(values: Any) -> np.ndarray:
    """Nested lists with None (NaN) as a float array."""
    return np.array(values, dtype=object).astype(np.float64)


def matrix_from_result(result: Mapping[str, Any]) -> ContinualMatrix:
    """A continual run's result JSON as the `ContinualMatrix` the continual metrics take."""
    record = result["matrix"]
    phases, tasks = list(record["phases"]), list(record["tasks"])
    return ContinualMatrix(
        run_dir=Path(result["name"]),
        phases=phases,
        phase_steps=[(int(start), int(end)) for start, end in record["phase_steps"]],
        tasks=tasks,
        trained_in={task: int(index) for task, index in record["trained_in"].items()},
        returns=as_array(record["returns"]).reshape(len(phases), len(tasks)),
        random=as_array(record["random"]).reshape(len(tasks)),
        curves={task: curve(result, task) for task in tasks},
        notes=list(record["notes"]),
    )


def curve(result: Mapping[str, Any], task: str, start: int = 0) -> Series:
    """A result's eval curve of `task` from step `start` on, shifted to begin there."""
    return [(int(s) - start, float(v)) for s, v in result["curves"].get(task, []) if s >= start]


# --- report data ----------------------------------------------------------------------------------

Seeds = dict[int, dict[str, Any]]


@dataclass
class Groups:
    """The result JSONs of one sequence, by role.

    Attributes:
        sequence: the games in order.
        continual: method -> seed -> result.
        single: game -> seed -> result.
        multitask: seed -> result.
        dml_add: seed -> result (the DML base runs' numbers are the add runs' step 0).
        other: names of results of another sequence (left out).
    """

    sequence: list[str]
    continual: dict[str, Seeds] = field(default_factory=dict)
    single: dict[str, Seeds] = field(default_factory=dict)
    multitask: Seeds = field(default_factory=dict)
    dml_add: Seeds = field(default_factory=dict)
    other: list[str] = field(default_factory=list)


def group(results: Iterable[Mapping[str, Any]], sequence: Sequence[str]) -> Groups:
    """Sorts the results of `sequence` by role (single-task runs of its games count whatever
    sequence launched them)."""
    groups = Groups(list(sequence))
    for result in results:
        kind, seed = result["kind"], result["seed"]
        if kind == SINGLE and result["task"] in sequence:
            groups.single.setdefault(result["task"], {})[seed] = dict(result)
        elif kind != SINGLE and list(result.get("sequence", [])) == list(sequence):
            if kind == CONTINUAL:
                groups.continual.setdefault(result["method"], {})[seed] = dict(result)
            elif kind == MULTITASK:
                groups.multitask[seed] = dict(result)
            elif kind == DML_ADD:
                groups.dml_add[seed] = dict(result)
        else:
            groups.other.append(result["name"])
    return groups


def mean_curve(curves: Sequence[Series]) -> Series:
    """The seeds' mean curve on the first curve's steps (up to the shortest end); empty when no
    seed has an evaluation."""
    curves = [c for c in curves if c]
    if not curves:
        return []
    steps, values = common.stack_curves(curves)
    return [(int(s), float(v)) for s, v in zip(steps, values.mean(axis=0), strict=True)]


def final_return(result: Mapping[str, Any], task: str) -> float:
    """A result's final return of `task`; NaN when it has none (a return of 0 is a return)."""
    value = result["final_returns"].get(task)
    return math.nan if value is None else float(value)


def references(groups: Groups) -> tuple[dict[str, float], dict[str, Series]]:
    """The single-task reference of each game: its final return and its eval curve, each the
    mean over the seeds of the single-task runs."""
    returns, curves = {}, {}
    for game, runs in groups.single.items():
        finals = [final_return(r, game) for r in runs.values()]
        returns[game] = common.finite_mean(finals)
        seed_curves = [curve(r, game) for r in runs.values() if r["curves"].get(game)]
        if seed_curves:
            curves[game] = mean_curve(seed_curves)
    return returns, curves


@dataclass(frozen=True)
class SeedRun:
    """One continual run's matrix and metrics."""

    seed: int
    matrix: ContinualMatrix
    metrics: ContinualMetrics


def own_phase_p(run: SeedRun, tasks: Iterable[str]) -> float:
    """The mean over `tasks` of each one's p at the end of its own phase (finite values)."""
    matrix, p = run.matrix, run.metrics.normalised
    values = [p[matrix.trained_in[t], matrix.tasks.index(t)] for t in tasks]
    return common.finite_mean(values)


def stat(values: Sequence[float]) -> dict[str, float]:
    """`{"mean", "low", "high", "n"}`: the mean and 95% bootstrap interval of the finite values."""
    mean, low, high = bootstrap_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": int(np.isfinite(values).sum())}


@dataclass
class MethodSummary:
    """A method's numbers over seeds.

    Attributes:
        runs: one per seed.
        aggregate: `aggregate_continual` of the seeds' metrics.
        final: task -> stat of its p at the end.
        new_p: stat of the new tasks' (all but the first) p at the end of their own phase.
        learned_p: stat of the tasks forgetting covers (all but the last): p at the end of their
            own phase.
    """

    runs: list[SeedRun]
    aggregate: dict[str, Any]
    final: dict[str, dict[str, float]]
    new_p: dict[str, float]
    learned_p: dict[str, float]


def summarise_method(runs: Sequence[SeedRun]) -> MethodSummary:
    """A method's metrics over its seeds' runs."""
    tasks = runs[0].metrics.tasks
    return MethodSummary(
        runs=list(runs),
        aggregate=aggregate_continual([run.metrics for run in runs]),
        final={t: stat([run.metrics.final.get(t, math.nan) for run in runs]) for t in tasks},
        new_p=stat([own_phase_p(run, run.metrics.tasks[1:]) for run in runs]),
        learned_p=stat([own_phase_p(run, run.metrics.forgetting) for run in runs]),
    )


def method_summaries(
    groups: Groups, reference: Mapping[str, float], curves: Mapping[str, Series]
) -> dict[str, MethodSummary]:
    """method -> its summary, in `METHODS` order."""
    summaries = {}
    for method in sorted(groups.continual, key=lambda m: (m not in METHODS, METHODS.index(m))):
        runs = []
        for seed, result in sorted(groups.continual[method].items()):
            matrix = matrix_from_result(result)
            runs.append(SeedRun(seed, matrix, continual_metrics(matrix, reference, curves)))
        summaries[method] = summarise_method(runs)
    return summaries


def multitask_p(result: Mapping[str, Any], games: Sequence[str], reference: Mapping) -> dict:
    """A multi-task run's final return per game, normalised (its own random returns)."""
    finals = [final_return(result, g) for g in games]
    randoms = [result["random_returns"].get(g, math.nan) for g in games]
    p = normalise(finals, randoms, [reference.get(g, math.nan) for g in games])
    return dict(zip(games, p.tolist(), strict=True))


def best_method(summaries: Mapping[str, MethodSummary]) -> str | None:
    """The method with the highest mean average performance (None when none is finite)."""
    scored = {
        m: s.aggregate["average_performance"]["mean"]
        for m, s in summaries.items()
        if math.isfinite(s.aggregate["average_performance"]["mean"])
    }
    return max(scored, key=scored.__getitem__) if scored else None


def mean_matrix(runs: Sequence[SeedRun], label: str) -> ContinualMatrix:
    """The seeds' matrices averaged (returns, random returns, curves), for the figures."""
    first = runs[0].matrix
    same = [r.matrix for r in runs if r.matrix.tasks == first.tasks]
    same = [m for m in same if m.phase_steps == first.phase_steps]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell no seed evaluated
        returns = np.nanmean(np.stack([m.returns for m in same]), axis=0)
        random = np.nanmean(np.stack([m.random for m in same]), axis=0)
    curves = {t: mean_curve([m.curves[t] for m in same]) for t in first.tasks}
    return ContinualMatrix(
        run_dir=Path(label),
        phases=first.phases,
        phase_steps=first.phase_steps,
        tasks=first.tasks,
        trained_in=first.trained_in,
        returns=returns,
        random=random,
        curves=curves,
        notes=[],
    )


# --- verdicts -------------------------------------------------------------------------------------


def keeps_text(forgetting: float, learned: float) -> str:
    """Keeps old skills: yes / partly / no from the share of the own-phase level kept."""
    if not (math.isfinite(forgetting) and math.isfinite(learned)):
        return "undetermined (no finite forgetting)"
    if learned < LEARNED_MIN:
        return (
            f"undetermined (the earlier games reached only p = {learned:.2f} in their own "
            "phases: too little to lose)"
        )
    kept = 1.0 - forgetting / learned
    word = "yes" if kept >= KEPT_YES else "partly" if kept >= KEPT_PARTLY else "no"
    return (
        f"{word} (it keeps {kept:.0%} of the p the earlier games reached in their own phases; "
        f"forgetting F = {forgetting:.2f})"
    )


def cost_text(method: str, new_p: float, baseline: tuple[str, float], transfer: float) -> str:
    """What the method costs the new game: its own-phase p against finetune's (or 1)."""
    label, level = baseline
    numbers = f"new games reach p = {new_p:.2f} at the end of their phase"
    if method == "finetune":
        return f"none, it is the baseline ({numbers}; forward transfer {transfer:.2f})"
    if not (math.isfinite(new_p) and math.isfinite(level)):
        return f"undetermined ({numbers}, {label} {level:.2f})"
    drop = level - new_p
    word = "little or none" if drop <= COST_NONE else "some" if drop <= COST_SOME else "a lot"
    return f"{word} ({numbers}, {label} {level:.2f}; forward transfer {transfer:.2f})"


def verdict_lines(summaries: Mapping[str, MethodSummary]) -> list[str]:
    """One plain sentence per method, computed from its numbers."""
    finetune = summaries.get("finetune")
    baseline = (
        ("finetune", finetune.new_p["mean"]) if finetune else ("the single-task reference", 1.0)
    )
    lines = [
        "Computed from the means over seeds. Keeps old skills: the share k = 1 - F / p_own of "
        "the level the earlier games reached at the end of their own phase (p_own, mean over "
        f"all games but the last) that is kept at the end: yes k >= {KEPT_YES}, partly k >= "
        f"{KEPT_PARTLY}, no below; undetermined when p_own < {LEARNED_MIN}. Cost to the new "
        "game: how far the new games' p at the end of their own phase (all games but the "
        f"first) falls below {baseline[0]}'s: little or none <= {COST_NONE}, some <= "
        f"{COST_SOME}, a lot above.",
        "",
    ]
    for method, summary in summaries.items():
        aggregate = summary.aggregate
        keeps = keeps_text(aggregate["forgetting_mean"]["mean"], summary.learned_p["mean"])
        transfer = aggregate["forward_transfer_mean"]["mean"]
        cost = cost_text(method, summary.new_p["mean"], baseline, transfer)
        lines.append(
            f"- **{method}**: keeps old skills: {keeps}; what it costs the new game: {cost}."
        )
    return lines


# --- report text ----------------------------------------------------------------------------------


def fmt(stats: Mapping[str, float] | None) -> str:
    """`mean [low, high]` of a stat, `n/a` without a finite mean."""
    return common.fmt_stat(stats)


def header_lines(results: Sequence[Mapping[str, Any]], groups: Groups, load: float) -> list[str]:
    """Title, date, commands, machines, load, budget, settings, seeds and the caveats."""
    loads = [r["load_average_1min_at_start"] for r in results if "load_average_1min_at_start" in r]
    load_range = f"{min(loads):.2f} to {max(loads):.2f}" if loads else "not recorded"
    steps = common.distinct(r["steps_per_task"] for r in results)
    kinds = {
        "continual finetune/ewc": [r for r in results if r.get("method") in ("finetune", "ewc")],
        "continual rehearsal/distill": [r for r in results if r.get("method") in REPLAY_METHODS],
        "continual progressive": [r for r in results if r.get("method") in SCHEME_METHODS],
        "single-task and multi-task": [r for r in results if r["kind"] in (SINGLE, MULTITASK)],
        "DML": [r for r in results if r["kind"] in (DML_BASE, DML_ADD)],
    }
    settings_lines = [
        f"  - {label}: {common.distinct(common.settings_text(r) for r in runs)}"
        for label, runs in kinds.items()
        if runs
    ]
    seeds = sorted({r["seed"] for r in results})
    n = len(groups.sequence)
    episodes = common.distinct(r["settings"].get("eval_episodes", "?") for r in results)
    return [
        f"# Continual learning on MinAtar: {' → '.join(groups.sequence)}",
        "",
        f"- date of this report: {common.now()}; command: `{common.invocation()}`",
        f"- runs launched by: {common.distinct(r.get('invocation', '?') for r in results)}",
        "- machine of the runs: "
        f"{common.distinct(common.machine_text(r.get('machine', {})) for r in results)}; "
        f"this report: {common.machine_text(common.machine_info())}",
        f"- 1-minute load average: {load:.2f} at this invocation; {load_range} when the runs "
        "started (each run: one child process, one torch thread)",
        f"- budget: {steps} env steps per game; a continual agent learns the {n} games one "
        f"after another ({n} phases); the multi-task reference learns all {n} at once with the "
        "same env steps per game (the same total); each single-task reference learns one game "
        "with the same env steps",
        "- settings (`--set` of the runs):",
        *settings_lines,
        f"- seeds: {seeds}"
        + (
            f" (fewer than the protocol's {common.MIN_PROTOCOL_SEEDS}: read intervals as "
            "indicative)"
            if len(seeds) < common.MIN_PROTOCOL_SEEDS
            else ""
        ),
        "- protocol: one `shared` agent (per-game input layers and heads, shared trunk); every "
        "game evaluated at the start, every `eval_freq` steps and at every phase end "
        f"({episodes} episodes, epsilon 0.01); MinAtar v1, minimal action sets, no sticky "
        "actions. "
        "Rehearsal and distill sample the earlier games' stored replay (half of each update's "
        "samples); ewc is online EWC on the shared parameters; distill: KL to the agent at the "
        "end of the previous phase on the earlier games' states; progressive: a column per "
        "game (its own input layer, trunk and head) with lateral adapters from the earlier "
        "games' columns, which freeze when their phase ends.",
        f"- budget caveat: {steps} env steps per game is far below the MinAtar paper's budgets "
        "(millions of frames; its curves go to 5M); every agent here is early in learning and "
        "the single-task references are weak, so a game whose reference barely beats the "
        "random policy has noisy normalised returns.",
        f"- replay on disk: {replay_note(groups)}",
    ]


def replay_note(groups: Groups) -> str:
    """What `save_replay` costs on disk for these runs."""
    buffers = {
        int(r["settings"].get("buffer_size", DEFAULT_BUFFER))
        for m in REPLAY_METHODS
        for r in groups.continual.get(m, {}).values()
    }
    buffer = buffers.pop() if len(buffers) == 1 else DEFAULT_BUFFER
    sizes = [replay_bytes(g, buffer) for g in groups.sequence]
    size = f"{sum(sizes) / 1e9:.2f} GB" if all(s is not None for s in sizes) else "unknown"
    return (
        "rehearsal and distill runs and the DML runs save their replay with every checkpoint "
        "(`save_replay: true`), so a resumed run keeps the earlier games' transitions; "
        f"replay.npz of an agent holding all {len(sizes)} games: {size} ({buffer:,} "
        "transitions per game: obs and next obs as 10x10xC bools plus 14 bytes). The driver "
        "deletes a run's replay.npz once its result JSON is written."
    )


def replay_bytes(game: str, buffer: int) -> int | None:
    """replay.npz bytes of one MinAtar game's buffer (None for another suite)."""
    channels = MINATAR_CHANNELS.get(game)
    return None if channels is None else buffer * (2 * 100 * channels + 8 + 4 + 2)


def methods_table(
    summaries: Mapping[str, MethodSummary],
    multitask: Mapping[str, float] | None,
    parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Average performance, forgetting, forward transfer, own-phase p and the network's weights
    per method (`parameters`: method or `multitask` -> cell, see `parameter_cells`)."""
    parameters = parameters or {}
    lines = [
        "| method | seeds | average performance P | forgetting F | forward transfer FT | "
        "new games' p at the end of their phase | parameters |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, s in summaries.items():
        a = s.aggregate
        lines.append(
            f"| {method} | {a['seeds']} | {fmt(a['average_performance'])} | "
            f"{fmt(a['forgetting_mean'])} | {fmt(a['forward_transfer_mean'])} | {fmt(s.new_p)} "
            f"| {parameters.get(method, '-')} |"
        )
    if multitask is not None:
        lines.append(
            f"| multi-task `shared` (upper reference) | {multitask['n']} | {fmt(multitask)} | "
            f"- | - | - | {parameters.get(MULTITASK, '-')} |"
        )
    return lines


def parameter_text(runs: Iterable[Mapping[str, Any]]) -> str:
    """The runs' network weights (`parameters`) as one cell: `-` where none recorded it (runs
    collected before it was), else the value, or `mixed: ...` when seeds differ."""
    counts = [r["parameters"] for r in runs if r.get("parameters") is not None]
    return common.distinct(counts) if counts else "-"


def parameter_cells(groups: Groups) -> dict[str, str]:
    """Method (and `multitask`) -> its runs' network weights, as `parameter_text`."""
    cells = {method: parameter_text(runs.values()) for method, runs in groups.continual.items()}
    return {**cells, MULTITASK: parameter_text(groups.multitask.values())}


def column_lines(groups: Groups) -> list[str]:
    """A line per method whose runs recorded their columns' weights (progressive): each
    column's weights (its input layer, trunk, the adapters into it and its head)."""
    lines = []
    for method, runs in groups.continual.items():
        recorded = [r["column_parameters"] for r in runs.values() if r.get("column_parameters")]
        if recorded:
            columns = ", ".join(
                f"{task} {common.distinct(r.get(task) for r in recorded)}" for task in recorded[0]
            )
            lines.append(
                f"- {method}: weights per column (its input layer, trunk, the lateral adapters "
                f"into it and its head), in sequence order: {columns}"
            )
    return lines


def game_table(rows: Mapping[str, Mapping[str, Mapping]], games: Sequence[str]) -> list[str]:
    """A table with a row per label and a column per game of `stat` cells."""
    lines = ["| | " + " | ".join(games) + " |", "|---|" + "---:|" * len(games)]
    for label, cells in rows.items():
        lines.append(f"| {label} | " + " | ".join(fmt(cells.get(g)) for g in games) + " |")
    return lines


def reference_table(groups: Groups, reference: Mapping[str, float]) -> list[str]:
    """Per game: random return, single-task final return, multi-task final return and p."""
    lines = [
        "| game | random return | single-task final return (reference) | seeds | "
        "multi-task final return | multi-task p |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for game in groups.sequence:
        singles = groups.single.get(game, {}).values()
        randoms = [r["random_returns"].get(game, math.nan) for r in singles]
        finals = [final_return(r, game) for r in singles]
        multi = groups.multitask.values()
        multi_finals = [final_return(r, game) for r in multi]
        multi_p = [multitask_p(r, [game], reference)[game] for r in multi]
        lines.append(
            f"| {game} | {common.finite_mean(randoms):.2f} | {fmt(stat(finals))} | "
            f"{len(finals)} | {fmt(stat(multi_finals))} | {fmt(stat(multi_p))} |"
        )
    return lines


def dml_pairs(groups: Groups) -> list[tuple[TransferRun, TransferRun]]:
    """(DML add run, scratch run of the new game) for each seed that has both."""
    pairs = []
    for seed, result in sorted(groups.dml_add.items()):
        new = result["new_task"]
        scratch = groups.single.get(new, {}).get(seed)
        if scratch is not None:
            pairs.append((dml_run(result), scratch_run(scratch, new)))
    return pairs


def dml_run(result: Mapping[str, Any]) -> TransferRun:
    """A DML add run as a transfer run: its curves from the add phase's start (step 0 there is
    the evaluation at the start of the add phase, before the new game trains)."""
    start = int(result["phases"][-1]["start_step"])
    tasks = [*result["old_tasks"], result["new_task"]]
    return TransferRun(
        run_dir=Path(result["name"]),
        mode="dml",
        source_tasks=list(result["old_tasks"]),
        target_tasks=[result["new_task"]],
        curves={t: c for t in tasks if (c := curve(result, t, start))},
        random={t: float(v) for t, v in result["random_returns"].items()},
    )


def scratch_run(result: Mapping[str, Any], task: str) -> TransferRun:
    """A single-task run of `task` as the scratch baseline of a transfer run.

    `multiq train` evaluates first after `eval_freq` steps; as in the continual metrics, a fresh
    agent counts as the random policy at step 0 (its random-policy return is put there).
    """
    points = curve(result, task)
    random = {t: float(v) for t, v in result["random_returns"].items()}
    if points and points[0][0] > 0 and task in random:
        points = [(0, random[task]), *points]
    return TransferRun(
        run_dir=Path(result["name"]),
        mode="scratch",
        source_tasks=[],
        target_tasks=[task],
        curves={task: points},
        random=random,
    )


def dml_lines(groups: Groups, figure: str) -> list[str]:
    """The DML section: the new game against scratch, the old games before and after."""
    pairs = dml_pairs(groups)
    if not pairs:
        return ["(no DML add run with a single-task run of the same seed has finished yet)"]
    stats = aggregate_seeds(pairs)
    first = next(iter(groups.dml_add.values()))
    new, old = first["new_task"], first["old_tasks"]
    target = stats["target"][new]
    ratio = target["transfer_ratio"]
    verdict = common.verdict_text(ratio["low"], ratio["high"], stats["seeds"])
    mode = common.distinct(r["dml_train"] for r in groups.dml_add.values())
    rehearse = common.distinct(r["dml_rehearse"] for r in groups.dml_add.values())
    lines = [
        f"A `shared` agent is trained on {', '.join(old)}; then {new} joins it online: "
        f"`multiq train --resume <copy of that run> --add-tasks {first['new_entry']} --steps "
        f"{first['steps_per_task']:,} --train {mode}` with rehearsal {rehearse_word(rehearse)} "
        "(the defaults of this benchmark: every parameter group trains, and the old games' "
        "stored replay fills half of each update). Step 0 below is the add phase's start; "
        f"scratch is {new}'s single-task run of the same seed, taken as the random policy at "
        "step 0 (it is first evaluated after `eval_freq` steps), so jumpstart = first return - "
        "random return. Metrics as in transfer_minatar.md (`multiq.report.transfer`); means "
        f"with 95% bootstrap intervals over {stats['seeds']} seed(s).",
        "",
        f"### {new} (joins)",
        "",
        "| run | first return | jumpstart | final return | scratch final return | "
        "transfer ratio | steps to threshold | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| DML | {fmt(target['first_return'])} | {fmt(target['jumpstart'])} | "
        f"{fmt(target['final_return'])} | {fmt(target['scratch_final_return'])} | {fmt(ratio)} "
        f"| {common.fmt_steps(target['time_to_threshold_steps'])} | {verdict} |",
        "",
        f"### {', '.join(old)} (held): return before → after {new} joins",
        "",
        "| game | before | after | forgetting | forgetting / (before - random) |",
        "|---|---:|---:|---:|---:|",
    ]
    for game in old:
        s = stats["source"].get(game)
        if s is not None:
            lines.append(
                f"| {game} | {fmt(s['return_before'])} | {fmt(s['return_after'])} | "
                f"{fmt(s['forgetting'])} | {fmt(s['forgetting_normalised'])} |"
            )
    lines += ["", dml_verdict(stats, new, old, verdict), "", f"![DML curves]({figure})"]
    return lines


def rehearse_word(value: str) -> str:
    """`on` / `off` for the runs' `dml_rehearse` (as `distinct` wrote it)."""
    return {"true": "on", "false": "off"}.get(value, value)


def dml_verdict(stats: Mapping[str, Any], new: str, old: Sequence[str], verdict: str) -> str:
    """A plain sentence on the DML scenario, from the same thresholds as the methods."""
    lost = common.finite_mean(
        [stats["source"][g]["forgetting_normalised"]["mean"] for g in old if g in stats["source"]]
    )
    if math.isfinite(lost):
        kept = 1.0 - lost
        word = "yes" if kept >= KEPT_YES else "partly" if kept >= KEPT_PARTLY else "no"
        keeps = f"{word} (they keep {kept:.0%} of their gain over random)"
    else:
        keeps = "undetermined (no finite normalised forgetting)"
    return (
        f"Verdict: the held games keep their skills: {keeps}; {new} against scratch: {verdict}. "
        "Kept share = 1 - mean forgetting / (before - random): yes >= "
        f"{KEPT_YES}, partly >= {KEPT_PARTLY}, no below; the verdict on {new} reads the "
        "transfer-ratio interval against 1."
    )


def cost_rows(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Mean wall time and env steps/s per kind of run (continual runs per method)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    kinds = (CONTINUAL, SINGLE, MULTITASK, DML_BASE, DML_ADD)
    for r in sorted(results, key=lambda r: (kinds.index(r["kind"]), r.get("method", ""))):
        label = f"continual {r['method']}" if r["kind"] == CONTINUAL else r["kind"]
        groups.setdefault(label, []).append(r)
    lines = ["| runs | count | mean wall time (s) | mean env steps/s |", "|---|---:|---:|---:|"]
    for label, runs in groups.items():
        wall = common.finite_mean([float(r.get("wall_time_s") or math.nan) for r in runs])
        speed = common.finite_mean([float(r.get("env_steps_per_s") or math.nan) for r in runs])
        lines.append(f"| {label} | {len(runs)} | {wall:.0f} | {speed:.0f} |")
    return lines


METRIC_NOTES = (
    "Per Continual World (Wołczyk et al. 2021), `multiq.report.continual`: returns normalised per "
    "game, p = (R - random) / (reference - random), the random-policy return measured in each "
    "run, the reference the single-task runs' final return (mean over their seeds). Average "
    "performance P = mean over the games of p at the end of the sequence; forgetting F = mean "
    "over all games but the last of p at the end of its own phase - p at the end (positive: "
    "forgot); forward transfer FT = mean of (AUC - AUC_ref) / (1 - AUC_ref), AUC the mean p "
    "during the game's own phase, AUC_ref the same for the single-task runs' mean curve over as "
    "many first steps (positive: the earlier games helped). Means over seeds with 95% bootstrap "
    "intervals. The multi-task reference's P is its final p averaged over the games."
)


PARAMETER_NOTE = (
    "Parameters: the weights of the agent's network at the end (every tensor of model.pt's "
    "online network; `-` where the run's JSON does not record it)."
)


# The report's figures, beside it in --out-dir.
MATRIX_PNG, SEQUENCE_PNG, DML_PNG = (f"{BENCH}_{f}.png" for f in ("matrix", "sequence", "dml"))


def markdown(
    results: Sequence[Mapping[str, Any]],
    groups: Groups,
    summaries: Mapping[str, MethodSummary],
    reference: Mapping[str, float],
    load: float,
) -> str:
    """The report: header, methods, verdicts, per-game tables, references, the best method's
    figures, the DML scenario, cost and notes."""
    per_seed = [
        common.finite_mean(list(multitask_p(r, groups.sequence, reference).values()))
        for r in groups.multitask.values()
    ]
    multitask = stat(per_seed) if per_seed else None
    games, best = groups.sequence, best_method(summaries)
    lines = [*header_lines(results, groups, load), ""]
    table = methods_table(summaries, multitask, parameter_cells(groups))
    lines += ["## Methods", "", METRIC_NOTES, "", PARAMETER_NOTE, "", *table, ""]
    columns = column_lines(groups)
    lines += [*columns, ""] if columns else []
    lines += ["## Verdicts", "", *verdict_lines(summaries), ""]
    lines += ["## Per game", "", "p at the end of the sequence:", ""]
    finals = {m: s.final for m, s in summaries.items()}
    multi = {
        g: stat([multitask_p(r, [g], reference)[g] for r in groups.multitask.values()])
        for g in games
    }
    lines += [*game_table({**finals, "multi-task": multi}, games), "", "Forgetting F_j:", ""]
    lines += [*game_table({m: s.aggregate["forgetting"] for m, s in summaries.items()}, games)]
    lines += ["", "Forward transfer FT_j:", ""]
    lines += [
        *game_table({m: s.aggregate["forward_transfer"] for m, s in summaries.items()}, games)
    ]
    lines += ["", "## References", "", *reference_table(groups, reference), ""]
    if best is not None:
        seeds = len(summaries[best].runs)
        lines += [
            f"## Best method by average performance: {best}",
            "",
            f"Its evaluation matrix (p, mean over {seeds} seed(s); red: each game's own phase) "
            "and every game over the sequence (mean curves):",
            "",
            f"![{best}: evaluation matrix]({MATRIX_PNG})",
            "",
            f"![{best}: every game over the sequence]({SEQUENCE_PNG})",
            "",
        ]
    lines += ["## DML: a game joins a trained agent online", "", *dml_lines(groups, DML_PNG)]
    lines += ["", "## Cost", "", *cost_rows(results), ""]
    notes = sorted({n for s in summaries.values() for r in s.runs for n in r.metrics.notes})
    if groups.other:
        notes.append(f"left out (another sequence): {', '.join(groups.other)}")
    if notes:
        lines += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(lines)


# --- figures --------------------------------------------------------------------------------------


def plot_dml(groups: Groups, path: Path) -> None:
    """One axes per game of the DML run, from the add phase's start: the mean curve over seeds,
    shaded from the lowest to the highest seed; for the new game also its scratch runs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pairs = dml_pairs(groups)
    runs = [run for run, _ in pairs]
    tasks = [*runs[0].target_tasks, *runs[0].source_tasks]
    figure = Figure(figsize=(4 * len(tasks), 3.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        lines = {"DML": [r.curves.get(task, []) for r in runs]}
        if task in runs[0].target_tasks:
            lines["scratch"] = [s.curves[task] for _, s in pairs]
        for index, (label, curves) in enumerate(lines.items()):
            if not all(curves):
                continue
            steps, values = common.stack_curves(curves)
            ax.plot(steps, values.mean(axis=0), color=f"C{index}", label=f"{label} ({len(curves)})")
            ax.fill_between(
                steps, values.min(axis=0), values.max(axis=0), color=f"C{index}", alpha=0.2
            )
        ax.set_title(task + (" (joins)" if task in runs[0].target_tasks else " (held)"))
        ax.set_xlabel("env steps since the add phase's start")
        ax.set_ylabel("eval return")
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def write_figures(
    out_dir: Path,
    groups: Groups,
    summaries: Mapping[str, MethodSummary],
    reference: Mapping[str, float],
) -> None:
    """The best method's mean matrix and sequence plot, and the DML curves (when there are)."""
    best = best_method(summaries)
    if best is not None:
        runs = summaries[best].runs
        matrix = mean_matrix(runs, f"{best}, mean of {len(runs)} seed(s)")
        plot_matrix(matrix, out_dir / MATRIX_PNG, reference=reference or None)
        plot_sequence_curves(matrix, out_dir / SEQUENCE_PNG)
    if dml_pairs(groups):
        plot_dml(groups, out_dir / DML_PNG)


def write_report(args: argparse.Namespace, load: float) -> Path | None:
    """Rebuilds `continual_minatar.md` and its figures in `--out-dir` from the result JSONs.

    Returns:
        The markdown file's path, or None (with a message) when there is nothing to report.
    """
    results_dir = layout(args).results_dir
    results = [r for r in common.load_results(results_dir) if r.get("benchmark") == BENCH]
    groups = group(results, args.names)
    if not groups.continual and not groups.dml_add:
        found = (
            f"{len(results)} result JSON(s), none of a continual or DML add run of the sequence "
            f"{' → '.join(args.names)}"
            if results
            else "no result JSON"
        )
        print(
            f"nothing to report: {results_dir} holds {found}; run the benchmark (without "
            "--report-only) first"
        )
        return None
    reference, curves = references(groups)
    summaries = method_summaries(groups, reference, curves)
    path = args.out_dir / f"{BENCH}.md"
    path.write_text(markdown(results, groups, summaries, reference, load) + "\n", encoding="utf-8")
    write_figures(args.out_dir, groups, summaries, reference)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the benchmark, then rebuild the report; 0 when every run finished and
    the report was written."""
    args = parse_args(argv)
    load = os.getloadavg()[0]
    outcome: dict[str, bool] = {}
    if not args.report_only:
        outcome = run_benchmark(build_jobs(args), layout(args), args.workers)
    path = write_report(args, load)
    if path is not None:
        print(path.read_text())
    return 0 if path is not None and all(outcome.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
