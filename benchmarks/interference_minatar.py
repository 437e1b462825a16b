"""Which remedy closes the shared agent's gap to `independent` on MinAtar (interference)?

The five MinAtar games with the paper's settings (`configs/minatar-paper.yaml`, see
benchmarks/minatar_paper.py); epsilon decays over the paper's first 100k env steps at every
budget (`exploration_fraction` = 100k / budget), as in the recorded 1M runs. Variants (`VARIANTS`,
each a list of `--set` overrides of that config): `shared` (the config as is), `shared-2x` (twice
the width), `popart`, `routed`, `pcgrad` and `independent` (five separate nets).

Stages:
- `--stage screen` (default): 500k env steps per game, seed 0, every variant but `independent`,
  in the order of `VARIANTS` (the likeliest remedies first). `independent` is the recorded 1M run
  of benchmarks/minatar_paper.py (`--recorded-root`, seed 0) read up to 500k;
- `--stage confirm --variants A B [--seeds 0 1] [--independent-seeds 1]`: 1M env steps per game;
  the recorded `independent` seed 0 serves, other `--independent-seeds` are trained here.
The recorded plain `shared` runs (seeds 0, 1, 2, read up to the budget) are a reference line:
the seed-to-seed spread of plain shared.

Runs are resumable `multiq train` children (benchmarks/paper_runs.py), `--workers` at a time with
one torch thread and `async_updates` false by default (two sequential runs fill two cores), in
`--run-root/<variant>-<steps>-seed<S>` (default `runs/interference_minatar/`, git-ignored); what
the report reads is copied to `--results-root/<same name>` (default
`benchmarks/results/interference_minatar_runs/`) when a child ends. A folder that holds a run of
another config (a finished one, which is a record, or a checkpoint that a resume would train
further) stops the benchmark before any child starts. `--hours H` stops the children after H
hours with SIGINT; run the benchmark again to resume them.

The report (`interference_minatar.md` in `--out-dir`) gives per variant and game the training
measure (the paper's: the mean of the logged `rollout/<game>/ep_return` over the last 50k env
steps per game before the budget) and the evaluation return at the budget, each with its
difference to `independent` (variant minus independent, in return points); per run its wall
time, parameters, and the pair of games whose gradients on the shared weights conflict most (the
lowest mean `mtl/grad_cos/<a>/<b>`); per variant whether it closes the Asterix and SpaceInvaders
gap without losing Freeway, Breakout and Seaquest. Runs still going show their numbers up to now,
marked as such. Each trained run's conflict map goes to `<results copy>/conflicts.png` where
`multiq.report.conflicts` is there.

    python benchmarks/interference_minatar.py [--stage screen] [--variants ...] [--seeds ...]
        [--independent-seeds ...] [--steps-per-game N] [--workers 2] [--hours H] [--report-only]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paper_runs import (
    GAMES,
    TRAINING_WINDOW_STEPS,
    Job,
    child_command,
    finished,
    latest_returns,
    machine,
    paper_config,
    publish,
    run_jobs,
    training_returns,
)

if TYPE_CHECKING:
    from multiq.config import Config

VARIANTS: dict[str, tuple[str, ...]] = {
    "shared-2x": ("conv_filters=32", "hidden_size=256"),
    "pcgrad": ("balancer=pcgrad",),
    "popart": ("popart=true",),
    "routed": ("scheme=routed",),
    "shared": (),
    "independent": ("scheme=independent",),
}
"""Variant -> its `--set` overrides of the paper's config; the order is the screening's."""
VARIANT_KEYS = frozenset(item.split("=")[0] for sets in VARIANTS.values() for item in sets)
STAGE_STEPS = {"screen": 500_000, "confirm": 1_000_000}
STAGE_SEEDS = {"screen": [0], "confirm": [0, 1]}
PAPER_EXPLORATION_STEPS = 100_000  # the paper's epsilon decay: 1 -> 0.1 over 100k env steps
CLOSE = ("Asterix", "SpaceInvaders")  # the games where shared trails independent
KEEP = ("Freeway", "Breakout", "Seaquest")  # the games a remedy must not lose
ROOT = Path(__file__).resolve().parents[1]
RUN_ROOT = ROOT / "runs" / "interference_minatar"
RESULTS_ROOT = ROOT / "benchmarks" / "results" / "interference_minatar_runs"
RECORDED_ROOT = ROOT / "benchmarks" / "results" / "minatar_paper_runs"
RECORDED_INDEPENDENT = {0: "independent-seed0"}  # seed -> folder under --recorded-root
RECORDED_SHARED = {0: "shared-seed0", 1: "shared-seed1", 2: "shared-seed2"}
RECORDED_LINE = "shared (recorded)"  # the report's line of the recorded plain shared runs
PLUMBING = frozenset({"total_steps_per_task", "async_updates", "torch_threads", "device",
                      "progress_bar", "tensorboard", "loggers", "wandb_project",
                      "wandb_group"})  # fmt: skip
"""Config keys where two runs may differ and still be the same run (how it ran, not what)."""
COS_PREFIX = "mtl/grad_cos/"
MEASURES = {"training": "training measure (the paper's)", "eval": "evaluation return"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=list(STAGE_STEPS), default="screen")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="screen: all but independent; confirm: required")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="screen: 0; confirm: 0 1")  # fmt: skip
    parser.add_argument("--independent-seeds", type=int, nargs="*", default=[],
                        help="independent runs to train beside the recorded seed 0")  # fmt: skip
    parser.add_argument("--steps-per-game", type=int, default=None,
                        help="screen: 500000; confirm: 1000000")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--async-updates", choices=["auto", "true", "false"], default="false")
    parser.add_argument("--hours", type=float, default=None,
                        help="stop the runs after this many hours with SIGINT")  # fmt: skip
    parser.add_argument("--run-root", type=Path, default=RUN_ROOT)
    parser.add_argument("--results-root", type=Path, default=RESULTS_ROOT)
    parser.add_argument("--recorded-root", type=Path, default=RECORDED_ROOT)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.variants is None:
        if args.stage == "confirm":
            parser.error("--stage confirm needs --variants (the best one or two of the screen)")
        args.variants = [v for v in VARIANTS if v != "independent"]
    args.seeds = args.seeds if args.seeds is not None else STAGE_SEEDS[args.stage]
    args.steps_per_game = args.steps_per_game or STAGE_STEPS[args.stage]
    return args


# --- the runs --------------------------------------------------------------------------------


def runs(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(variant, seed) of every run this benchmark trains, seed-major, variants in the order
    given, then `independent` (its recorded seeds are read, not trained)."""
    order = [v for v in args.variants if v != "independent"] + ["independent"]
    wanted = {(v, s) for v in args.variants for s in args.seeds}
    wanted |= {("independent", s) for s in args.independent_seeds}
    wanted -= {("independent", s) for s in RECORDED_INDEPENDENT}
    return sorted(wanted, key=lambda pair: (pair[1], order.index(pair[0])))


def run_name(args: argparse.Namespace, variant: str, seed: int) -> str:
    return f"{variant}-{args.steps_per_game}-seed{seed}"


def run_dir(args: argparse.Namespace, variant: str, seed: int) -> Path:
    """The run's own folder (checkpoint, replay and all), under `--run-root`."""
    return args.run_root / run_name(args, variant, seed)


def result_dir(args: argparse.Namespace, variant: str, seed: int) -> Path:
    """The copy of what the report reads, under `--results-root`."""
    return args.results_root / run_name(args, variant, seed)


def overrides(args: argparse.Namespace, variant: str) -> list[str]:
    """The `--set` items of a variant's run: its own, and epsilon's decay over the paper's
    100k env steps at this budget."""
    fraction = min(1.0, PAPER_EXPLORATION_STEPS / args.steps_per_game)
    return [f"exploration_fraction={fraction:g}", *VARIANTS[variant]]


def expected_config(args: argparse.Namespace, variant: str, seed: int) -> Config:
    """The config a run of `variant` and `seed` trains with."""
    return paper_config().with_overrides([*overrides(args, variant), f"seed={seed}"])


def config_conflict(folder: Path, expected: Config, steps: int) -> str | None:
    """Why `folder` holds a run other than the one `expected` describes at `steps` env steps per
    game (a finished run at another budget, or a defining key that differs: one `expected` was
    given or a variant sets, outside `PLUMBING`); None when it holds this run or none."""
    from multiq.config import Config
    from multiq.errors import MultiqError

    if not (folder / "config.yaml").is_file():
        return None
    try:
        held = Config.from_yaml(folder / "config.yaml").to_dict()
    except MultiqError as error:
        return f"its config.yaml does not load ({error})"
    want = expected.to_dict()
    # what defines a run: the keys its config file and overrides give, and every variant's keys
    # (a default that changed since a run started, e.g. meta_lr, does not make it another run)
    defining = (expected.given_keys | VARIANT_KEYS) - PLUMBING
    keys = [k for k in want if k in defining and held.get(k) != want[k]]
    reasons = [f"{k}: {held.get(k)!r}, this run's {want[k]!r}" for k in keys]
    if (folder / "summary.json").is_file():
        done = json.loads((folder / "summary.json").read_text()).get("env_steps_per_task")
        if done != steps:
            reasons.append(f"finished at {done} env steps per game, this run's budget {steps}")
    return "; ".join(reasons) or None


def command(args: argparse.Namespace, variant: str, seed: int) -> list[str] | None:
    """The child that runs (or resumes) one run; None when it is finished (a run folder
    finished but not yet copied is published here).

    Raises:
        SystemExit: the run folder or its copy holds a run of another config.
    """
    folder, result = run_dir(args, variant, seed), result_dir(args, variant, seed)
    expected = expected_config(args, variant, seed)
    for place in (folder, result):
        if (why := config_conflict(place, expected, args.steps_per_game)) is not None:
            kind = "a finished run" if (place / "summary.json").is_file() else "a run"
            raise SystemExit(
                f"{place} holds {kind} of another config than {variant} seed {seed} ({why}); "
                "a finished run is a record and is not trained further: move the folder away "
                "or give another --run-root / --results-root"
            )
    if finished(result, args.steps_per_game):
        return None
    if finished(folder, args.steps_per_game):
        publish(folder, result)
        return None
    return child_command(folder, seed, args.steps_per_game, args.async_updates,
                         overrides(args, variant))  # fmt: skip


def run_all(args: argparse.Namespace) -> None:
    """Checks every run's folders, then runs what is not finished, `--workers` at a time."""
    todo = [(pair, argv) for pair in runs(args) if (argv := command(args, *pair)) is not None]
    print(f"{len(runs(args)) - len(todo)} finished, {len(todo)} to run or resume", flush=True)
    jobs = [Job(f"{variant} seed {seed}", argv, run_dir(args, variant, seed),
                result_dir(args, variant, seed)) for (variant, seed), argv in todo]  # fmt: skip
    run_jobs(jobs, args.workers, args.hours)


# --- reading a run at the budget ---------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What one run shows at the budget (or up to now, while it goes).

    Attributes:
        seed: the run's seed.
        folder: the folder read.
        step: env steps per game reached, at most the budget (its latest log of a measure).
        done: whether it reached the budget (an evaluation at the budget).
        measures: ``training`` / ``eval`` -> game -> return (absent before the first).
        wall_time_s: training seconds up to `step`.
        parameters: the online network's parameter count (None without a loadable config).
        pairs: (a, b) -> the mean of the run's logged gradient cosines of games a and b.
    """

    seed: int
    folder: Path
    step: int
    done: bool
    measures: dict[str, dict[str, float]]
    wall_time_s: float | None
    parameters: int | None
    pairs: dict[tuple[str, str], float]


def read_run(folder: Path, seed: int, budget: int) -> Reading | None:
    """The run in `folder` at `budget` env steps per game; None before its first log."""
    training = training_returns(folder, TRAINING_WINDOW_STEPS, until=budget)
    evaluation = latest_returns(folder, until=budget)
    if training is None and evaluation is None:
        return None
    measures = {m: got[1] for m, got in (("training", training), ("eval", evaluation)) if got}
    step = max(got[0] for got in (training, evaluation) if got is not None)
    return Reading(
        seed=seed, folder=folder, step=step, measures=measures,
        done=evaluation is not None and evaluation[0] >= budget,
        wall_time_s=wall_time(folder, budget), parameters=count_parameters(folder),
        pairs=conflict_pairs(folder, budget),
    )  # fmt: skip


def wall_time(folder: Path, budget: int) -> float | None:
    """Training seconds up to `budget`: summary.json's for a run finished at it, else the
    latest `wall_time_s` that metrics.csv logged at or before it (over all sessions)."""
    summary = folder / "summary.json"
    if summary.is_file():
        record = json.loads(summary.read_text())
        if record.get("env_steps_per_task") == budget:
            return float(record["wall_time_s"])
    with open(folder / "metrics.csv", newline="") as handle:
        times = [float(row[1]) for row in csv.reader(handle) if _step(row) <= budget]
    return max(times, default=None)


def _step(row: list[str]) -> float:
    """A metrics.csv row's step; infinite for the header or a row half written."""
    return float(row[0]) if len(row) == 4 and row[0].isdigit() else math.inf


def count_parameters(folder: Path) -> int | None:
    """Parameters of the online network that the run's config.yaml builds; None without a
    config that builds here."""
    from multiq.api import MultiTaskDQN
    from multiq.config import Config
    from multiq.errors import MultiqError

    if not (folder / "config.yaml").is_file():
        return None
    try:
        config = Config.from_yaml(folder / "config.yaml").replace(device="cpu")
        model = MultiTaskDQN(config=config)
    except (MultiqError, ImportError):
        return None
    return sum(p.numel() for p in model.learner.online.parameters())


def conflict_pairs(folder: Path, budget: int) -> dict[tuple[str, str], float]:
    """(a, b) -> the mean of `mtl/grad_cos/<a>/<b>` logged at or before `budget`; pair keys are
    matched against the run's task names (which may hold ``/``), not split."""
    from multiq.report.metrics import read_metrics, task_names

    series = read_metrics(folder)
    names = list(dict.fromkeys([*task_names(series), *GAMES]))
    pairs = {}
    for a in names:
        for b in names:
            values = [v for step, v in series.get(f"{COS_PREFIX}{a}/{b}", []) if step <= budget]
            values = [v for v in values if math.isfinite(v)]
            if a != b and values:
                pairs[(a, b)] = sum(values) / len(values)
    return pairs


def read_or_none(folders: Sequence[Path], seed: int, budget: int) -> Reading | None:
    """The first of `folders` that reads (a live run folder's last row may be half written:
    then its copy)."""
    from multiq.report.metrics import ReportError

    for folder in folders:
        if (folder / "metrics.csv").is_file():
            try:
                return read_run(folder, seed, budget)
            except ReportError:
                continue
    return None


def lines(args: argparse.Namespace) -> dict[str, list[Reading]]:
    """Report line -> its runs' readings: ``independent`` (recorded seed 0 and trained seeds),
    the recorded plain ``shared`` seeds (`RECORDED_LINE`), then each variant trained here."""
    budget = args.steps_per_game
    found: dict[str, list[Reading]] = {"independent": [], RECORDED_LINE: []}
    recorded = [("independent", s, n) for s, n in RECORDED_INDEPENDENT.items()]
    recorded += [(RECORDED_LINE, s, n) for s, n in RECORDED_SHARED.items()]
    for line, seed, name in recorded:
        if (reading := read_or_none([args.recorded_root / name], seed, budget)) is not None:
            found[line].append(reading)
    for variant, seed in runs(args):
        places = [run_dir(args, variant, seed), result_dir(args, variant, seed)]
        if (reading := read_or_none(places, seed, budget)) is not None:
            found.setdefault(variant, []).append(reading)
    return found


# --- the report --------------------------------------------------------------------------------


def values_of(readings: Sequence[Reading], measure: str, game: str) -> list[float]:
    return [r.measures[measure][game] for r in readings if measure in r.measures]


def value_cell(values: list[float], reference: list[float]) -> str:
    """``mean`` (``[min, max]`` over several runs) and its difference to the reference's mean
    (variant minus reference); ``-`` without values."""
    if not values:
        return "-"
    mean = sum(values) / len(values)
    text = f"{mean:.2f}" + (f" [{min(values):.2f}, {max(values):.2f}]" if len(values) > 1 else "")
    if reference:
        text += f" ({mean - sum(reference) / len(reference):+.2f})"
    return text


def line_label(line: str, readings: Sequence[Reading], budget: int) -> str:
    seeds = ", ".join(str(r.seed) for r in readings)
    going = [r for r in readings if not r.done]
    label = f"{line}, seed{'s' if len(readings) > 1 else ''} {seeds}"
    if going:
        label += f", going: {', '.join(f'{r.step:,}' for r in going)} of {budget:,}"
    return label


def verdict(line: str, found: dict[str, list[Reading]], measure: str) -> str:
    """Whether the line closes at least half the Asterix and SpaceInvaders gap between plain
    shared (mean) and independent (mean), and stays at or above the lowest plain-shared run on
    Freeway, Breakout and Seaquest."""
    shared = found.get(RECORDED_LINE, []) + found.get("shared", [])
    own, independent = found[line], found.get("independent", [])
    if not all(r.done for r in own):
        return "going: no verdict before the budget"
    shared = [r for r in shared if r.done]  # a plain shared run still going is no reference
    if not all(values_of(r, measure, GAMES[0]) for r in (own, shared, independent)):
        return "-"
    mean = {g: _mean(values_of(own, measure, g)) for g in GAMES}
    closed = []
    for game in CLOSE:
        base = _mean(values_of(shared, measure, game))
        top = _mean(values_of(independent, measure, game))
        closed.append((game, 1.0 if top <= base else (mean[game] - base) / (top - base)))
    lost = [g for g in KEEP if mean[g] < min(values_of(shared, measure, g))]
    gaps = ", ".join(f"{g} {share:.0%}" for g, share in closed)
    answer = "yes" if all(s >= 0.5 for _, s in closed) and not lost else "no"
    return f"{answer}: gap closed {gaps}; " + (f"loses {', '.join(lost)}" if lost else "keeps")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def measure_table(found: dict[str, list[Reading]], measure: str, budget: int) -> list[str]:
    head = "| line | " + " | ".join(GAMES) + " | closes the gap, keeps the rest? |"
    rows = [head, "|---|" + "---:|" * len(GAMES) + "---|"]
    independent = found.get("independent", [])
    for line, readings in found.items():
        if not readings:
            continue
        reference = [] if line == "independent" else independent
        cells = [value_cell(values_of(readings, measure, g), values_of(reference, measure, g))
                 for g in GAMES]  # fmt: skip
        answer = verdict(line, found, measure) if line not in ("independent", RECORDED_LINE) else ""
        rows.append(f"| {line_label(line, readings, budget)} | {' | '.join(cells)} | {answer} |")
    return rows


def conflict_cell(pairs: dict[tuple[str, str], float]) -> tuple[str, str]:
    """(the lowest pair and its mean cosine, the mean over all pairs); ``-`` without any."""
    if not pairs:
        return "-", "-"
    (a, b), low = min(pairs.items(), key=lambda item: item[1])
    return f"{a}/{b} {low:+.3f}", f"{_mean(list(pairs.values())):+.3f}"


def run_table(found: dict[str, list[Reading]], results: dict[Path, Path]) -> list[str]:
    rows = ["| run | env steps per game | wall time (h) | parameters | most conflicting pair "
            "(mean cos) | all pairs (mean cos) | conflict map |",
            "|---|---:|---:|---:|---|---:|---|"]  # fmt: skip
    for line, readings in found.items():
        for r in readings:
            hours = "-" if r.wall_time_s is None else f"{r.wall_time_s / 3600:.2f}"
            params = "-" if r.parameters is None else f"{r.parameters:,}"
            low, everything = conflict_cell(r.pairs)
            figure = results.get(r.folder, r.folder) / "conflicts.png"
            link = f"`{_shown(figure)}`" if figure.is_file() else "-"
            state = "" if r.done else " (going)"
            rows.append(f"| {line} seed {r.seed} | {r.step:,}{state} | {hours} | {params} | "
                        f"{low} | {everything} | {link} |")  # fmt: skip
    return rows


def report(args: argparse.Namespace, found: dict[str, list[Reading]] | None = None) -> str:
    from multiq.envs.multi import RECENT_EPISODES

    found = lines(args) if found is None else found
    config, budget = paper_config(), args.steps_per_game
    lines_out = [
        f"# Interference on MinAtar: {args.stage} at {budget:,} env steps per game",
        "",
        machine(),
        f"- config: `configs/minatar-paper.yaml` (the paper's settings), epsilon 1 -> "
        f"{config.exploration_final_eps:g} over the first {PAPER_EXPLORATION_STEPS:,} env "
        f"steps at every budget; variants (`--set` overrides): "
        + "; ".join(f"`{v}` {' '.join(VARIANTS[v]) or '(as is)'}" for v in args.variants),
        f"- `independent`: the recorded run(s) in `{_shown(args.recorded_root)}` read up to "
        f"{budget:,}, and independent seeds trained here; `{RECORDED_LINE}`: the recorded "
        f"plain shared seeds there, read up to {budget:,} (the seed-to-seed spread of shared)",
        f"- training measure: the mean of the logged `rollout/<game>/ep_return` (each the mean "
        f"of the last {RECENT_EPISODES} training episodes) over the last "
        f"{TRAINING_WINDOW_STEPS:,} env steps per game up to the budget; evaluation: "
        f"`task/<game>/return` at the budget ({config.eval_episodes} episodes, epsilon "
        f"{config.eval_epsilon:g})",
        "- cells: the mean over seeds ([min, max] over several) and, in brackets, its "
        "difference to `independent` (line minus independent, return points); a line still "
        "going shows its numbers up to now",
        "- closes the gap: at least half the Asterix and SpaceInvaders gap between plain shared "
        "(mean of its runs) and independent closed (the percentage: the share closed); keeps "
        "the rest: at or above the lowest plain-shared run on Freeway, Breakout and Seaquest",
    ]
    for measure, title in MEASURES.items():
        lines_out += ["", f"## {title}", "", *measure_table(found, measure, budget)]
    results = {run_dir(args, v, s): result_dir(args, v, s) for v, s in runs(args)}
    lines_out += ["", "## runs", "", *run_table(found, results)]
    return "\n".join(lines_out) + "\n"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def conflict_maps(args: argparse.Namespace, found: dict[str, list[Reading]]) -> None:
    """Draws each trained run's conflict map to `<results copy>/conflicts.png` with
    `multiq.report.conflicts.plot_conflicts`, where that module is there."""
    try:
        from multiq.report.conflicts import plot_conflicts
    except ImportError as error:
        print(f"no conflict maps: multiq.report.conflicts does not load ({error})")
        return
    results = {run_dir(args, v, s): result_dir(args, v, s) for v, s in runs(args)}
    results |= {copy: copy for copy in list(results.values())}
    for reading in (r for readings in found.values() for r in readings):
        if reading.pairs and reading.folder in results:
            try:
                plot_conflicts(reading.folder, results[reading.folder] / "conflicts.png")
            except Exception as error:  # a figure must not cost the report
                print(f"no conflict map of {reading.folder}: {error}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.report_only:
        run_all(args)
    found = lines(args)
    conflict_maps(args, found)
    text = report(args, found)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "interference_minatar.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
