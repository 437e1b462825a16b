"""Gradient-conflict map: how well the tasks' gradients on the shared weights agree over a run.

Reads two kinds of metrics.csv rows (no torch):
- `mtl/grad_cos/<a>/<b>`: the cosine of tasks a's and b's gradients on the shared parameters,
  one key per unordered pair (a before b in the agent's task order), each value the mean of the
  measurements since the previous log row;
- `task/<name>/grad_share`: ||g_name|| / sum_k ||g_k||, the task's share of the gradient norms.

A negative cosine is conflict: to first order, a step along one task's gradient raises the
other task's loss. Task names may hold `-`, `:`, `.` or even `/`, so a pair key is split against
the task names the run logged, not at its first `/`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from multiq.report.curves import save_figure
from multiq.report.metrics import ReportError, RunFolderError, Series, read_metrics
from multiq.report.table import aligned_table
from multiq.runio.layout import CONFLICTS_FILE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COS_PREFIX = "mtl/grad_cos/"
SHARE_SUFFIX = "/grad_share"
TASK_PREFIXES = ("task/", "rollout/")
TOP_PAIRS = 5
NO_MAP = (
    "logged no gradient-conflict map (no mtl/grad_cos rows in metrics.csv): it shares no "
    "weights (scheme independent), ran with interference_freq 0, holds one task, or stopped "
    "before the first measurement"
)

Pair = tuple[str, str]


@dataclass(frozen=True)
class ConflictMap:
    """A run's gradient-conflict rows.

    Attributes:
        pairs: (a, b) -> [(env steps per task, cosine in [-1, 1]), ...], pairs in the order
            metrics.csv first logged them.
        shares: task -> [(env steps per task, grad share in [0, 1]), ...].
    """

    pairs: dict[Pair, Series]
    shares: dict[str, Series]

    def __bool__(self) -> bool:
        """True when the run logged at least one pair's cosine."""
        return any(self.pairs.values())


@dataclass(frozen=True)
class PairConflict:
    """One pair's cosine over the run (logs with a non-finite value are left out).

    Attributes:
        pair: (a, b) in the agent's task order.
        mean_cos: the mean logged cosine over the run; nan when none is finite.
        late_mean_cos: the mean over the last half of training (logs at steps > `late_from_step`);
            nan when none was logged there.
        num_logs: the logged values the mean is over.
        first_step: the step of the first of them (env steps per task); 0 when none.
        last_step: the step of the last of them.
        late_from_step: where the last half starts: half the run's last logged step.
    """

    pair: Pair
    mean_cos: float
    late_mean_cos: float
    num_logs: int
    first_step: int
    last_step: int
    late_from_step: float

    @property
    def label(self) -> str:
        return f"{self.pair[0]} / {self.pair[1]}"

    @property
    def in_conflict(self) -> bool:
        """The mean cosine is below 0 (a nan mean is no conflict)."""
        return self.mean_cos < 0.0


def conflict_series(metrics: Mapping[str, Series], tasks: Iterable[str] = ()) -> ConflictMap:
    """The pair cosines and grad shares of a run's metrics.

    Args:
        metrics: as returned by `read_metrics`.
        tasks: task names known from elsewhere (e.g. summary.json), added to those the metrics
            name (`task/<name>/...`, `rollout/<name>/...`); they only help to split pair keys.

    Returns:
        The map; empty (falsy) when the run logged no `mtl/grad_cos` rows.

    Raises:
        ReportError: a pair key that splits into known task names in more than one way, or in
            none when its names are unknown and it holds more than one `/`.
    """
    known = set(tasks) | _logged_tasks(metrics)
    pairs = {
        _split_pair(key, known): points
        for key, points in metrics.items()
        if key.startswith(COS_PREFIX)
    }
    shares = {
        key[len("task/") : -len(SHARE_SUFFIX)]: points
        for key, points in metrics.items()
        if key.startswith("task/") and key.endswith(SHARE_SUFFIX)
        and len(key) > len("task/" + SHARE_SUFFIX)
    }  # fmt: skip
    return ConflictMap(pairs=pairs, shares=shares)


def _logged_tasks(metrics: Mapping[str, Series]) -> set[str]:
    """Names in `task/<name>/<stat>` and `rollout/<name>/<stat>` keys (a stat holds no `/`)."""
    names = set()
    for key in metrics:
        for prefix in TASK_PREFIXES:
            if key.startswith(prefix) and key.rfind("/") > len(prefix):
                names.add(key[len(prefix) : key.rfind("/")])
    return names


def _split_pair(key: str, known: set[str]) -> Pair:
    """(a, b) of `mtl/grad_cos/<a>/<b>`: the one split at a `/` into two known names, else
    (names unknown) the split at its only `/`."""
    rest = key[len(COS_PREFIX) :]
    splits = [(rest[:i], rest[i + 1 :]) for i, char in enumerate(rest) if char == "/"]
    named = [(a, b) for a, b in splits if a in known and b in known]
    if len(named) == 1:
        return named[0]
    if not named and len(splits) == 1 and all(splits[0]):
        return splits[0]
    raise ReportError(
        f"metrics.csv key {key!r} does not name one pair of tasks "
        f"(tasks the run logged: {sorted(known) or 'none'}); is the file from multiq?"
    )


def most_conflicting(conflicts: ConflictMap) -> list[PairConflict]:
    """Every pair ranked by its mean cosine over the run, lowest (most conflict) first.

    The last half of training is the logs at steps above half the last step any pair logged,
    so a user sees whether conflict grows as the tasks are learned.

    Args:
        conflicts: as returned by `conflict_series`.

    Returns:
        One entry per pair; pairs without a finite value last, ties in logged order.
    """
    last = max((step for points in conflicts.pairs.values() for step, _ in points), default=0)
    ranking = [_pair_conflict(pair, points, last / 2) for pair, points in conflicts.pairs.items()]
    return sorted(ranking, key=lambda entry: (math.isnan(entry.mean_cos), entry.mean_cos))


def _pair_conflict(pair: Pair, points: Series, late_from_step: float) -> PairConflict:
    finite = [(step, value) for step, value in points if math.isfinite(value)]
    late = [value for step, value in finite if step > late_from_step]
    return PairConflict(
        pair=pair,
        mean_cos=_mean(value for _, value in finite),
        late_mean_cos=_mean(late),
        num_logs=len(finite),
        first_step=finite[0][0] if finite else 0,
        last_step=finite[-1][0] if finite else 0,
        late_from_step=late_from_step,
    )


def mean_shares(conflicts: ConflictMap) -> dict[str, float]:
    """Task -> its mean logged grad share over the run (nan when none is finite)."""
    return {
        task: _mean(value for _, value in points if math.isfinite(value))
        for task, points in conflicts.shares.items()
    }


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def format_conflicts(
    ranking: Sequence[PairConflict], shares: Mapping[str, float], top: int = TOP_PAIRS
) -> str:
    """Plain text: the pairs in most conflict (mean cosine < 0), at most `top`, with their mean
    over the run and over its last half, then each task's mean grad share.

    Args:
        ranking: as returned by `most_conflicting`.
        shares: as returned by `mean_shares`.
        top: how many conflicting pairs to list.

    Returns:
        The lines, or one "no pair in conflict" line naming the lowest pair when none is < 0.
    """
    lines = ["Gradient conflict (cosine of two tasks' gradients on the shared weights; < 0 is "
             "conflict):"]  # fmt: skip
    conflicting = [entry for entry in ranking if entry.in_conflict]
    if conflicting:
        rows = [("pair", "mean cos", "last half", "logs", "over env steps per task")]
        rows += [_row(entry) for entry in conflicting[:top]]
        lines += ["  " + line for line in aligned_table(rows).splitlines()]
        lines.append(
            f"  {len(conflicting)} of {len(ranking)} pairs in conflict"
            + (f" ({len(conflicting) - top} more not shown)" if len(conflicting) > top else "")
            + f"; last half = logs after step {_count(ranking[0].late_from_step)}"
        )
    else:
        lines.append("  " + summary_line(ranking))
    if shares:
        parts = [f"{task} {share:.2f}" for task, share in shares.items()]
        lines.append("Grad share (mean of ||g_task|| / sum of the norms): " + ", ".join(parts))
    return "\n".join(lines)


def summary_line(ranking: Sequence[PairConflict]) -> str:
    """One line: the pair in most conflict, or "no pair in conflict" and the lowest pair."""
    if not ranking:
        return "no pair logged"
    lowest = ranking[0]
    where = (
        f"mean cos {_cos(lowest.mean_cos)}, last half {_cos(lowest.late_mean_cos)}, "
        f"over {lowest.num_logs} logs at steps {_count(lowest.first_step)}-"
        f"{_count(lowest.last_step)}"
    )
    if lowest.in_conflict:
        return f"most conflict: {lowest.label} ({where})"
    return f"no pair in conflict; lowest: {lowest.label} ({where})"


def _row(entry: PairConflict) -> tuple[str, str, str, str, str]:
    return (
        entry.label,
        _cos(entry.mean_cos),
        _cos(entry.late_mean_cos),
        str(entry.num_logs),
        f"{_count(entry.first_step)}-{_count(entry.last_step)}",
    )


def _cos(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else "-"


def _count(steps: float) -> str:
    return f"{steps:,.0f}"


def read_conflicts(run_dir: str | Path) -> ConflictMap:
    """The gradient-conflict map of a run folder (empty when it logged none).

    Raises:
        RunFolderError: there is no metrics.csv in the folder.
        ReportError: metrics.csv is malformed.
    """
    return conflict_series(read_metrics(run_dir))


def plot_conflicts(run_dir: str | Path, out_path: str | Path | None = None) -> Path | None:
    """Writes the gradient-conflict map of a run (default `RUN_DIR/conflicts.png`).

    Args:
        run_dir: the run folder (holds metrics.csv).
        out_path: where to write the image.

    Returns:
        The image's path, or None when the run logged no map (no file written).

    Raises:
        RunFolderError: there is no metrics.csv in the folder.
        ReportError: metrics.csv is malformed.
    """
    conflicts = read_conflicts(run_dir)
    if not conflicts:
        return None
    figure = build_conflict_figure({Path(run_dir).resolve().name: conflicts})
    path = Path(out_path) if out_path is not None else Path(run_dir) / CONFLICTS_FILE
    save_figure(figure, path)
    return path


def plot_conflict_comparison(
    run_dirs: Sequence[str | Path], out_path: str | Path
) -> tuple[Path | None, dict[str, str]]:
    """Writes the maps of several runs side by side: one column per run titled by its folder's
    name, the same pair rows and one colour scale.

    Args:
        run_dirs: the run folders.
        out_path: where to write the image.

    Returns:
        (the image's path, or None when no run logged a map; run label -> the one-line summary
        of its map, or why it has none), labels in the order of `run_dirs`.

    Raises:
        ReportError: a malformed metrics.csv.
    """
    maps: dict[str, ConflictMap] = {}
    lines: dict[str, str] = {}
    for label, run_dir in zip(run_labels(run_dirs), run_dirs, strict=True):
        try:
            conflicts = read_conflicts(run_dir)
        except RunFolderError as error:
            lines[label] = str(error)
            continue
        if conflicts:
            maps[label] = conflicts
            lines[label] = summary_line(most_conflicting(conflicts))
        else:
            lines[label] = NO_MAP
    if not maps:
        return None, lines
    path = Path(out_path)
    save_figure(build_conflict_figure(maps), path)
    return path, lines


def run_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """Each run folder's name, or `parent/name` where two runs share a name."""
    names = [Path(run_dir).resolve().name for run_dir in run_dirs]
    return [
        name if names.count(name) == 1 else "/".join(Path(run_dir).resolve().parts[-2:])
        for name, run_dir in zip(names, run_dirs, strict=True)
    ]


def build_conflict_figure(maps: Mapping[str, ConflictMap]) -> Figure:
    """The gradient-conflict map of one or more runs, one column each (titled by its key).

    Top row: rows = pairs ("a / b", the union over runs in logged order, grey where a run did
    not log one), columns = logged training time (env steps per task; each cell spans the steps
    since the previous log, as the logged value is the mean over them), colour = cosine on a
    diverging scale fixed to [-1, 1] (red: conflict, white: 0, blue: agreement), one colourbar.
    Bottom row (when shares were logged): each task's grad share over time.

    Args:
        maps: run label -> its map (each non-empty).

    Returns:
        A matplotlib Figure on an Agg canvas.

    Raises:
        ReportError: no map holds a pair.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not any(maps.values()):
        raise ReportError("no gradient-conflict map to draw: no run logged mtl/grad_cos rows")
    pairs = list(dict.fromkeys(pair for m in maps.values() for pair in m.pairs))
    tasks = list(dict.fromkeys(task for m in maps.values() for task in m.shares))
    heat_height = 0.6 + 0.3 * len(pairs)
    heights = [heat_height, 2.0] if tasks else [heat_height]
    figure = Figure(figsize=(2.4 + 4.2 * len(maps), 1.0 + sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(
        len(heights), len(maps), squeeze=False, sharex="col", height_ratios=heights
    )
    for column, (label, conflicts) in enumerate(maps.items()):
        _draw_cosines(grid[0][column], conflicts, pairs, with_labels=column == 0)
        grid[0][column].set_title(label)
        if tasks:
            _draw_shares(grid[1][column], conflicts, tasks)
        else:
            grid[0][column].set_xlabel("env steps per task")
    mesh = grid[0][0].collections[0]  # every panel uses the same fixed [-1, 1] scale
    figure.colorbar(mesh, ax=list(grid[0]), label="gradient cosine\n(< 0: conflict)")
    if tasks:
        _shares_legend(figure, tasks)
    figure.suptitle("gradient-conflict map")
    return figure


def _draw_cosines(
    axes: Axes, conflicts: ConflictMap, pairs: Sequence[Pair], with_labels: bool
) -> None:
    """Pairs x logged steps, cosine colours on [-1, 1], grey where nothing was logged."""
    import numpy as np
    from matplotlib import colormaps

    steps = sorted({step for points in conflicts.pairs.values() for step, _ in points})
    column = {step: index for index, step in enumerate(steps)}
    values = np.full((len(pairs), len(steps)), np.nan)
    for row, pair in enumerate(pairs):
        for step, value in conflicts.pairs.get(pair, []):
            values[row, column[step]] = value
    cmap = colormaps["RdBu"].with_extremes(bad="0.8")
    rows = np.arange(len(pairs) + 1)
    cells = np.ma.masked_invalid(values)
    axes.pcolormesh(_cell_edges(steps), rows, cells, cmap=cmap, vmin=-1.0, vmax=1.0)
    labels = [f"{a} / {b}" for a, b in pairs] if with_labels else [""] * len(pairs)
    axes.set_yticks(np.arange(len(pairs)) + 0.5, labels)
    axes.set_ylim(len(pairs), 0)  # the first pair on top
    _step_axis(axes)


def _cell_edges(steps: Sequence[int]) -> list[float]:
    """Cell i spans (steps[i-1], steps[i]]; the first cell is as wide as the second (or spans
    from 0 when it is alone), never reaching below 0 when the first step is positive."""
    width = steps[1] - steps[0] if len(steps) > 1 else (steps[0] or 1)
    left = steps[0] - width
    return [max(left, 0) if steps[0] > 0 else left, *steps]


def _draw_shares(axes: Axes, conflicts: ConflictMap, tasks: Sequence[str]) -> None:
    """Each task's grad share over the logged steps, a colour per task shared by all runs."""
    for index, task in enumerate(tasks):
        points = conflicts.shares.get(task)
        if points:
            steps, values = zip(*points, strict=True)
            axes.plot(steps, values, color=f"C{index % 10}", linewidth=1.2, marker=".", label=task)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("grad share")
    axes.set_xlabel("env steps per task")
    axes.grid(alpha=0.3)


def _shares_legend(figure: Figure, tasks: Sequence[str]) -> None:
    """One legend under the figure: a colour per task, as `_draw_shares` draws them."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i % 10}", label=task) for i, task in enumerate(tasks)]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(tasks), 5),
                  fontsize="small", title="grad share per task")  # fmt: skip


def _step_axis(axes: Axes) -> None:
    from matplotlib.ticker import EngFormatter, MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(nbins=5))
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
