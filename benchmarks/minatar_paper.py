"""Does one multi-task agent reach the MinAtar paper's single-task DQN scores at 1M frames?

`configs/minatar-paper.yaml` (the paper's env settings: all 6 actions, sticky actions 0.1,
difficulty ramping; its DQN settings) trains a `shared` agent on the five games for
`--steps-per-game` env steps per game, for each of `--seeds`, and multiq `independent` (five
separate nets, `--set scheme=independent`) for each of `--independent-seeds`. Each run is a
`multiq train` child (benchmarks/paper_runs.py) with one torch thread, `--workers` at a time,
in `--run-root/<scheme>-seed<S>` (default `runs/minatar_paper/`, which git ignores): a run folder
there holds the run's state, its checkpoint (weights, target, optimiser: 2.3 MB shared, 10.7 MB
independent) with the replay (about 3.5 MB for 5 x 100k transitions). A 1M-step `shared` run
takes about 3.9 hours on one core, with two runs side by side.

When a child ends (finished or stopped), what the report reads is copied to
`--results-root/<scheme>-seed<S>` (default `benchmarks/results/minatar_paper_runs/`, in the
repository): config.yaml, metrics.csv, run.json, curves.png and, once finished, summary.json and
model.pt; each child's log sits beside them. The report reads only that copy. A run finished
there is kept. A stopped run resumes exactly (`multiq train --resume`) from its folder under
`--run-root` on the machine that holds it: run the benchmark again there. Without that folder
(a fresh checkout, a new machine) a run that did not finish is redone from the start, and its
copy in the results is replaced as the new run goes. `--hours H` stops the children after H hours
with SIGINT (each saves a checkpoint and exits); once a run is stopped by a signal (the deadline,
or Ctrl-C), no further run starts.

The report (`minatar_paper.md` in `--out-dir`) gives per game the paper's DQN return at 1M
frames (read from its curves, DESIGN.md) and two measures of each scheme at the end, means over
finished seeds with 95% bootstrap intervals: `eval`, the final evaluation return (epsilon 0.01),
and `training`, the paper's own measure (its curves are moving averages of training-episode
returns, epsilon 0.1): the mean of the logged running training return over the last 50k env
steps per game. Per measure, whether the multi-task agent reaches the paper's figure: yes when
its mean does, within the interval when only the interval's upper end does, no otherwise. Runs
still going show both measures up to now. `minatar_paper.png` beside it draws every run's two
curves against env steps per game, with the paper's figure dashed.

    python benchmarks/minatar_paper.py [--seeds 0 1 2] [--independent-seeds 0]
        [--steps-per-game 1000000] [--workers 2] [--async-updates auto] [--hours H]
        [--report-only]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from paper_runs import (
    GAMES,
    TRAINING_WINDOW_STEPS,
    Job,
    cell,
    child_command,
    finished,
    latest_returns,
    machine,
    paper_config,
    run_jobs,
    run_points,
    training_returns,
)

PAPER_1M = {"Asterix": 6.0, "Breakout": 9.5, "Freeway": 48.0, "Seaquest": 1.0,
            "SpaceInvaders": 33.0}  # fmt: skip
SCHEMES = ("shared", "independent")
RUN_ROOT = Path(__file__).resolve().parents[1] / "runs" / "minatar_paper"
RESULTS_ROOT = Path(__file__).resolve().parent / "results" / "minatar_paper_runs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--independent-seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--steps-per-game", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--async-updates", choices=["auto", "true", "false"], default="auto",
        help="each run's async_updates (false when --workers fill the cores: two sequential "
        "runs do more env steps per second in all than one that acts in a child process)",
    )  # fmt: skip
    parser.add_argument(
        "--hours", type=float, default=None,
        help="stop the runs after this many hours with SIGINT (each saves a checkpoint); "
        "without it they go on until finished",
    )  # fmt: skip
    parser.add_argument("--run-root", type=Path, default=RUN_ROOT)
    parser.add_argument("--results-root", type=Path, default=RESULTS_ROOT)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--report-only", action="store_true")
    return parser.parse_args(argv)


def runs(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(scheme, seed) of every run, seed-major."""
    pairs = [("shared", s) for s in args.seeds] + [
        ("independent", s) for s in args.independent_seeds
    ]
    return sorted(pairs, key=lambda pair: (pair[1], SCHEMES.index(pair[0])))


def run_dir(args: argparse.Namespace, scheme: str, seed: int) -> Path:
    """The run's own folder (checkpoint, replay and all), under `--run-root`."""
    return args.run_root / f"{scheme}-seed{seed}"


def result_dir(args: argparse.Namespace, scheme: str, seed: int) -> Path:
    """The copy of what the report reads (`REPORT_FILES`), under `--results-root`."""
    return args.results_root / f"{scheme}-seed{seed}"


def command(args: argparse.Namespace, scheme: str, seed: int) -> list[str] | None:
    """The child that runs (or resumes) one run; None when it is finished."""
    if finished(result_dir(args, scheme, seed), args.steps_per_game):
        return None
    return child_command(run_dir(args, scheme, seed), seed, args.steps_per_game,
                         args.async_updates, [f"scheme={scheme}"])  # fmt: skip


def run_all(args: argparse.Namespace) -> None:
    todo = [(p, c) for p in runs(args) if (c := command(args, *p)) is not None]
    print(f"{len(runs(args)) - len(todo)} finished, {len(todo)} to run or resume", flush=True)
    jobs = [Job(f"{scheme} seed {seed}", argv, run_dir(args, scheme, seed),
                result_dir(args, scheme, seed)) for (scheme, seed), argv in todo]  # fmt: skip
    run_jobs(jobs, args.workers, args.hours)


def collect(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Scheme -> {"final": game -> [final eval returns of finished seeds],
    "training": game -> [their training-episode returns at the end, `training_returns`],
    "going": [(seed, step, game -> latest eval return, `training_returns` up to now or None)
    of unfinished runs]}."""
    table: dict[str, dict[str, Any]] = {
        s: {"final": {g: [] for g in GAMES}, "training": {g: [] for g in GAMES}, "going": []}
        for s in SCHEMES
    }
    for scheme, seed in runs(args):
        folder = result_dir(args, scheme, seed)
        if finished(folder, args.steps_per_game):
            tasks = json.loads((folder / "summary.json").read_text())["tasks"]
            training = training_returns(folder, TRAINING_WINDOW_STEPS)
            for game in GAMES:
                table[scheme]["final"][game].append(float(tasks[game]["return_mean"]))
                if training is not None:
                    table[scheme]["training"][game].append(training[1][game])
        elif (latest := latest_returns(folder)) is not None:
            training = training_returns(folder, TRAINING_WINDOW_STEPS)
            table[scheme]["going"].append((seed, *latest, training))
    return table


def verdict(mean: float, high: float, paper: float) -> str:
    """Whether a mean (and its interval's upper end) reaches the paper's figure."""
    if mean != mean:  # NaN: no finished seed
        return "not yet measured"
    if mean >= paper:
        return "yes"
    return "within the interval" if high >= paper else "no"


def report(args: argparse.Namespace) -> str:
    from multiq.envs.multi import RECENT_EPISODES

    table, config = collect(args), paper_config()
    lines = [
        "# One multi-task agent against the MinAtar paper's DQN at 1M frames",
        "",
        machine(),
        f"- config: `configs/minatar-paper.yaml` (all 6 actions, sticky actions 0.1, difficulty "
        f"ramping; replay 100k, batch 32, an update per env step, epsilon 1 -> 0.1 over 100k, "
        f"Adam 2.5e-4 where the paper has RMSProp); {args.steps_per_game:,} env steps per game; "
        f"seeds: shared {args.seeds}, independent {args.independent_seeds}",
        "- paper: Young & Tian 2019, DQN, return at 1M frames read from its curves, which are "
        "moving averages of training-episode returns (epsilon 0.1, sticky actions)",
        f"- multiq, two measures of each finished run: `eval`, the final evaluation "
        f"({config.eval_episodes} episodes, epsilon {config.eval_epsilon:g}); `training`, the "
        f"paper's measure: the mean of the logged training-episode returns (each the mean of "
        f"the last {RECENT_EPISODES} episodes, epsilon {config.exploration_final_eps:g}) over "
        f"the last {TRAINING_WINDOW_STEPS:,} env steps per game. Means over seeds with 95% "
        f"bootstrap intervals; `shared reaches the paper` reads each measure's mean, then its "
        f"interval",
        "",
        "| game | paper DQN (1M) | shared: eval | shared: training | independent: eval "
        "| independent: training | shared reaches the paper (eval / training) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for game in GAMES:
        cells = {(s, m): cell(table[s][m][game]) for s in SCHEMES for m in ("final", "training")}
        verdicts = " / ".join(
            verdict(cells["shared", m][1], cells["shared", m][2], PAPER_1M[game])
            for m in ("final", "training")
        )
        texts = " | ".join(cells[s, m][0] for s in SCHEMES for m in ("final", "training"))
        lines.append(f"| {game} | {PAPER_1M[game]:g} | {texts} | {verdicts} |")
    going = [(s, *run) for s in SCHEMES for run in table[s]["going"]]
    if going:
        lines += ["", "Runs still going (their latest evaluation, and the training measure "
                  "up to now):", "", "| run | step | measure | " + " | ".join(GAMES) + " |",
                  "|---|---:|---|" + "---:|" * len(GAMES)]  # fmt: skip
        for scheme, seed, step, returns, training in going:
            for measure, latest in (("eval", (step, returns)), ("training", training)):
                if latest is not None:
                    row = " | ".join(f"{latest[1][g]:.2f}" for g in GAMES)
                    lines.append(f"| {scheme} seed {seed} | {latest[0]:,} | {measure} | {row} |")
    return "\n".join(lines) + "\n"


def curves(args: argparse.Namespace) -> dict[tuple[str, int], dict[str, dict[str, list]]]:
    """(scheme, seed) -> measure (``eval``, ``training``) -> game -> [(env steps per game,
    return), ...] of every run with an evaluation, finished or not."""
    found = {}
    for scheme, seed in runs(args):
        points = run_points(result_dir(args, scheme, seed))
        if points is not None and any(points["eval"].values()):
            found[(scheme, seed)] = points
    return found


def plot(args: argparse.Namespace, path: Path) -> bool:
    """Writes the learning curves to `path`: one panel per game, per run its eval return (solid)
    and its training episodes' running return (dotted) against env steps per game, the paper's
    DQN at 1M frames dashed. False when no run has an evaluation yet."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    from multiq.envs.multi import RECENT_EPISODES
    from multiq.report.curves import save_figure

    found = curves(args)
    if not found:
        return False
    config = paper_config()
    figure = Figure(figsize=(4 * len(GAMES), 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    colours = {"shared": ("tab:blue", "tab:cyan", "tab:purple"),
               "independent": ("tab:orange", "tab:red", "tab:brown")}  # fmt: skip
    styles = {"eval": {"linewidth": 1.4}, "training": {"linewidth": 1.0, "linestyle": ":"}}
    for index, game in enumerate(GAMES):
        axes = figure.add_subplot(1, len(GAMES), index + 1)
        for (scheme, seed), measures in found.items():
            colour = colours[scheme][seed % len(colours[scheme])]
            for measure, points in measures.items():
                if points[game]:
                    label = f"multiq {scheme} seed {seed}" if measure == "eval" else None
                    axes.plot(*zip(*points[game], strict=True), color=colour, label=label,
                              **styles[measure])  # fmt: skip
        axes.axhline(PAPER_1M[game], linestyle="--", color="gray", label="paper DQN at 1M")
        axes.set_title(game)
        axes.set_xlabel("env steps per game")
        axes.set_xlim(0, args.steps_per_game)
        axes.xaxis.set_major_formatter(EngFormatter(sep=""))
        axes.grid(alpha=0.3)
    figure.axes[0].set_ylabel("return")
    handles, labels = figure.axes[0].get_legend_handles_labels()
    keys = {
        f"eval ({config.eval_episodes} episodes, epsilon {config.eval_epsilon:g})": "eval",
        f"training (last {RECENT_EPISODES} episodes, epsilon {config.exploration_final_eps:g})": (
            "training"
        ),
    }
    handles += [Line2D([], [], color="black", **styles[m]) for m in keys.values()]
    labels += list(keys)
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels),
                  fontsize="small")  # fmt: skip
    save_figure(figure, path)
    return True


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.report_only:
        run_all(args)
    text = report(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "minatar_paper.md").write_text(text)
    print(text)
    if plot(args, args.out_dir / "minatar_paper.png"):
        print(f"figure: {args.out_dir / 'minatar_paper.png'}")


if __name__ == "__main__":
    main()
