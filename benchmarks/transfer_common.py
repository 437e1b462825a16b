"""What the transfer benchmarks share: jobs, resuming, result JSONs, report tables and plot.

A transfer benchmark is a list of jobs: pretraining runs (`multiq train` on the source tasks)
and target runs (`multiq transfer <pretraining run> --mode M` on a target task), each target
run after its pretraining. Every job is one `multiq` child process with one torch thread; its
run folder and its log (`<name>.log`) lie in the run root. When a job ends, what the report
needs from its run folder (eval curves, random-policy returns, mode, seed, budget, wall time,
env steps/s) goes to one JSON per run under `<out-dir>/<benchmark>_runs/`, so the report is
rebuilt from the committed JSONs alone, without the run folders.

An *arm* (`Arm`) is one row of a benchmark's tables: a transfer mode, the source it starts from
(`PLAIN`, or `REGULARISED`: pretrained with `REGULARISERS`) and config keys of its own; a target
job whose arm is not a plain mode records it as `info["arm"]` (`arm_info`), and the tables group
by it (`arm`). `REGULARISED_ARMS` are the arms the leave-one-out benchmarks add to their modes.

Resuming, per job (`decide`): a run whose JSON exists is never run again; a finished run folder
(summary.json and model.pt) whose JSON is missing is only collected; a folder with
checkpoint.pt is resumed with `multiq train --resume`; a folder without one is deleted and the
run started again.

The report side reads JSONs with numpy, matplotlib and `multiq.report` only (no torch).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from multiq.report.metrics import read_metrics, read_summary, task_names
from multiq.report.stats import bootstrap_ci
from multiq.report.transfer import (
    TransferRun,
    aggregate_seeds,
    area_verdict,
    read_transfer_run,
    transfer_metrics,
    verdict,
)
from multiq.runio.layout import CHECKPOINT_FILE, MODEL_FILE, SUMMARY_FILE, return_key

PRETRAIN, TARGET = "pretrain", "target"
SCRATCH = "scratch"
# What `decide` says to do with a job.
SKIP, COLLECT, RESUME, RESTART, START, BLOCKED = (
    "skip",
    "collect",
    "resume",
    "restart",
    "start",
    "blocked",
)
LAUNCHING = (START, RESTART, RESUME)
CHILD_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MIN_PROTOCOL_SEEDS = 3


def add_run_arguments(
    parser: argparse.ArgumentParser, bench: str, eval_episodes: int, workers: int
) -> None:
    """The options both transfer benchmarks share (schedule, evaluation, folders, report)."""
    parser.add_argument("--workers", type=int, default=workers, help="runs at once, 1 thread each")
    parser.add_argument("--train-freq", type=int, default=4, help="vector steps per update")
    parser.add_argument(
        "--eval-freq", type=int, default=10_000, help="target env steps between evaluations"
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=eval_episodes, help="per task per evaluation"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--run-root",
        type=Path,
        default=Path("runs") / bench,
        help="run folders and their logs (checkpoints, not results)",
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report")


def add_arms_argument(
    parser: argparse.ArgumentParser, arms: Iterable[str], *aliases: str, dest: str = "arms"
) -> None:
    """`--arms` (and its `aliases`, e.g. the older `--modes`): which arms to run, all by
    default."""
    names = list(arms)
    parser.add_argument(
        "--arms", *aliases, dest=dest, nargs="+", choices=names, default=names,
        help="transfer modes and arms (scratch is always run)",
    )  # fmt: skip


def cpu_run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The multiq config keys (`--set`) every CPU run of a benchmark sets from the options of
    `add_run_arguments` (the schedule and evaluation), on the CPU, without TensorBoard or a
    progress bar."""
    return {
        "train_freq": args.train_freq,
        "eval_freq": args.eval_freq,
        "eval_episodes": args.eval_episodes,
        "device": "cpu",
        "tensorboard": False,
        "progress_bar": False,
    }


def run_then_report(
    args: argparse.Namespace,
    jobs: Sequence[Job],
    layout: Layout,
    write_report: Callable[[float], Path | None],
) -> None:
    """Runs (or resumes) the jobs unless `--report-only`, then writes the report with
    `write_report(load average at the start)` and prints it."""
    load = os.getloadavg()[0]
    if not args.report_only:
        run_benchmark(jobs, layout, args.workers)
    path = write_report(load)
    if path is not None:
        print(path.read_text())


def write_markdown_report(
    layout: Layout, path: Path, kind: str, render: Callable[[list[dict[str, Any]]], str]
) -> Path | None:
    """Writes `render(results)` to `path` once a run of `kind` has a result JSON; else says
    there is none yet and returns None."""
    results = load_results(layout.results_dir)
    if not any(r["kind"] == kind for r in results):
        print(f"no finished {kind} runs under {layout.results_dir} yet")
        return None
    path.write_text(render(results), encoding="utf-8")
    return path


def multiq_program() -> tuple[str, ...]:
    """The `multiq` command: the console script beside this interpreter, else `multiq` on PATH."""
    beside = Path(sys.executable).with_name("multiq")
    return (str(beside),) if beside.exists() else ("multiq",)


MULTIQ = multiq_program()


# --- arms: a transfer mode, the source it starts from, its own keys -------------------------------

PLAIN, REGULARISED = "plain", "regularised"  # the source kinds: plain or regularised pre-training
# pre-training regularisers of the `regularised` source (Farebrother et al. 2018; AdamW's usual
# decay, light dropout in the trunk)
REGULARISERS: dict[str, Any] = {"weight_decay": 0.1, "dropout": 0.1}
L2_INIT = 0.01  # the L2-SP weight (`l2_init`, Li et al. 2018) of the `finetune-l2init` arms


class Arm(NamedTuple):
    """One row of a transfer table: how a target run learns (a tuple: `mode, source, keys =
    arm` unpacks it).

    Attributes:
        mode: the `multiq transfer --mode` (scratch included).
        source: the source kind it starts from, `PLAIN` or `REGULARISED`.
        keys: config keys of its own (`--set`), after the benchmark's.
    """

    mode: str
    source: str = PLAIN
    keys: Mapping[str, Any] = MappingProxyType({})


def mode_arms(modes: Iterable[str]) -> dict[str, Arm]:
    """An arm per transfer mode, named after it: plain source, no keys of its own."""
    return {mode: Arm(mode) for mode in modes}


# The arms the leave-one-out benchmarks (MinAtar, ALE) add to their modes, for the question
# "does progressive, or a regularised source, avoid negative transfer?". The finetune variants
# keep a fresh head (the targets there are other games, with other action sets), as the
# recorded `finetune` runs did.
REGULARISED_ARMS: dict[str, Arm] = {
    "progressive": Arm("progressive"),
    # only the pre-training is regularised: the target trains without the source's regularisers
    "finetune-regpre": Arm(
        "finetune", REGULARISED, {"head_init": "fresh", "weight_decay": 0.0, "dropout": 0.0}
    ),
    "finetune-l2init": Arm("finetune", PLAIN, {"head_init": "fresh", "l2_init": L2_INIT}),
}


REGULARISED_ARMS_NOTE = (
    "`progressive`: a new column with lateral adapters from the frozen source columns (a "
    "`shared` source becomes a column per source task); `finetune-regpre`: finetune from a "
    "second source pretrained with "
    + ", ".join(f"{key} {value}" for key, value in REGULARISERS.items())
    + " (the target trains without them: only the pre-training is regularised); "
    + f"`finetune-l2init`: finetune with `l2_init` {L2_INIT}; both with a fresh head "
    "(`head_init: fresh`), as `finetune`."
)


def chosen_arms(arms: Iterable[str], chosen: Iterable[str]) -> list[str]:
    """The `chosen` arms in the order of `arms`, scratch (the baseline) always among them."""
    wanted = set(chosen)
    return [arm for arm in arms if arm == SCRATCH or arm in wanted]


def source_kinds(arms: Mapping[str, Arm], chosen: Iterable[str]) -> list[str]:
    """The source kinds the `chosen` arms start from: `PLAIN` always (scratch's source), then
    `REGULARISED` when an arm needs it."""
    needed = {arms[name].source for name in chosen}
    return [PLAIN] + ([REGULARISED] if REGULARISED in needed else [])


def source_settings(kind: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A source's pretraining keys: `settings`, plus `REGULARISERS` for the regularised one."""
    return {**settings, **(REGULARISERS if kind == REGULARISED else {})}


def arm_info(name: str, arm: Arm) -> dict[str, Any]:
    """A target job's `mode`, and its `arm` when the arm is not a plain mode (`arm()` reads it),
    so a plain mode's job keeps the fields it always had."""
    return {"mode": arm.mode, **({} if name == arm.mode else {"arm": name})}


# --- jobs and their command lines -----------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One multiq run of a benchmark.

    Attributes:
        name: the run's name; its folder, log and result JSON are named after it.
        kind: `pretrain` or `target`.
        argv: the multiq arguments (after the program) that start the run afresh.
        info: fields copied into the run's result JSON (target, mode, seed, budget, ...).
        after: the name of the job that must finish first (a target run's pretraining).
    """

    name: str
    kind: str
    argv: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)
    after: str | None = None


@dataclass(frozen=True)
class Layout:
    """Where a benchmark's run folders, logs and result JSONs live.

    Attributes:
        run_root: the run folders and their logs (checkpoints; not results).
        results_dir: one result JSON per finished run (`<out-dir>/<benchmark>_runs`).
    """

    run_root: Path
    results_dir: Path

    def run_dir(self, name: str) -> Path:
        """The run folder of the job `name`."""
        return self.run_root / name

    def log_file(self, name: str) -> Path:
        """The log (the child's stdout and stderr, every session appended) of the job `name`."""
        return self.run_root / f"{name}.log"

    def result_file(self, name: str) -> Path:
        """The result JSON of the job `name`."""
        return self.results_dir / f"{name}.json"

    def model_file(self, name: str) -> Path:
        """A pretraining run's model.pt, kept beside its JSON: target runs start from it, also
        in a later session on a fresh checkout (run folders are not kept in git)."""
        return self.results_dir / f"{name}.model.pt"


def set_flags(settings: Mapping[str, Any]) -> list[str]:
    """`--set key=value` flags for multiq config keys (booleans written `true` / `false`)."""
    flags: list[str] = []
    for key, value in settings.items():
        flags += ["--set", f"{key}={flag_value(value)}"]
    return flags


def flag_value(value: Any) -> str:
    """A config value as `--set` reads it (booleans `true` / `false`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def pretrain_argv(
    tasks: Sequence[str], steps_per_task: int, seed: int, run_dir: Path, settings: Mapping
) -> tuple[str, ...]:
    """`multiq train` arguments: train the source tasks together, `steps_per_task` each."""
    return (
        "train",
        "--tasks",
        ",".join(tasks),
        "--steps",
        str(steps_per_task),
        "--seed",
        str(seed),
        "--run-dir",
        str(run_dir),
        *set_flags(settings),
    )


def transfer_argv(
    source: Path,
    targets: Sequence[str],
    mode: str,
    target_steps: int,
    seed: int,
    run_dir: Path,
    settings: Mapping,
) -> tuple[str, ...]:
    """`multiq transfer` arguments: learn `targets` from the `source` model in `mode`."""
    return (
        "transfer",
        str(source),
        "--tasks",
        ",".join(targets),
        "--mode",
        mode,
        "--steps",
        str(target_steps),
        "--seed",
        str(seed),
        "--run-dir",
        str(run_dir),
        *set_flags(settings),
    )


def resume_argv(run_dir: Path) -> tuple[str, ...]:
    """`multiq train --resume` arguments (a transfer run's checkpoint holds its phases)."""
    return ("train", "--resume", str(run_dir))


def child_command(argv: Sequence[str]) -> list[str]:
    """The full command line of a multiq child process."""
    return [*MULTIQ, *argv]


# --- planning -------------------------------------------------------------------------------------


def finished(run_dir: Path) -> bool:
    """Whether a run folder holds a finished run (summary.json and model.pt)."""
    return (run_dir / SUMMARY_FILE).is_file() and (run_dir / MODEL_FILE).is_file()


def decide(job: Job, layout: Layout) -> str:
    """What to do with one job, from the files on disk.

    Returns:
        `skip` (its JSON exists), `blocked` (its pretraining's JSON exists but the model kept
        beside it is gone), `collect` (finished folder, no JSON), `resume` (checkpoint.pt),
        `restart` (a folder without a checkpoint) or `start` (no folder).
    """
    run_dir = layout.run_dir(job.name)
    if layout.result_file(job.name).is_file():
        return SKIP
    after = job.after
    if after and layout.result_file(after).is_file() and not layout.model_file(after).is_file():
        return BLOCKED
    if finished(run_dir):
        return COLLECT
    if (run_dir / CHECKPOINT_FILE).is_file():
        return RESUME
    return RESTART if run_dir.exists() else START


def plan(jobs: Sequence[Job], layout: Layout) -> list[tuple[Job, str]]:
    """Every job with what to do with it, pretraining runs first (otherwise in given order).

    Raises:
        ValueError: a job waits for a job that is not in `jobs`.
    """
    names = {job.name for job in jobs}
    unknown = sorted({job.after for job in jobs if job.after and job.after not in names})
    if unknown:
        raise ValueError(f"jobs wait for jobs that are not planned: {', '.join(unknown)}")
    ordered = sorted(jobs, key=lambda job: job.kind != PRETRAIN)
    return [(job, decide(job, layout)) for job in ordered]


# --- running --------------------------------------------------------------------------------------


def take_ready(pending: list[tuple[Job, str]], outcome: dict[str, bool]) -> tuple[Job, str] | None:
    """Removes and returns the first pending job whose dependency succeeded, or None.

    Jobs whose dependency failed are removed on the way and recorded as failed.
    """
    for item in list(pending):
        job = item[0]
        if job.after is not None and outcome.get(job.after) is False:
            pending.remove(item)
            outcome[job.name] = False
            print(f"{job.name}: not run, {job.after} failed or is blocked", flush=True)
        elif job.after is None or outcome.get(job.after):
            pending.remove(item)
            return item
    return None


def run_jobs(
    planned: Sequence[tuple[Job, str]],
    workers: int,
    execute: Callable[[Job, str], bool],
) -> dict[str, bool]:
    """Runs the planned jobs, `workers` at a time, each only after its dependency succeeded.

    A worker takes the first ready job in plan order, so pretraining runs go first and a target
    run starts as soon as its pretraining has finished and a worker is free. On Ctrl-C no new
    job starts (the running children get the interrupt too and stop resumably).

    Args:
        planned: as returned by `plan`.
        workers: jobs at a time.
        execute: runs one job with its action; returns whether it succeeded.

    Returns:
        job name -> succeeded (skipped jobs count as succeeded, blocked ones as failed).
    """
    interruptible()
    outcome = {job.name: action == SKIP for job, action in planned if action in (SKIP, BLOCKED)}
    pending = [(job, action) for job, action in planned if action not in (SKIP, BLOCKED)]
    ready = threading.Condition()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            with ready:
                item = take_ready(pending, outcome)
                while item is None and pending and not stop.is_set():
                    ready.wait(timeout=1.0)
                    item = take_ready(pending, outcome)
            if item is None:
                return
            succeeded = _execute_safely(execute, *item)
            with ready:
                outcome[item[0].name] = succeeded
                ready.notify_all()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(workers, 1))]
    for thread in threads:
        thread.start()
    _join(threads, stop)
    return outcome


def interruptible() -> None:
    """Lets SIGINT raise KeyboardInterrupt here (so `kill -INT` stops a benchmark as Ctrl-C does)
    also when it was started in the background by a non-interactive shell, which starts it with
    SIGINT ignored. Only the main thread may set a handler; elsewhere nothing changes."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _execute_safely(execute: Callable[[Job, str], bool], job: Job, action: str) -> bool:
    try:
        return execute(job, action)
    except Exception as error:  # one broken run must not stop the others
        print(f"{job.name}: FAILED ({type(error).__name__}: {error})", flush=True)
        return False


def _join(threads: list[threading.Thread], stop: threading.Event) -> None:
    """Waits for the workers; on Ctrl-C stops them taking new jobs, then waits again."""
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    except KeyboardInterrupt:
        stop.set()
        print("interrupted: no new runs start; rerun the same command to resume", flush=True)
        for thread in threads:
            thread.join()


def child_env() -> dict[str, str]:
    """The environment of a child: this one with one OpenMP / MKL (so torch) thread."""
    return {**os.environ, **CHILD_THREADS}


def run_logged(command: Sequence[str], log: Path) -> int:
    """Runs `command` with its output appended to `log`; returns its exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n=== {now()}: {shlex.join(command)}\n")
        handle.flush()
        process = subprocess.run(
            list(command), env=child_env(), stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    return process.returncode


def execute(job: Job, action: str, layout: Layout) -> bool:
    """Carries out `action` on one job, then writes its result JSON; returns success."""
    run_dir = layout.run_dir(job.name)
    extra: dict[str, Any] = {}
    if action in LAUNCHING:
        if action == RESTART:
            shutil.rmtree(run_dir)
        argv = resume_argv(run_dir) if action == RESUME else job.argv
        launched = launch(job, action, argv, layout)
        if launched is None:
            return False
        extra.update(launched)
    if job.kind == PRETRAIN:
        keep_model(run_dir / MODEL_FILE, layout.model_file(job.name))
    write_json(layout.result_file(job.name), extract_result(job, run_dir, extra))
    return True


def launch(job: Job, action: str, argv: Sequence[str], layout: Layout) -> dict[str, Any] | None:
    """Runs one multiq child for `job` (output appended to its log) and says how it went.

    Returns:
        Fields for the result JSON (the load average at the start), or None when it failed.
    """
    extra = {"load_average_1min_at_start": os.getloadavg()[0]}
    start_s = time.perf_counter()
    print(f"{job.name}: {action}", flush=True)
    code = run_logged(child_command(argv), layout.log_file(job.name))
    elapsed_s = time.perf_counter() - start_s
    if code != 0:
        log = layout.log_file(job.name)
        print(f"{job.name}: FAILED (exit {code}) after {elapsed_s:.0f} s; see {log}")
        return None
    print(f"{job.name}: done in {elapsed_s:.0f} s", flush=True)
    return extra


def keep_model(model: Path, kept: Path) -> None:
    """Copies a pretraining run's model.pt next to its result JSON (temp file, then rename)."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    tmp = kept.with_name(kept.name + ".tmp")
    shutil.copyfile(model, tmp)
    tmp.replace(kept)


def run_and_report(
    args: argparse.Namespace, jobs: Sequence[Job], layout: Layout, spec: ReportSpec
) -> None:
    """Runs (or resumes) the jobs unless `--report-only`, then rebuilds and prints the report."""
    run_then_report(args, jobs, layout, lambda load: write_report(spec, args.out_dir, load))


def run_benchmark(jobs: Sequence[Job], layout: Layout, workers: int) -> dict[str, bool]:
    """Plans the jobs, says what it will do, and runs what is left.

    Returns:
        job name -> succeeded, as `run_jobs`.
    """
    planned = plan(jobs, layout)
    counts = Counter(action for _, action in planned)
    print(", ".join(f"{n} {action}" for action, n in counts.items()) + f"; {workers} at a time")
    for job, action in planned:
        if action == BLOCKED:
            print(
                f"{job.name}: blocked: {job.after} is finished (its JSON exists) but its kept "
                f"model {layout.model_file(job.after or '')} is gone; delete "
                f"{layout.result_file(job.after or '')} to pretrain it again",
                flush=True,
            )
    outcome = run_jobs(planned, workers, lambda job, action: execute(job, action, layout))
    failed = [name for name, succeeded in outcome.items() if not succeeded]
    print(f"{len(outcome) - len(failed)} of {len(outcome)} runs finished", flush=True)
    if failed:
        print(f"not finished: {', '.join(failed)} (rerun the same command to retry)", flush=True)
    return outcome


# --- result JSONs ---------------------------------------------------------------------------------


def now() -> str:
    """The local date and time, to the second."""
    return datetime.datetime.now().isoformat(timespec="seconds")


def invocation() -> str:
    """This process's command line."""
    return shlex.join(["python", *sys.argv])


def package_version(name: str) -> str:
    """An installed package's version, read from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def gpu_names() -> str | None:
    """The GPUs `nvidia-smi` lists, or None where there is none (torch is not imported)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return ", ".join(line.strip() for line in listed.splitlines() if line.strip()) or None


def machine_info() -> dict[str, Any]:
    """Platform, CPU count, Python and torch versions and GPUs of this machine."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "gpu": gpu_names(),
    }


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Writes `data` as JSON atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


def extract_result(job: Job, run_dir: Path, extra: Mapping[str, Any] | None = None) -> dict:
    """The result JSON of a finished run: the job's info plus what the report needs.

    Target runs get `mode`, `source`, `source_tasks`, `target_tasks`, `curves` (task ->
    [[env steps, eval return], ...], target and source tasks) and `random_returns`; pretraining
    runs get the curves and random returns of their tasks. Both get the final returns, wall
    time, env steps/s, env steps per task, the machine and the benchmark command.
    """
    summary = read_summary(run_dir)
    tasks = summary.get("tasks", {})
    curves = transfer_fields(run_dir) if job.kind == TARGET else pretrain_fields(run_dir, tasks)
    return {
        "name": job.name,
        "kind": job.kind,
        **job.info,
        **curves,
        "final_returns": {task: entry.get("return_mean") for task, entry in tasks.items()},
        "wall_time_s": summary.get("wall_time_s"),
        "env_steps_per_s": summary.get("env_steps_per_s"),
        "env_steps_per_task": summary.get("env_steps_per_task"),
        "machine": machine_info(),
        "invocation": invocation(),
        "collected": now(),
        **(extra or {}),
    }


def transfer_fields(run_dir: Path) -> dict[str, Any]:
    """A transfer run folder's mode, source, tasks, eval curves and random returns."""
    run = read_transfer_run(run_dir)
    return {
        "mode": run.mode,
        "source": run.source,
        "source_tasks": run.source_tasks,
        "target_tasks": run.target_tasks,
        "curves": {task: [[step, value] for step, value in c] for task, c in run.curves.items()},
        "random_returns": run.random,
    }


def pretrain_fields(run_dir: Path, tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A training run folder's eval curves and random returns (from summary.json)."""
    metrics = read_metrics(run_dir)
    return {
        "curves": {
            task: [[step, value] for step, value in metrics[return_key(task)]]
            for task in task_names(metrics)
        },
        "random_returns": {
            task: entry["random_return_mean"]
            for task, entry in tasks.items()
            if entry.get("random_return_mean") is not None
        },
    }


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every result JSON in `results_dir`, in file-name order."""
    return [json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))]


def run_from_result(result: Mapping[str, Any]) -> TransferRun:
    """A target run's result JSON as the `TransferRun` the transfer metrics take."""
    return TransferRun(
        run_dir=Path(result["name"]),
        mode=result["mode"],
        source_tasks=list(result["source_tasks"]),
        target_tasks=list(result["target_tasks"]),
        curves={task: [(int(s), float(v)) for s, v in c] for task, c in result["curves"].items()},
        random={task: float(value) for task, value in result["random_returns"].items()},
        source=result.get("source"),
    )


# --- report maths ---------------------------------------------------------------------------------

Table = dict[tuple[str, str], dict[int, dict[str, Any]]]


def arm(result: Mapping[str, Any]) -> str:
    """A target run's row in the tables: its `arm` (a mode with settings of its own, e.g.
    `finetune-l2init`) when its job named one, else its mode."""
    return str(result.get("arm") or result["mode"])


def target_table(results: Iterable[Mapping[str, Any]]) -> Table:
    """(target, arm) -> seed -> result, for the target runs (see `arm`)."""
    table: Table = {}
    for result in results:
        if result["kind"] == TARGET:
            table.setdefault((result["target"], arm(result)), {})[result["seed"]] = result
    return table


def paired_seeds(table: Table, target: str, mode: str) -> list[int]:
    """The seeds with a run of `mode` and a scratch run on `target`, in order."""
    return sorted(set(table.get((target, mode), {})) & set(table.get((target, SCRATCH), {})))


def pairs(table: Table, target: str, mode: str) -> list[tuple[TransferRun, TransferRun]]:
    """(run, scratch run of the same seed) for each seed in `paired_seeds`."""
    runs, scratch = table.get((target, mode), {}), table.get((target, SCRATCH), {})
    return [
        (run_from_result(runs[seed]), run_from_result(scratch[seed]))
        for seed in paired_seeds(table, target, mode)
    ]


def summarise(table: Table, targets: Sequence[str], modes: Sequence[str]) -> dict[str, dict]:
    """target -> mode -> `{"seeds", "target": stats, "source": task -> stats}` over seeds.

    The stats are `aggregate_seeds`'s (mean, 95% bootstrap interval); scratch is paired with
    itself, so its row is the reference (jumpstart 0, ratio 1). Modes without a seed that also
    has a scratch run are left out.
    """
    summary: dict[str, dict] = {}
    for target in targets:
        for mode in modes:
            seed_pairs = pairs(table, target, mode)
            if not seed_pairs:
                continue
            stats = aggregate_seeds(seed_pairs)
            summary.setdefault(target, {})[mode] = {
                "seeds": paired_seeds(table, target, mode),
                "target": stats["target"][target],
                "source": stats["source"],
            }
    return summary


def pooled_ratio(
    table: Table, targets: Sequence[str], mode: str
) -> tuple[list[int], tuple[float, float, float]]:
    """The transfer ratio of `mode` averaged over the targets, per seed; its mean and interval.

    Only seeds with a run of `mode` and of scratch for every target count; a target whose
    ratio is undefined (scratch's area <= 0) is left out of that seed's average.

    Returns:
        (seeds, (mean, low, high) over those seeds, 95% bootstrap).
    """
    seed_sets = [set(paired_seeds(table, target, mode)) for target in targets]
    seeds = sorted(set.intersection(*seed_sets)) if seed_sets else []
    per_seed = [finite_mean(seed_ratios(table, targets, mode, seed)) for seed in seeds]
    return seeds, bootstrap_ci(per_seed)


def seed_ratios(table: Table, targets: Sequence[str], mode: str, seed: int) -> list[float]:
    """The transfer ratio of `mode` for each target, at one seed."""
    ratios = []
    for target in targets:
        run = run_from_result(table[(target, mode)][seed])
        scratch = run_from_result(table[(target, SCRATCH)][seed])
        ratios.append(transfer_metrics(run, scratch)["target"][target]["transfer_ratio"])
    return ratios


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the finite values (nan when there is none)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def verdict_text(low: float, high: float, seeds: int, undefined: int = 0) -> str:
    """`verdict` of a transfer-ratio interval, or why there is none (`undefined`: seeds whose
    ratio is undefined because scratch did not learn)."""
    if seeds < 2 and undefined:
        return f"a defined ratio in fewer than 2 seeds ({undefined} undefined): no verdict"
    if seeds < 2:
        return "one seed only, no interval: no verdict"
    return verdict(low, high, undefined)


# --- report text ----------------------------------------------------------------------------------


def fmt_stat(stat: Mapping[str, float] | None, spec: str = ".2f") -> str:
    """`mean [low, high]`, or `n/a` when there is no finite value."""
    if stat is None or math.isnan(stat["mean"]):
        return "n/a"
    return f"{stat['mean']:{spec}} [{stat['low']:{spec}}, {stat['high']:{spec}}]"


def fmt_steps(stat: Mapping[str, float]) -> str:
    """Steps to threshold over the seeds that reached it, with how many did and in how many
    the threshold was undefined (scratch ended at random)."""
    undefined = stat.get("undefined", 0)
    if undefined == stat["seeds"]:
        return "undefined: scratch ended at random"
    counts = f"({stat['reached']}/{stat['seeds'] - undefined} seeds"
    counts += f"; {undefined} undefined: scratch ended at random)" if undefined else ")"
    if stat["reached"] == 0:
        return f"not reached {counts}"
    return f"{fmt_stat(stat, ',.0f')} {counts}"


def target_rows(summary: Mapping[str, dict], target: str) -> list[str]:
    """The markdown table of one target: a row per mode, scratch first (the reference)."""
    lines = [
        "| mode | seeds | first return | jumpstart | final return | transfer ratio | "
        "area difference | steps to threshold | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for mode, row in summary.get(target, {}).items():
        stats = row["target"]
        text = "reference" if mode == SCRATCH else row_verdict(row)
        lines.append(
            f"| {mode} | {len(row['seeds'])} | {fmt_stat(stats['first_return'])} | "
            f"{fmt_stat(stats['jumpstart'])} | {fmt_stat(stats['final_return'])} | "
            f"{ratio_cell(stats['transfer_ratio'])} | {fmt_stat(stats.get('area_difference'))} | "
            f"{fmt_steps(stats['time_to_threshold_steps'])} | {text} |"
        )
    return lines


def ratio_cell(ratio: Mapping[str, Any]) -> str:
    """The transfer-ratio interval, and how many seeds it leaves out because scratch did not
    learn there (their ratio is undefined; the area difference still counts them)."""
    undefined = int(ratio.get("undefined", 0))
    if not undefined:
        return fmt_stat(ratio)
    seeds = "seed" if undefined == 1 else "seeds"
    return f"{fmt_stat(ratio)} ({undefined} {seeds} undefined: scratch did not learn)"


def forgetting_rows(summary: Mapping[str, dict], target: str) -> list[str]:
    """The source tasks' return before -> after and forgetting, a row per mode (not scratch)."""
    rows = {m: row for m, row in summary.get(target, {}).items() if row["source"]}
    sources = list(dict.fromkeys(task for row in rows.values() for task in row["source"]))
    if not sources:
        return ["(no source-task evaluations in these runs)"]
    lines = ["| mode | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
    for mode, row in rows.items():
        cells = [forgetting_cell(row["source"].get(task)) for task in sources]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return lines


def forgetting_cell(stats: Mapping[str, Mapping[str, float]] | None) -> str:
    """`before → after (forgetting mean [low, high])` of one source task."""
    if stats is None:
        return "n/a"
    before, after = stats["return_before"]["mean"], stats["return_after"]["mean"]
    return f"{before:.2f} → {after:.2f} ({fmt_stat(stats['forgetting'])})"


def verdict_lines(
    table: Table, summary: Mapping[str, dict], targets: Sequence[str], modes: Sequence[str]
) -> list[str]:
    """Per mode: a verdict on the ratio averaged over the targets, then one line per target
    (with a single target, only that line)."""
    lines = []
    for mode in (m for m in modes if m != SCRATCH):
        per_target = [
            f"{target}: {fmt_stat(row['target']['transfer_ratio'])}: {row_verdict(row)}."
            for target in targets
            if (row := summary.get(target, {}).get(mode)) is not None
        ]
        if len(targets) == 1:
            lines += [f"- **{mode}**, {line}" for line in per_target]
        else:
            lines += [pooled_line(table, targets, mode), *(f"  - {line}" for line in per_target)]
    return lines


def row_verdict(row: Mapping[str, Any]) -> str:
    """The verdict of one target and mode from its transfer-ratio interval over seeds; where
    scratch did not learn in so many seeds that fewer than 2 ratios are defined, from the
    area-difference interval over every seed (defined in each)."""
    ratio, area = row["target"]["transfer_ratio"], row["target"].get("area_difference")
    defined = int(ratio.get("n", len(row["seeds"])))  # seeds whose ratio is defined
    undefined = int(ratio.get("undefined", 0))
    if defined < 2 and undefined and area is not None and area.get("n", 0) >= 2:
        return (
            f"{area_verdict(area['low'], area['high'])}; the ratio is undefined in "
            f"{undefined} of {defined + undefined} seeds (scratch did not learn)"
        )
    return verdict_text(ratio["low"], ratio["high"], defined, undefined)


def pooled_line(table: Table, targets: Sequence[str], mode: str) -> str:
    """The verdict of `mode` on its transfer ratio averaged over the targets."""
    seeds, (mean, low, high) = pooled_ratio(table, targets, mode)
    if not seeds:
        return (
            f"- **{mode}**: no seed has runs of it and of scratch on every one of "
            f"{', '.join(targets)}: no verdict over them."
        )
    return (
        f"- **{mode}**: transfer ratio averaged over {', '.join(targets)}: "
        f"{mean:.2f} [{low:.2f}, {high:.2f}] (seeds {seeds}): "
        f"{verdict_text(low, high, len(seeds))}."
    )


def cost_rows(results: Sequence[Mapping[str, Any]], modes: Sequence[str]) -> list[str]:
    """Mean wall time and env steps/s of the pretraining runs and of each mode's runs."""
    groups = {PRETRAIN: [r for r in results if r["kind"] == PRETRAIN]}
    groups.update({m: [r for r in results if r["kind"] == TARGET and arm(r) == m] for m in modes})
    lines = ["| runs | count | mean wall time (s) | mean env steps/s |", "|---|---:|---:|---:|"]
    for label, runs in groups.items():
        if runs:
            wall = finite_mean([float(r.get("wall_time_s") or math.nan) for r in runs])
            speed = finite_mean([float(r.get("env_steps_per_s") or math.nan) for r in runs])
            lines.append(f"| {label} | {len(runs)} | {wall:.0f} | {speed:.0f} |")
    return lines


def as_text(value: Any) -> str:
    """A value for the report: text as is, integers with thousands separators, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return json.dumps(value)


def distinct(values: Iterable[Any]) -> str:
    """The runs' one value as text, or `mixed: a; b` when they disagree (`?` for none)."""
    texts = list(dict.fromkeys(as_text(value) for value in values))
    if len(texts) == 1:
        return texts[0]
    return "mixed: " + "; ".join(texts) if texts else "?"


def settings_text(result: Mapping[str, Any]) -> str:
    """A run's `--set` keys as `key=value, ...`."""
    return ", ".join(f"{key}={flag_value(value)}" for key, value in result["settings"].items())


def machine_text(machine: Mapping[str, Any]) -> str:
    """One machine as a phrase."""
    gpu = machine.get("gpu") or "no GPU"
    return (
        f"{machine.get('platform')}, {machine.get('cpus')} CPUs, {gpu}, Python "
        f"{machine.get('python')}, torch {machine.get('torch')}"
    )


def header_lines(title: str, results: Sequence[Mapping[str, Any]], load: float) -> list[str]:
    """Title, date, commands, machines, load averages, the budget and the seeds."""
    targets = [r for r in results if r["kind"] == TARGET]
    loads = [r["load_average_1min_at_start"] for r in results if "load_average_1min_at_start" in r]
    load_range = f"{min(loads):.2f} to {max(loads):.2f}" if loads else "not recorded"
    seeds = sorted({r["seed"] for r in results})
    return [
        f"# {title}",
        "",
        f"- date of this report: {now()}; command: `{invocation()}`",
        f"- runs launched by: {distinct(r.get('invocation', '?') for r in results)}",
        f"- machine of the runs: {distinct(machine_text(r.get('machine', {})) for r in results)}; "
        f"this report: {machine_text(machine_info())}",
        f"- 1-minute load average: {load:.2f} at this invocation; {load_range} when the runs "
        "started (each run: one child process, one torch thread)",
        f"- budget: pretraining {distinct(r['pretrain_steps'] for r in results)} env steps per "
        f"source task; target {distinct(r['target_steps'] for r in targets)} env steps in "
        "every mode (the same for scratch)",
        f"- settings (`--set` of the target runs): {distinct(settings_text(r) for r in targets)}",
        f"- seeds: {seeds}"
        + (
            f" (fewer than the protocol's {MIN_PROTOCOL_SEEDS}: read intervals as indicative)"
            if len(seeds) < MIN_PROTOCOL_SEEDS
            else ""
        ),
    ]


def metric_notes(target_steps: str) -> list[str]:
    """How the metrics are defined (multiq.report.transfer)."""
    return [
        "Metrics per seed against the scratch run of the same seed, target "
        f"budget {target_steps} env steps; means with 95% bootstrap intervals over seeds: "
        "first return (evaluation at step 0, before any target training); jumpstart = first "
        "return - scratch's; final return (last evaluation); transfer ratio = area under the "
        "eval curve above the random return / scratch's (1 = as scratch; undefined in a seed where "
        "scratch did not learn, its area above random being about 0); area difference = the mean "
        "return gained over scratch per env step (the area between the two curves / the steps); "
        "steps to threshold = first eval step reaching random + 0.8 x (scratch final - "
        "random), over the seeds that reached it (undefined in a seed where scratch ended at "
        "random). Verdict from the transfer-ratio interval: positive (all > 1), negative "
        "(all < 1), none (it includes 1); where fewer than 2 seeds have a defined ratio, from "
        "the area-difference interval over all seeds (positive: all > 0). Forgetting of a "
        "source task = its return at the target's step 0 - at the end (positive: forgot).",
    ]


# --- report plot ----------------------------------------------------------------------------------


def stack_curves(curves: Sequence[Sequence[Sequence[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Several seeds' curves on one step grid: the first curve's steps up to the shortest end.

    Returns:
        steps [T] and values [seeds, T] (each curve linearly interpolated at the steps).
    """
    arrays = [np.asarray(c, dtype=np.float64) for c in curves]
    end = min(a[-1, 0] for a in arrays)
    steps = arrays[0][arrays[0][:, 0] <= end, 0]
    return steps, np.stack([np.interp(steps, a[:, 0], a[:, 1]) for a in arrays])


def plot_targets(table: Table, targets: Sequence[str], modes: Sequence[str], path: Path) -> None:
    """One axes per target: each mode's mean eval curve, shaded from the lowest to the highest
    seed, and the random return dotted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * len(targets), 4))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets, strict=True):
        for index, mode in enumerate(modes):
            runs = list(table.get((target, mode), {}).values())
            if not runs:
                continue
            steps, values = stack_curves([run["curves"][target] for run in runs])
            color = f"C{index}"  # a mode keeps its colour in every axes
            ax.plot(steps, values.mean(axis=0), color=color, label=f"{mode} ({len(runs)})")
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2)
        scratch = table.get((target, SCRATCH), {}).values()
        randoms = [r["random_returns"][target] for r in scratch if target in r["random_returns"]]
        if randoms:
            ax.axhline(finite_mean(randoms), color="grey", ls=":", label="random")
        ax.set_title(f"target {target}")
        ax.set_xlabel("target env steps")
        ax.set_ylabel("eval return")
        ax.legend(fontsize=8, title="mode (seeds)", title_fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


# --- the report file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportSpec:
    """What differs between the transfer benchmarks' reports.

    Attributes:
        bench: the benchmark's name (`transfer_minatar`): the results folder and file names.
        title: the report's title.
        modes: the modes in table order (scratch first).
        target_order: preferred order of the targets (others follow, sorted).
        target_label: what a target is called (`held-out game`).
        notes: lines stating the protocol and caveats, after the header.
    """

    bench: str
    title: str
    modes: tuple[str, ...]
    target_order: tuple[str, ...]
    target_label: str
    notes: tuple[str, ...] = ()


def ordered_targets(table: Table, order: Sequence[str]) -> list[str]:
    """The targets with runs: those in `order` first, in that order, then the rest sorted."""
    present = {target for target, _ in table}
    return [t for t in order if t in present] + sorted(present - set(order))


def markdown(spec: ReportSpec, results: Sequence[Mapping[str, Any]], load: float) -> str:
    """The report: header, per-target tables, verdicts, forgetting, cost and the plot."""
    table = target_table(results)
    targets = ordered_targets(table, spec.target_order)
    modes = [m for m in spec.modes if any((t, m) in table for t in targets)]
    summary = summarise(table, targets, modes)
    target_steps = distinct(r["target_steps"] for r in results if r["kind"] == TARGET)
    lines = [*header_lines(spec.title, results, load), *spec.notes, ""]
    lines += [f"## Target return per {spec.target_label} and mode", "", *metric_notes(target_steps)]
    for target in targets:
        lines += ["", f"### {target}", "", *target_rows(summary, target)]
    lines += ["", "## Verdicts (transfer ratio interval vs 1)", ""]
    lines += verdict_lines(table, summary, targets, modes)
    lines += ["", "## Source tasks: return before → after target training (forgetting)", ""]
    for target in targets:
        lines += [f"### {spec.target_label} {target}", "", *forgetting_rows(summary, target), ""]
    lines += ["## Cost", "", *cost_rows(results, modes), ""]
    lines += [f"![mean eval curves per mode, shaded lowest to highest seed]({spec.bench}.png)"]
    return "\n".join(lines) + "\n"


def write_report(spec: ReportSpec, out_dir: Path, load: float) -> Path | None:
    """Rebuilds `<bench>.md` and `<bench>.png` in `out_dir` from the result JSONs.

    Returns:
        The markdown file's path, or None when no target run has finished.
    """
    results = load_results(out_dir / f"{spec.bench}_runs")
    table = target_table(results)
    if not table:
        print(f"no finished target runs in {out_dir / f'{spec.bench}_runs'}: no report")
        return None
    path = out_dir / f"{spec.bench}.md"
    path.write_text(markdown(spec, results, load), encoding="utf-8")
    modes = [m for m in spec.modes if any(key[1] == m for key in table)]
    plot_targets(table, ordered_targets(table, spec.target_order), modes, path.with_suffix(".png"))
    return path
