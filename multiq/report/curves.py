"""Learning curves: eval return per task against env steps per task, saved as a PNG.

Uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global backend).
matplotlib is imported when a figure is built, so importing `multiq.report` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from multiq.report.metrics import (
    ReportError,
    RunFolderError,
    Series,
    random_policy_return,
    read_metrics,
    read_summary,
    task_names,
)
from multiq.runio.files import atomic_write
from multiq.runio.layout import CONFIG_FILE, CURVES_FILE, return_key, training_return_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_COLUMNS = 3


def plot_curves(run_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Plots the eval return of each task of a run and saves the figure as a PNG.

    summary.json is optional here: it only supplies the random-policy return of tasks whose
    metrics.csv has no `task/<name>/random_return` row.

    Args:
        run_dir: the run folder (holds metrics.csv, maybe summary.json).
        out_path: where to write the PNG; default `RUN_DIR/curves.png`.

    Returns:
        The path of the PNG.

    Raises:
        RunFolderError: there is no metrics.csv in the folder.
        ReportError: metrics.csv holds no eval return yet.
    """
    metrics = read_metrics(run_dir)
    try:
        summary: dict[str, Any] | None = read_summary(run_dir)
    except RunFolderError:
        summary = None
    figure = build_figure(metrics, summary, title=run_title(run_dir))
    path = Path(out_path) if out_path is not None else Path(run_dir) / CURVES_FILE
    save_figure(figure, path)
    return path


def save_figure(figure: Figure, path: Path, dpi: int = 120) -> None:
    """Writes `figure` to `path` atomically (never through a symbolic link at `path`).

    The format follows the file's suffix (`.png`, `.svg`, `.pdf`, ...); PNG without one.

    Raises:
        RunDirError: the folder is full or cannot be written.
    """
    image_format = path.suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda handle: figure.savefig(handle, format=image_format, dpi=dpi))


def build_figure(
    metrics: Mapping[str, Series],
    summary: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Figure:
    """Builds the learning-curve figure: one axes per task, in metrics order.

    Args:
        metrics: as returned by `read_metrics`.
        summary: as returned by `read_summary`, or None.
        title: the figure's title (e.g. the run folder's name), or None.

    Returns:
        A matplotlib Figure on an Agg canvas, with exactly one axes per task.

    Raises:
        ReportError: no `task/<name>/return` series in `metrics`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = task_names(dict(metrics))
    if not names:
        raise ReportError("metrics.csv has no task/<name>/return rows: no evaluation has run yet")
    ncols = min(len(names), MAX_COLUMNS)
    nrows = math.ceil(len(names) / ncols)
    figure = Figure(figsize=(4.5 * ncols, 3.4 * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    episodes = _eval_episodes(summary)
    for index, name in enumerate(names):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        _plot_task(axes, name, metrics, random_policy_return(name, metrics, summary), episodes)
    handles, labels = _legend_entries(figure)
    if len(names) < nrows * ncols:  # the first free panel holds the legend
        spare = figure.add_subplot(nrows, ncols, len(names) + 1)
        spare.axis("off")
        spare.legend(handles, labels, loc="center", fontsize="small")
    else:
        figure.legend(handles, labels, loc="outside lower center", ncols=len(labels),
                      fontsize="small")  # fmt: skip
    if title:
        figure.suptitle(title)
    return figure


def _legend_entries(figure: Figure) -> tuple[list, list[str]]:
    """One legend entry per label over all axes (the panels share their styles)."""
    entries: dict[str, Any] = {}
    for axes in figure.axes:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def run_title(run_dir: str | Path) -> str:
    """What ran: the folder's name, then the scheme, balancer, seed and budget from its
    config.yaml (the name alone when there is none)."""
    name = Path(run_dir).resolve().name
    path = Path(run_dir) / CONFIG_FILE
    try:
        config = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        config = None
    if not isinstance(config, dict):
        return name
    parts = [f"{config.get('scheme', '?')}"]
    if config.get("balancer", "fixed") != "fixed":
        parts.append(str(config["balancer"]))
    if config.get("popart"):
        parts.append("popart")
    parts.append(f"seed {config.get('seed', '?')}")
    steps = config.get("total_steps_per_task")
    if isinstance(steps, int):
        parts.append(f"{steps:,} env steps per task")
    return f"{name}: {', '.join(parts)}"


def _plot_task(
    axes: Axes,
    name: str,
    metrics: Mapping[str, Series],
    random_return: float | None,
    episodes: int | None,
) -> None:
    """Draws one task: the training episodes' running return, the mean eval return with the
    range of its episodes (or, for runs that did not log it, a 95% interval of the mean), and
    the random baseline. No title per legend: the figure has one legend."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    training = metrics.get(training_return_key(name))
    if training:
        finite = [(step, v) for step, v in training if math.isfinite(v)]
        if finite:
            axes.plot(*_unzip(finite), color="tab:blue", alpha=0.35, linewidth=1,
                      label="training episodes (mean of the last 20)")  # fmt: skip
    steps, means = _unzip(metrics[return_key(name)])
    low, high, band = _band(name, steps, means, metrics, episodes)
    style = "o" if len(steps) == 1 else "o-"
    axes.plot(steps, means, style, color="tab:orange", markersize=3, label="eval return (mean)")
    if low is not None and high is not None:
        if len(steps) == 1:
            yerr = [[means[0] - low[0]], [high[0] - means[0]]]
            axes.errorbar(steps, means, yerr=yerr, fmt="none", ecolor="tab:orange", capsize=4)
        else:
            axes.fill_between(steps, low, high, color="tab:orange", alpha=0.2, label=band)
    if random_return is not None:
        axes.axhline(random_return, linestyle="--", color="gray", label="random policy")
    axes.set_title(name)
    axes.set_xlabel("env steps per task")
    axes.set_ylabel("return")
    axes.set_xlim(left=0)
    axes.xaxis.set_major_locator(MaxNLocator(nbins=5))
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes.grid(alpha=0.3)


def _band(
    name: str,
    steps: list[int],
    means: list[float],
    metrics: Mapping[str, Series],
    episodes: int | None,
) -> tuple[list[float] | None, list[float] | None, str]:
    """(low, high, label) of the band around the eval return: the smallest and largest episode
    return where logged (never outside the data), else mean +- 1.96 std / sqrt(episodes)."""
    low = _aligned(steps, metrics.get(f"task/{name}/return_min"))
    high = _aligned(steps, metrics.get(f"task/{name}/return_max"))
    if low is not None and high is not None:
        return low, high, "eval episodes, min to max"
    stds = _aligned(steps, metrics.get(f"task/{name}/return_std"))
    if stds is None or not episodes:
        return None, None, ""
    half = [1.96 * s / math.sqrt(episodes) for s in stds]
    low = [m - h for m, h in zip(means, half, strict=True)]
    return low, [m + h for m, h in zip(means, half, strict=True)], "95% interval of the mean"


def _eval_episodes(summary: Mapping[str, Any] | None) -> int | None:
    """Episodes per evaluation, from summary.json's tasks (None when unknown)."""
    for task in ((summary or {}).get("tasks") or {}).values():
        episodes = task.get("episodes") if isinstance(task, Mapping) else None
        if isinstance(episodes, int) and episodes > 0:
            return episodes
    return None


def _unzip(points: Series) -> tuple[list[int], list[float]]:
    return [step for step, _ in points], [value for _, value in points]


def _aligned(steps: list[int], points: Series | None) -> list[float] | None:
    """The values of `points` at `steps` (nan where missing), or None when there are none."""
    if not points:
        return None
    by_step = dict(points)
    return [by_step.get(step, math.nan) for step in steps]
