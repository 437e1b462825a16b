"""Learning curves: eval return per task against env steps per task, saved as a PNG.

Uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global backend).
matplotlib is imported when a figure is built, so importing `multiq.report` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiq.fileio import atomic_write
from multiq.report.metrics import (
    ReportError,
    RunFolderError,
    Series,
    read_metrics,
    read_summary,
    task_names,
)
from multiq.rundir import CURVES_FILE

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
    figure = build_figure(metrics, summary, title=Path(run_dir).resolve().name)
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
    for index, name in enumerate(names):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        _plot_task(axes, name, metrics, _random_return(name, metrics, summary))
    if title:
        figure.suptitle(title)
    return figure


def _plot_task(
    axes: Axes, name: str, metrics: Mapping[str, Series], random_return: float | None
) -> None:
    """Draws one task: mean eval return, a ±std band (or error bar) and the random baseline."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    steps, means = _unzip(metrics[f"task/{name}/return"])
    stds = _aligned(steps, metrics.get(f"task/{name}/return_std"))
    if len(steps) == 1:
        axes.errorbar(steps, means, yerr=stds, fmt="o", capsize=4, label="eval return")
    else:
        axes.plot(steps, means, label="eval return")
    if stds is not None and len(steps) > 1:
        low = [m - s for m, s in zip(means, stds, strict=True)]
        high = [m + s for m, s in zip(means, stds, strict=True)]
        axes.fill_between(steps, low, high, alpha=0.25, label="± std")
    if random_return is not None:
        axes.axhline(random_return, linestyle="--", color="gray", label="random policy")
    axes.set_title(name)
    axes.set_xlabel("env steps per task")
    axes.set_ylabel("eval return")
    axes.set_xlim(left=0)
    axes.xaxis.set_major_locator(MaxNLocator(nbins=5))
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")


def _random_return(
    name: str, metrics: Mapping[str, Series], summary: Mapping[str, Any] | None
) -> float | None:
    """The task's random-policy return: last logged value, else summary.json's, else None."""
    logged = metrics.get(f"task/{name}/random_return")
    if logged:
        value = logged[-1][1]
    else:
        task = (summary or {}).get("tasks", {}).get(name, {})
        value = task.get("random_return_mean")
    return float(value) if value is not None and math.isfinite(value) else None


def _unzip(points: Series) -> tuple[list[int], list[float]]:
    return [step for step, _ in points], [value for _, value in points]


def _aligned(steps: list[int], points: Series | None) -> list[float] | None:
    """The values of `points` at `steps` (nan where missing), or None when there are none."""
    if not points:
        return None
    by_step = dict(points)
    return [by_step.get(step, math.nan) for step in steps]
