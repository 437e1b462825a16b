"""Routing heat map: each task's last logged weights over the modules of a `routed` network.

Reads the `task/<name>/routing_<k>` rows of metrics.csv (no torch), draws tasks x modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from multiq.report.curves import save_figure
from multiq.report.metrics import Series, read_metrics
from multiq.runio.layout import ROUTING_FILE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ROUTING_KEY = re.compile(r"task/(?P<task>.+)/routing_(?P<module>\d+)")


def routing_weights(metrics: Mapping[str, Series]) -> dict[str, list[float]]:
    """Task name -> last logged routing weight per module, tasks in order of appearance.

    Args:
        metrics: as returned by `read_metrics`.

    Returns:
        {task: [w_0, ..., w_{K-1}]}; empty when the run logged no routing weights.
    """
    last: dict[str, dict[int, float]] = {}
    for key, points in metrics.items():
        match = _ROUTING_KEY.fullmatch(key)
        if match and points:
            last.setdefault(match["task"], {})[int(match["module"])] = points[-1][1]
    return {task: [by_module[k] for k in sorted(by_module)] for task, by_module in last.items()}


def build_routing_figure(weights: Mapping[str, list[float]], title: str | None = None) -> Figure:
    """A task x module heat map of routing weights, each cell labelled with its value."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(weights)
    num_modules = max(len(row) for row in weights.values())
    figure = Figure(figsize=(1.2 + 0.9 * num_modules, 1.0 + 0.5 * len(tasks)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow([weights[t] for t in tasks], vmin=0.0, vmax=1.0, cmap="viridis")
    for row, task in enumerate(tasks):
        for module, value in enumerate(weights[task]):
            color = "black" if value > 0.5 else "white"
            axes.text(module, row, f"{value:.2f}", ha="center", va="center", color=color)
    axes.set_xticks(range(num_modules))
    axes.set_yticks(range(len(tasks)), tasks)
    axes.set_xlabel("module")
    figure.colorbar(image, ax=axes, label="routing weight")
    if title:
        axes.set_title(title)
    return figure


def plot_routing(run_dir: str | Path, out_path: str | Path | None = None) -> Path | None:
    """Writes the routing heat map of a run (default `RUN_DIR/routing.png`).

    Args:
        run_dir: the run folder (holds metrics.csv).
        out_path: where to write the PNG.

    Returns:
        The PNG's path, or None when metrics.csv holds no routing weights (no file written).

    Raises:
        RunFolderError: there is no metrics.csv in the folder.
    """
    weights = routing_weights(read_metrics(run_dir))
    if not weights:
        return None
    figure = build_routing_figure(weights, title="routing weights")
    path = Path(out_path) if out_path is not None else Path(run_dir) / ROUTING_FILE
    save_figure(figure, path)
    return path
