"""`multiq compare`: many runs' final returns, grouped, with rliable's aggregate statistics.

Runs are read from their folders (summary.json's last evaluation and config.yaml); a folder
that holds run folders (a sweep, a benchmark's run root) contributes each of them. Runs are
grouped by the values of config keys (`group_by`, default ``scheme,balancer``); every run must
hold the same tasks. Scores are the final eval returns, optionally normalised per task:
``random,REF`` maps the random policy's return to 0 and group REF's mean return to 1,
``random,best`` the best group's mean to 1, ``none`` keeps raw returns.

With rliable (Agarwal et al. 2021), over the runs x tasks score matrix of each group: IQM, mean,
median and optimality gap with stratified-bootstrap 95% intervals, the score-distribution
performance profile, and the probability of improvement of each group over each other. The
bootstrap uses its own `RandomState(seed)`, never the global one. Written to `out_dir`:
compare.md, compare.png and report.html (self-contained); with `conflicts`, also conflicts.png:
the runs' gradient-conflict maps side by side (`multiq.report.conflicts`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from multiq.report.conflicts import plot_conflict_comparison
from multiq.report.curves import save_figure
from multiq.report.html import Section, html_page
from multiq.report.metrics import ReportError, RunFolderError, read_summary
from multiq.runio.files import atomic_write_text, make_folder
from multiq.runio.layout import CONFIG_FILE, CONFLICTS_FILE, SUMMARY_FILE

METRICS = ("IQM", "mean", "median", "optimality gap")
DEFAULT_GROUP_BY = ("scheme", "balancer")
COMPARE_FILES = ("compare.md", "compare.png", "report.html")


@dataclass(frozen=True)
class RunResult:
    """One run's final returns.

    Attributes:
        path: the run folder.
        group: the label of its group (values of the group-by keys, joined by `/`).
        seed: its config's seed.
        returns: task -> final eval return (mean over the last evaluation's episodes).
        random: task -> the random policy's return.
    """

    path: Path
    group: str
    seed: int
    returns: dict[str, float]
    random: dict[str, float]


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders (holding summary.json): each path itself, or the run folders inside it.

    Raises:
        ReportError: a path that is neither, or no run at all.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / SUMMARY_FILE).is_file():
            found.append(path)
            continue
        inside = sorted(p.parent for p in path.glob(f"*/{SUMMARY_FILE}")) if path.is_dir() else []
        if not inside:
            raise ReportError(
                f"{path} is neither a finished run folder (with {SUMMARY_FILE}) nor a folder of "
                "finished runs; give run folders or a sweep folder"
            )
        found += inside
    return found


def load_run(path: Path, group_by: Sequence[str]) -> RunResult:
    """A run's final returns and its group.

    Raises:
        ReportError: no config.yaml, a group-by key it lacks, or a summary without tasks.
    """
    config = _read_config(path)
    missing = [key for key in group_by if key not in config]
    if missing:
        raise ReportError(f"{path}/{CONFIG_FILE} has no key {missing[0]!r} to group by")
    summary = read_summary(path)
    tasks = summary.get("tasks") or {}
    if not tasks:
        raise ReportError(f"{path}/{SUMMARY_FILE} holds no task results")
    return RunResult(
        path=path,
        group="/".join(str(config[key]) for key in group_by),
        seed=int(config.get("seed", 0)),
        returns={n: float(t["return_mean"]) for n, t in tasks.items()},
        random={n: float(t.get("random_return_mean", math.nan)) for n, t in tasks.items()},
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load((path / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RunFolderError(f"cannot read {path / CONFIG_FILE}: {error}") from error
    if not isinstance(config, dict):
        raise ReportError(f"{path / CONFIG_FILE} is not a mapping of config keys")
    return config


def check_tasks(runs: Sequence[RunResult]) -> list[str]:
    """The task names every run holds (in the first run's order).

    Raises:
        ReportError: two runs with different task sets (both named, with the difference).
    """
    first = runs[0]
    for run in runs[1:]:
        if set(run.returns) != set(first.returns):
            only_a = sorted(set(first.returns) - set(run.returns))
            only_b = sorted(set(run.returns) - set(first.returns))
            raise ReportError(
                f"runs hold different tasks: {first.path} has {only_a or 'no others'} that "
                f"{run.path} lacks, and {run.path} has {only_b or 'no others'}; compare runs of "
                "one task set"
            )
    return list(first.returns)


def score_matrices(
    runs: Sequence[RunResult], tasks: Sequence[str], normalise: str = "none"
) -> dict[str, np.ndarray]:
    """Group -> [runs, tasks] scores, normalised as `normalise` says (module docstring).

    Raises:
        ReportError: an unknown normalisation or reference group, or a reference equal to
            the random policy on some task.
    """
    raw: dict[str, list[list[float]]] = {}
    for run in runs:
        raw.setdefault(run.group, []).append([run.returns[t] for t in tasks])
    scores = {group: np.array(rows, dtype=np.float64) for group, rows in raw.items()}
    if normalise == "none":
        return scores
    kind, _, reference = normalise.partition(",")
    if kind != "random" or not reference:
        raise ReportError(
            f"--normalise must be none, random,best or random,<group>; got {normalise!r}"
        )
    random = np.array([np.nanmean([r.random[t] for r in runs]) for t in tasks])
    top = _reference(scores, reference)
    span = top - random
    if not np.all(np.isfinite(span)) or np.any(np.abs(span) < 1e-12):
        bad = [
            t for t, s in zip(tasks, span, strict=True) if not math.isfinite(s) or abs(s) < 1e-12
        ]
        raise ReportError(f"cannot normalise {bad}: the reference equals the random policy there")
    return {group: (values - random) / span for group, values in scores.items()}


def _reference(scores: Mapping[str, np.ndarray], reference: str) -> np.ndarray:
    means = {group: values.mean(axis=0) for group, values in scores.items()}
    if reference == "best":
        return np.max(np.stack(list(means.values())), axis=0)
    if reference not in means:
        raise ReportError(f"no group {reference!r} to normalise by; groups: {sorted(means)}")
    return means[reference]


def aggregate_intervals(
    scores: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Group -> metric -> (point, low, high): rliable's IQM, mean, median and optimality gap
    with stratified-bootstrap 95% percentile intervals."""
    from rliable import library, metrics

    funcs = {
        "IQM": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality gap": metrics.aggregate_optimality_gap,
    }
    result: dict[str, dict[str, tuple[float, float, float]]] = {g: {} for g in scores}
    for name, func in funcs.items():
        with _quiet_arch():
            points, intervals = library.get_interval_estimates(
                dict(scores), lambda x, f=func: np.array([f(x)]), reps=reps,
                random_state=np.random.RandomState(seed),
            )  # fmt: skip
        for group in scores:
            low, high = intervals[group][:, 0]
            result[group][name] = (float(points[group][0]), float(low), float(high))
    return result


def improvement_probabilities(
    scores: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(X, Y) -> P(X > Y) with its 95% interval, for every ordered pair of groups."""
    from rliable import library, metrics

    pairs = {f"{x}\x00{y}": [scores[x], scores[y]] for x in scores for y in scores if x != y}
    if not pairs:
        return {}
    with _quiet_arch():
        points, intervals = library.get_interval_estimates(
            pairs, metrics.probability_of_improvement, reps=reps,
            random_state=np.random.RandomState(seed),
        )  # fmt: skip
    result = {}
    for key in pairs:
        x, y = key.split("\x00")
        low, high = map(float, intervals[key].ravel())
        result[x, y] = (float(points[key]), low, high)
    return result


@contextlib.contextmanager
def _quiet_arch():
    """rliable passes `random_state` to arch, which warns that it is deprecated: not ours."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arch\.")
        yield


def task_table(runs: Sequence[RunResult], tasks: Sequence[str]) -> str:
    """Markdown: per group and task, the mean final return over runs and the run count."""
    groups = sorted({r.group for r in runs})
    lines = ["| group | runs | " + " | ".join(tasks) + " |", "|---|---:|" + "---:|" * len(tasks)]
    for group in groups:
        mine = [r for r in runs if r.group == group]
        cells = [f"{np.mean([r.returns[t] for r in mine]):.2f}" for t in tasks]
        lines.append(f"| {group} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregate_table(aggregates: Mapping[str, Mapping[str, tuple[float, float, float]]]) -> str:
    """Markdown: one row per group, one column per metric, `point [low, high]`."""
    lines = ["| group | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for group, by_metric in aggregates.items():
        cells = [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in (by_metric[m] for m in METRICS)]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def improvement_table(probabilities: Mapping[tuple[str, str], tuple[float, float, float]]) -> str:
    lines = ["| X | Y | P(X > Y) |", "|---|---|---:|"]
    for (x, y), (p, lo, hi) in probabilities.items():
        lines.append(f"| {x} | {y} | {p:.2f} [{lo:.2f}, {hi:.2f}] |")
    return "\n".join(lines)


def plot_compare(
    aggregates: Mapping[str, Mapping[str, tuple[float, float, float]]],
    scores: Mapping[str, np.ndarray],
    path: Path,
) -> Path:
    """The four aggregate metrics with intervals, and the score-distribution profiles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 3.2 + 0.3 * len(aggregates)), layout="constrained")
    FigureCanvasAgg(figure)
    groups = list(aggregates)
    for index, metric in enumerate(METRICS):
        axes = figure.add_subplot(1, len(METRICS) + 1, index + 1)
        for row, group in enumerate(groups):
            point, low, high = aggregates[group][metric]
            axes.plot([low, high], [row, row], linewidth=6, alpha=0.5)
            axes.plot([point], [row], "k|", markersize=14)
        axes.set_yticks(range(len(groups)), groups if index == 0 else [""] * len(groups))
        axes.set_title(metric)
        axes.grid(axis="x", alpha=0.3)
    axes = figure.add_subplot(1, len(METRICS) + 1, len(METRICS) + 1)
    every = np.concatenate([v.ravel() for v in scores.values()])
    taus = np.linspace(np.min(every), np.max(every), 81)
    for group, values in scores.items():
        axes.plot(taus, [(values > tau).mean() for tau in taus], label=group)
    axes.set_title("performance profile")
    axes.set_xlabel("score tau")
    axes.set_ylabel("fraction of runs x tasks > tau")
    axes.legend(fontsize="small")
    save_figure(figure, path)
    return path


def compare(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
    normalise: str = "none",
    reps: int = 2000,
    conflicts: bool = False,
) -> Path:
    """Writes compare.md, compare.png and report.html to `out_dir`; returns compare.md.

    With `conflicts`, also writes conflicts.png (one gradient-conflict map per run, side by
    side) and a section in compare.md with each run's pair in most conflict, or why it has no
    map; when no run has one, no conflicts.png (an old one is removed).

    Raises:
        ReportError: no runs, mixed task sets, a bad normalisation or group-by key.
    """
    runs = [load_run(path, group_by) for path in find_runs(paths)]
    tasks = check_tasks(runs)
    scores = score_matrices(runs, tasks, normalise)
    aggregates = aggregate_intervals(scores, reps)
    probabilities = improvement_probabilities(scores, reps)
    out = Path(out_dir)
    make_folder(out)
    image = plot_compare(aggregates, scores, out / "compare.png")
    sections = [
        ("Final returns (mean over runs)", task_table(runs, tasks)),
        (
            f"Aggregates over runs x tasks (scores: {normalise}; 95% stratified bootstrap, "
            f"{reps} resamples)",
            aggregate_table(aggregates),
        ),  # fmt: skip
        ("Probability of improvement", improvement_table(probabilities)),
    ]
    text = [f"# Comparison of {len(runs)} runs in {len(scores)} groups", ""]
    text += [f"Grouped by {', '.join(group_by)}; tasks: {', '.join(tasks)}.", ""]
    for title, table in sections:
        text += [f"## {title}", "", table, ""]
    text += ["![aggregates and performance profile](compare.png)", ""]
    plots: list[Section] = [("Plots", image)]
    if conflicts:
        conflict_image, lines = _conflict_maps([run.path for run in runs], out)
        text += _conflict_markdown(conflict_image, lines)
        sections.append(("Gradient conflicts", "pre:" + "\n".join(lines)))
        if conflict_image is not None:
            plots.append(("Gradient-conflict maps", conflict_image))
    markdown = out / "compare.md"
    atomic_write_text(markdown, "\n".join(text))
    page = html_page(text[0].lstrip("# "), [*sections, *plots])
    atomic_write_text(out / "report.html", page)
    return markdown


def _conflict_maps(run_dirs: Sequence[Path], out: Path) -> tuple[Path | None, list[str]]:
    """Writes `out/conflicts.png` (removes an old one when no run has a map); returns it with
    one line per run: its pair in most conflict, or why it has no map."""
    image, lines = plot_conflict_comparison(run_dirs, out / CONFLICTS_FILE)
    if image is None:
        (out / CONFLICTS_FILE).unlink(missing_ok=True)
    return image, [f"{label}: {line}" for label, line in lines.items()]


def _conflict_markdown(image: Path | None, lines: Sequence[str]) -> list[str]:
    text = ["## Gradient conflicts (mean cosine of task gradients; < 0 is conflict)", ""]
    text += [f"- {line}" for line in lines]
    if image is None:
        return [*text, "", f"No run logged a gradient-conflict map, so no {CONFLICTS_FILE}.", ""]
    return [*text, "", f"![gradient-conflict maps]({CONFLICTS_FILE})", ""]
