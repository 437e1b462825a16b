"""Meta-learning reports (no torch): a meta run's curves, and adapt-k tables and plots.

`plot_meta` reads a meta run's meta.csv; `adapt_table` / `plot_adapt` read adapt.json, written by
`multiq adapt`: one row per (initialisation, task, seed, k) with the evaluation return after k
env steps of training from that initialisation. Means and 95% bootstrap intervals are over the
(task, seed) pairs.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiq.report.curves import save_figure
from multiq.report.metrics import ReportError
from multiq.report.stats import bootstrap_ci
from multiq.runio.files import atomic_write_text
from multiq.runio.layout import (
    ADAPT_FILE,
    ADAPT_PLOT_FILE,
    ADAPT_TABLE_FILE,
    META_FILE,
    META_KEYS,
    META_PLOT_FILE,
)

ADAPT_ROW_KEYS = ("init", "task", "seed", "k", "return")


def read_meta_csv(run_dir: str | Path) -> list[dict[str, float]]:
    """meta.csv's rows as dicts of floats.

    Raises:
        ReportError: no meta.csv, or its header is not `META_KEYS`.
    """
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        raise ReportError(f"{run_dir} has no {META_FILE}: is it a `multiq meta` run folder?")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != META_KEYS:
            raise ReportError(f"{path}: header {reader.fieldnames}, expected {list(META_KEYS)}")
        return [{k: float(v) for k, v in row.items()} for row in reader]


def plot_meta(run_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Plots a meta run's returns against meta-training env steps: the inner loops' training
    episodes, and theta's evaluation before (pre) and after (post) adaptation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_meta_csv(run_dir)
    figure = Figure(figsize=(6.0, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = [r["env_steps"] for r in rows]
    for key, label, style in (
        ("inner_return", "inner loops (training episodes)", "-"),
        ("pre_return", "theta, before adaptation", "o--"),
        ("post_return", "after the inner loop", "s-"),
    ):
        points = [(s, r[key]) for s, r in zip(steps, rows, strict=True) if not math.isnan(r[key])]
        if points:
            axes.plot(*zip(*points, strict=True), style, label=label, markersize=3)
    axes.set_xlabel("meta-training env steps")
    axes.set_ylabel("return (mean over the iteration's tasks)")
    axes.legend(fontsize="small")
    path = Path(out_path) if out_path is not None else Path(run_dir) / META_PLOT_FILE
    save_figure(figure, path)
    return path


# --- adapt-k ----------------------------------------------------------------------------------


def read_adapt(folder: str | Path) -> dict[str, Any]:
    """adapt.json of a `multiq adapt` folder (or the file itself).

    Raises:
        ReportError: missing, not JSON, or rows without the `ADAPT_ROW_KEYS`.
    """
    path = Path(folder)
    path = path / ADAPT_FILE if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read {path}: {error}") from error
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or any(set(ADAPT_ROW_KEYS) - set(r) for r in rows):
        raise ReportError(f"{path}: `rows` must be a list of {list(ADAPT_ROW_KEYS)} records")
    return data


def adapt_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, tuple]]:
    """init -> k -> (mean, low, high, n): return after k steps over (task, seed) pairs."""
    grouped: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        grouped.setdefault(row["init"], {}).setdefault(int(row["k"]), []).append(row["return"])
    return {
        init: {k: (*bootstrap_ci(values), len(values)) for k, values in sorted(by_k.items())}
        for init, by_k in grouped.items()
    }


def adapt_table(data: Mapping[str, Any]) -> str:
    """A Markdown table: one row per initialisation, one column per k (mean [95% CI])."""
    summary = adapt_summary(data["rows"])
    ks = sorted({k for by_k in summary.values() for k in by_k})
    lines = [
        "| init | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---|" + "---:|" * len(ks),
    ]
    for init, by_k in summary.items():
        cells = [_cell(by_k.get(k)) for k in ks]
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    pairs = {(r["task"], r["seed"]) for r in data["rows"]}
    lines.append("")
    lines.append(
        f"Evaluation return after k env steps of DQN from each initialisation; mean and 95% "
        f"bootstrap interval over {len(pairs)} (task, seed) pairs."
    )
    return "\n".join(lines)


def _cell(stats: tuple | None) -> str:
    if stats is None:
        return "–"
    mean, low, high, _ = stats
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def plot_adapt(data: Mapping[str, Any], out_path: str | Path) -> Path:
    """Return against k per initialisation, with the 95% intervals as bands."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for init, by_k in adapt_summary(data["rows"]).items():
        ks = list(by_k)
        means, lows, highs = ([by_k[k][i] for k in ks] for i in range(3))
        axes.plot(ks, means, "o-", label=init)
        axes.fill_between(ks, lows, highs, alpha=0.2)
    axes.set_xlabel("adaptation env steps k")
    axes.set_ylabel("evaluation return")
    axes.set_title(str(data.get("title", "adapt-k on held-out tasks")), fontsize="medium")
    axes.legend(fontsize="small")
    save_figure(figure, Path(out_path))
    return Path(out_path)


def write_adapt_report(folder: str | Path) -> tuple[Path, Path]:
    """adapt.md and adapt.png from a folder's adapt.json; returns their paths."""
    folder = Path(folder)
    data = read_adapt(folder)
    table = folder / ADAPT_TABLE_FILE
    atomic_write_text(table, adapt_table(data) + "\n")
    return table, plot_adapt(data, folder / ADAPT_PLOT_FILE)
