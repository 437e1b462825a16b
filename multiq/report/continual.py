"""Continual-learning metrics and plots from a run folder (Continual World, Wołczyk et al. 2021).

A continual run trains tasks one after another as the phases of one run. summary.json's
`phases` place each phase on the step axis (env steps per active task, summed over phases), and
every held task is evaluated at the end of every phase and every `eval_freq` steps, so
metrics.csv holds, per task, a curve over the whole run.

- Evaluation matrix: R[i, j] = the evaluation return of task j at the end of phase i.
- Normalised return: p = (R − R_random) / (R_reference − R_random), with R_random the
  random-policy return (the continual run's) and R_reference the final return of a single-task
  reference run; 0 is the random policy, 1 the reference.
- Average performance: P = mean_j p[last phase, j] over the sequence's tasks.
- Forgetting: F_j = p[phase that trained j, j] − p[last phase, j] (positive: forgot), for every
  sequence task except those trained in the last phase; F = mean_j F_j.
- Forward transfer: FT_j = (AUC_j − AUC_ref_j) / (1 − AUC_ref_j), AUC_j the mean of task j's
  normalised curve during its own phase, AUC_ref_j the same for the reference run's curve over
  its first (phase length) steps; FT = mean_j FT_j.

Without reference runs, forgetting in raw returns (`raw_forgetting`): F_raw_j = R[phase that
trained j, j] − R[last phase, j], its share of what the task had gained over random,
F_raw_j / (R[phase that trained j, j] − R_random), and backward transfer
BWT = mean_j (R[last, j] − R[phase that trained j, j]) = −mean_j F_raw_j (Lopez-Paz & Ranzato
2017), for the same tasks as F_j.

A task's training phase is the first phase whose `tasks` include it; the sequence is the tasks
in order of their training phase, and the other held tasks follow it. Means are over the tasks
with a finite value; the notes name the others. numpy + matplotlib only (never torch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from multiq.report.curves import save_figure
from multiq.report.metrics import (
    ReportError,
    Series,
    random_policy_return,
    read_metrics,
    read_summary,
    task_names,
)
from multiq.report.stats import bootstrap_ci
from multiq.report.table import MISSING, markdown_line
from multiq.runio.layout import MATRIX_FILE, METRICS_FILE, SEQUENCE_FILE, SUMMARY_FILE, return_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_PHASE_INT_KEYS = ("start_step", "end_step")


@dataclass(frozen=True, eq=False)
class ContinualMatrix:
    """A continual run's evaluation matrix and curves.

    Attributes:
        run_dir: the run folder.
        phases: the phases' names, in run order (P of them).
        phase_steps: (start_step, end_step) of each phase on the step axis.
        tasks: the sequence's tasks in order of their training phase, then the other held tasks
            (T in all).
        trained_in: sequence task -> index of the first phase that trained it.
        returns: [P, T] R[i, j], task j's evaluation return at the end of phase i (NaN where
            task j has no evaluation at that step).
        random: [T] each task's random-policy return (NaN when unknown).
        curves: task -> [(step, evaluation return), ...] over the whole run, in step order.
        notes: what is missing (tasks without an evaluation at a phase end).
    """

    run_dir: Path
    phases: list[str]
    phase_steps: list[tuple[int, int]]
    tasks: list[str]
    trained_in: dict[str, int]
    returns: np.ndarray
    random: np.ndarray
    curves: dict[str, Series]
    notes: list[str]

    @property
    def sequence(self) -> list[str]:
        """The tasks some phase trains, in order of their training phase."""
        return [task for task in self.tasks if task in self.trained_in]


@dataclass(frozen=True, eq=False)
class ContinualMetrics:
    """Continual World's metrics of one run on normalised returns (see the module docstring).

    Attributes:
        tasks: the sequence's tasks.
        normalised: [P, T] p, the matrix's returns normalised (columns: `ContinualMatrix.tasks`).
        final: task -> p at the end of the last phase.
        average_performance: P, the mean of `final`.
        forgetting: task -> F_j, for the tasks trained before the last phase.
        forgetting_mean: F, the mean of `forgetting`.
        auc: task -> AUC_j during its training phase.
        reference_auc: task -> AUC_ref_j.
        forward_transfer: task -> FT_j.
        forward_transfer_mean: FT, the mean of `forward_transfer`.
        notes: warnings: NaN values and why, means over fewer tasks.
    """

    tasks: list[str]
    normalised: np.ndarray
    final: dict[str, float]
    average_performance: float
    forgetting: dict[str, float]
    forgetting_mean: float
    auc: dict[str, float]
    reference_auc: dict[str, float]
    forward_transfer: dict[str, float]
    forward_transfer_mean: float
    notes: list[str]


@dataclass(frozen=True, eq=False)
class RawForgetting:
    """Forgetting in raw returns, which needs no reference run (see the module docstring).

    Attributes:
        tasks: the sequence's tasks trained before the last phase, in sequence order.
        own: task -> R[phase that trained it, task], its return right after its own phase.
        final: task -> R[last phase, task].
        forgetting: task -> own − final (positive: forgot).
        share: task -> forgetting / (own − random), the share of its gain over random it lost
            (NaN where own <= random or the random return is unknown).
        forgetting_mean: the mean of `forgetting` (raw returns: compare tasks only when their
            return scales do).
        backward_transfer: the mean of final − own, i.e. −forgetting_mean (positive: the later
            phases helped).
        share_mean: the mean of `share`.
        notes: NaN values and why, means over fewer tasks.
    """

    tasks: list[str]
    own: dict[str, float]
    final: dict[str, float]
    forgetting: dict[str, float]
    share: dict[str, float]
    forgetting_mean: float
    backward_transfer: float
    share_mean: float
    notes: list[str]


# --- reading -----------------------------------------------------------------------------------


def evaluation_matrix(run_dir: str | Path) -> ContinualMatrix:
    """Reads a continual run's evaluation matrix R[i, j] and its curves.

    R[i, j] is the row `task/<j>/return` of metrics.csv at step == `phases[i]["end_step"]`.

    Args:
        run_dir: the run folder (holds metrics.csv and summary.json with `phases`).

    Returns:
        The matrix.

    Raises:
        RunFolderError: metrics.csv or summary.json is missing.
        ReportError: summary.json has no phases (or a malformed one), or no task was evaluated
            at the end of some phase (a run stopped inside a phase).
    """
    summary = read_summary(run_dir)
    phases = _phases(summary, Path(run_dir) / SUMMARY_FILE)
    metrics = read_metrics(run_dir)
    trained_in: dict[str, int] = {}
    for index, phase in enumerate(phases):
        for task in phase["tasks"]:
            trained_in.setdefault(task, index)
    tasks = list(dict.fromkeys([*trained_in, *task_names(metrics), *summary.get("tasks", {})]))
    curves = {task: metrics.get(return_key(task), []) for task in tasks}
    names = [str(phase.get("name") or f"phase {i + 1}") for i, phase in enumerate(phases)]
    steps = [(int(phase["start_step"]), int(phase["end_step"])) for phase in phases]
    returns = _phase_end_returns(curves, names, steps, Path(run_dir) / METRICS_FILE)
    random = [random_policy_return(task, metrics, summary) for task in tasks]
    return ContinualMatrix(
        run_dir=Path(run_dir),
        phases=names,
        phase_steps=steps,
        tasks=tasks,
        trained_in=trained_in,
        returns=returns,
        random=np.array([math.nan if r is None else r for r in random], dtype=np.float64),
        curves=curves,
        notes=_missing_notes(returns, tasks, names),
    )


def reference_returns(
    run_dirs: Iterable[str | Path], tasks: Sequence[str] | None = None
) -> dict[str, float]:
    """Each reference run's final return per task: summary.json's `tasks.<name>.return_mean`.

    Args:
        run_dirs: single-task reference run folders (a folder may hold several tasks).
        tasks: the continual run's tasks; a reference holding another task is refused.

    Returns:
        task -> reference return.

    Raises:
        RunFolderError: a folder lacks summary.json.
        ReportError: a reference holds no task, a task not among `tasks`, a task another
            reference holds too, or no finite final return.
    """
    returns = {}
    for task, run_dir in _reference_tasks(run_dirs, tasks).items():
        value = read_summary(run_dir)["tasks"][task].get("return_mean")
        if value is None or not math.isfinite(float(value)):
            raise ReportError(
                f"reference {run_dir}: {SUMMARY_FILE} has no finite tasks.{task}.return_mean "
                f"(got {value!r}); give a reference run that finished"
            )
        returns[task] = float(value)
    return returns


def reference_curves(
    run_dirs: Iterable[str | Path], tasks: Sequence[str] | None = None
) -> dict[str, Series]:
    """Each reference run's evaluation curve per task (`task/<name>/return` of metrics.csv).

    Args:
        run_dirs: the reference run folders, as for `reference_returns`.
        tasks: the continual run's tasks; a reference holding another task is refused.

    Returns:
        task -> [(step, return), ...] (empty when the reference logged no evaluation).

    Raises:
        RunFolderError: a folder lacks summary.json or metrics.csv.
        ReportError: as `reference_returns`.
    """
    return {
        task: read_metrics(run_dir).get(return_key(task), [])
        for task, run_dir in _reference_tasks(run_dirs, tasks).items()
    }


# --- metrics -----------------------------------------------------------------------------------


def normalise(returns: Any, random: Any, reference: Any) -> np.ndarray:
    """p = (R − R_random) / (R_reference − R_random), per task (the last axis).

    Args:
        returns: [..., T] returns R.
        random: [T] random-policy returns.
        reference: [T] reference returns.

    Returns:
        [..., T] p: 0 at the random return, 1 at the reference's; NaN for a task whose
        reference equals its random return (or either is NaN).
    """
    returns = np.asarray(returns, dtype=np.float64)
    random = np.asarray(random, dtype=np.float64)
    scale = np.asarray(reference, dtype=np.float64) - random
    with np.errstate(invalid="ignore"):
        return (returns - random) / np.where(scale != 0, scale, np.nan)


def window_auc(curve: Series, start: int, end: int) -> float:
    """The mean of a normalised curve over [start, end]: ∫ p ds / (end − start).

    The curve is linearly interpolated between its evaluations and integrated by the trapezoid
    rule (exact for that interpolant). A curve with no evaluation at or before `start` is taken
    to start from p = 0 (the random policy) at `start`: a fresh agent, as at a run's step 0.

    Args:
        curve: [(step, p), ...] in step order.
        start: the window's first step.
        end: its last step.

    Returns:
        The AUC (1 for a curve at the reference level throughout); NaN when the window is empty,
        the curve has no evaluation at or after `end`, or a value in the window is NaN.
    """
    if end <= start or not curve or curve[-1][0] < end:
        return math.nan
    points = np.array(curve, dtype=np.float64)
    steps, values = points[:, 0], points[:, 1]
    if steps[0] > start:
        steps, values = np.concatenate([[start], steps]), np.concatenate([[0.0], values])
    knots = np.concatenate([[start], steps[(steps > start) & (steps < end)], [end]])
    heights = np.interp(knots, steps, values)
    if np.isnan(heights).any():
        return math.nan
    area = np.sum(np.diff(knots) * (heights[1:] + heights[:-1]) / 2.0)
    return float(area / (end - start))


def continual_metrics(
    matrix: ContinualMatrix,
    reference: Mapping[str, float],
    curves: Mapping[str, Series] | None = None,
) -> ContinualMetrics:
    """Average performance, forgetting and forward transfer (formulas in the module docstring).

    Args:
        matrix: the continual run's matrix (`evaluation_matrix`).
        reference: task -> the single-task reference run's final return (`reference_returns`).
        curves: task -> the reference run's evaluation curve (`reference_curves`); without it
            forward transfer is NaN.

    Returns:
        The metrics; a task without a reference, a random return, or with reference == random
        gets NaN values and a note.
    """
    ref = np.array([reference.get(t, math.nan) for t in matrix.tasks], dtype=np.float64)
    p = normalise(matrix.returns, matrix.random, ref)
    notes = _normalisation_notes(matrix, ref)
    column = {task: j for j, task in enumerate(matrix.tasks)}
    last = len(matrix.phases) - 1
    final = {t: float(p[last, column[t]]) for t in matrix.sequence}
    forgetting = {
        t: float(p[matrix.trained_in[t], column[t]] - p[last, column[t]])
        for t in matrix.sequence
        if matrix.trained_in[t] < last
    }
    auc, reference_auc, transfer = _forward_transfer(matrix, ref, curves, notes)
    return ContinualMetrics(
        tasks=matrix.sequence,
        normalised=p,
        final=final,
        average_performance=_finite_mean(final, "average performance", notes),
        forgetting=forgetting,
        forgetting_mean=_finite_mean(forgetting, "forgetting", notes),
        auc=auc,
        reference_auc=reference_auc,
        forward_transfer=transfer,
        forward_transfer_mean=_finite_mean(transfer, "forward transfer", notes),
        notes=notes,
    )


def raw_forgetting(matrix: ContinualMatrix) -> RawForgetting:
    """Forgetting and backward transfer in raw returns (formulas in the module docstring).

    Args:
        matrix: the continual run's matrix (`evaluation_matrix`).

    Returns:
        The metrics over the sequence's tasks trained before the last phase (none when the run
        has one phase); a task with a NaN cell gets NaN values, a note, and is left out of
        the means.
    """
    last = len(matrix.phases) - 1
    tasks = [t for t in matrix.sequence if matrix.trained_in[t] < last]
    column = {task: j for j, task in enumerate(matrix.tasks)}
    own = {t: float(matrix.returns[matrix.trained_in[t], column[t]]) for t in tasks}
    final = {t: float(matrix.returns[last, column[t]]) for t in tasks}
    forgetting = {t: own[t] - final[t] for t in tasks}
    notes: list[str] = []
    share = {t: _share(forgetting[t], own[t], float(matrix.random[column[t]])) for t in tasks}
    for task in tasks:
        if math.isnan(share[task]) and not math.isnan(forgetting[task]):
            notes.append(
                f"task {task}: its return after its own phase is not above the random "
                "policy's (or that is unknown), so the share of its gain it lost is NaN"
            )
    backward = {t: -value for t, value in forgetting.items()}
    return RawForgetting(
        tasks=tasks,
        own=own,
        final=final,
        forgetting=forgetting,
        share=share,
        forgetting_mean=_finite_mean(forgetting, "raw forgetting", notes),
        backward_transfer=_finite_mean(backward, "backward transfer", []),
        share_mean=_finite_mean(share, "share of the gain lost", notes),
        notes=notes,
    )


def aggregate_continual(
    per_seed: Sequence[ContinualMetrics],
    confidence: float = 0.95,
    resamples: int = 10_000,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """The continual metrics over seeds: each one's mean and bootstrap interval.

    Args:
        per_seed: one run's metrics per seed, all of the same task sequence.
        confidence: the intervals' coverage.
        resamples: bootstrap resamples per interval.
        rng: the generator the bootstrap draws from; default `np.random.default_rng(0)`.

    Returns:
        `{"seeds": n, "confidence", "average_performance": stat, "forgetting_mean": stat,
        "forward_transfer_mean": stat, "forgetting": {task: stat}, "forward_transfer":
        {task: stat}}`, a stat being `{"mean", "low", "high", "n"}` (n: seeds with a finite
        value; NaNs are left out).

    Raises:
        ReportError: no seeds, or the seeds' task sequences differ.
    """
    if not per_seed:
        raise ReportError("aggregate_continual needs the metrics of at least one run")
    sequences = {tuple(m.tasks) for m in per_seed}
    if len(sequences) > 1:
        raise ReportError(f"the seeds' runs have different task sequences: {sorted(sequences)}")
    rng = np.random.default_rng(0) if rng is None else rng

    def stat(values: list[float]) -> dict[str, Any]:
        mean, low, high = bootstrap_ci(values, confidence, resamples, rng)
        return {"mean": mean, "low": low, "high": high, "n": int(np.isfinite(values).sum())}

    result: dict[str, Any] = {"seeds": len(per_seed), "confidence": float(confidence)}
    for key in ("average_performance", "forgetting_mean", "forward_transfer_mean"):
        result[key] = stat([getattr(m, key) for m in per_seed])
    for key in ("forgetting", "forward_transfer"):
        tasks = getattr(per_seed[0], key)
        result[key] = {t: stat([getattr(m, key).get(t, math.nan) for m in per_seed]) for t in tasks}
    return result


# --- plots -------------------------------------------------------------------------------------


def plot_matrix(
    matrix: ContinualMatrix,
    path: str | Path | None = None,
    reference: Mapping[str, float] | None = None,
) -> Path:
    """Writes the heat map of R: phases on rows, tasks on columns, each cell's value written.

    With `reference` the cells are normalised returns p (colour scale from 0 = random to
    1 = reference); without, raw returns, each column coloured from its own lowest to highest
    value. Each task's training phase is outlined.

    Args:
        matrix: the evaluation matrix.
        path: where to write the PNG; default `RUN_DIR/matrix.png`.
        reference: task -> reference return, or None for raw returns.

    Returns:
        The PNG's path.

    Raises:
        RunDirError: the file cannot be written.
    """
    path = Path(path) if path is not None else matrix.run_dir / MATRIX_FILE
    save_figure(build_matrix_figure(matrix, reference), path)
    return path


def build_matrix_figure(
    matrix: ContinualMatrix, reference: Mapping[str, float] | None = None
) -> Figure:
    """The heat map of `plot_matrix` as a Figure on an Agg canvas."""
    from matplotlib.patches import Rectangle

    figure = _figure(1.8 + 1.1 * len(matrix.tasks), 1.4 + 0.5 * len(matrix.phases))
    axes = figure.add_subplot()
    values, colours, label = _matrix_values(matrix, reference)
    low, high = (0.0, 1.0) if reference is None else (min(0.0, _lowest(colours)), 1.0)
    image = axes.imshow(np.ma.masked_invalid(colours), cmap="viridis", vmin=low, vmax=high)
    for (row, col), value in np.ndenumerate(values):
        shade = (colours[row, col] - low) / (high - low)
        colour = "white" if shade <= 0.5 else "black"  # black on a NaN cell's white
        text = MISSING if math.isnan(value) else f"{value:.2f}"
        axes.text(col, row, text, ha="center", va="center", color=colour, fontsize="small")
    for task, row in matrix.trained_in.items():
        col = matrix.tasks.index(task)
        axes.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, color="red", lw=2))
    axes.set_xticks(range(len(matrix.tasks)), matrix.tasks, rotation=30, ha="right")
    axes.set_yticks(range(len(matrix.phases)), matrix.phases)
    axes.set_xlabel("evaluated task")
    axes.set_ylabel("after phase")
    if reference is not None:
        figure.colorbar(image, ax=axes, label="p")
    axes.set_title(label, fontsize="medium")
    return figure


def plot_sequence_curves(matrix: ContinualMatrix, path: str | Path | None = None) -> Path:
    """Writes every task's evaluation curve over the whole run, one row of axes per task.

    Vertical lines mark the phase boundaries, the phases' names head the top row, each task's
    own training phase is shaded and its random-policy return dashed.

    Args:
        matrix: the evaluation matrix (its curves and phases).
        path: where to write the PNG; default `RUN_DIR/sequence.png`.

    Returns:
        The PNG's path.

    Raises:
        RunDirError: the file cannot be written.
    """
    path = Path(path) if path is not None else matrix.run_dir / SEQUENCE_FILE
    save_figure(build_sequence_figure(matrix), path)
    return path


def build_sequence_figure(matrix: ContinualMatrix) -> Figure:
    """The curves of `plot_sequence_curves` as a Figure on an Agg canvas."""
    figure = _figure(8.0, 0.8 + 1.7 * len(matrix.tasks))
    axes_list = figure.subplots(len(matrix.tasks), 1, sharex=True, squeeze=False)[:, 0]
    for j, (task, axes) in enumerate(zip(matrix.tasks, axes_list, strict=True)):
        _plot_sequence_task(axes, matrix, task, float(matrix.random[j]))
    axes_list[0].legend(loc="best", fontsize="x-small")
    for (start, end), name in zip(matrix.phase_steps, matrix.phases, strict=True):
        transform = axes_list[0].get_xaxis_transform()
        axes_list[0].text((start + end) / 2, 1.04, name, transform=transform, ha="center")
    axes_list[-1].set_xlabel("env steps per active task")
    return figure


# --- the report --------------------------------------------------------------------------------


def format_continual_report(
    run_dir: str | Path, references: Sequence[str | Path] | None = None
) -> str:
    """A markdown report of a continual run: its evaluation matrix, forgetting in raw returns
    and, with references, the normalised matrix and Continual World's metrics.

    Args:
        run_dir: the continual run's folder.
        references: single-task reference run folders (one per task of the sequence), or None.

    Returns:
        The report.

    Raises:
        RunFolderError: a folder lacks metrics.csv or summary.json.
        ReportError: as `evaluation_matrix` and `reference_returns`.
    """
    matrix = evaluation_matrix(run_dir)
    sections = [_phases_section(matrix)]
    reference_runs = list(references or ())
    reference = reference_returns(reference_runs, matrix.tasks) if reference_runs else None
    sections.append(_raw_section(matrix, reference))
    raw = raw_forgetting(matrix)
    sections.append(_raw_forgetting_section(matrix, raw))
    if reference is None:
        sections.append(
            "Give single-task reference run folders (one per task, trained as long as a phase) "
            "to normalise the returns and get average performance, normalised forgetting and "
            "forward transfer."
        )
        notes = [*matrix.notes, *raw.notes]
    else:
        metrics = continual_metrics(
            matrix, reference, reference_curves(reference_runs, matrix.tasks)
        )
        sections += [_normalised_section(matrix, metrics), _metrics_section(matrix, metrics)]
        notes = [*matrix.notes, *raw.notes, *metrics.notes]
    if notes:
        sections.append("Notes:\n" + "\n".join(f"- {note}" for note in notes))
    return "\n\n".join(sections) + "\n"


# --- reading helpers ---------------------------------------------------------------------------


def _phases(summary: Mapping[str, Any], path: Path) -> list[Mapping[str, Any]]:
    """summary.json's phases, each checked for the keys the matrix reads."""
    phases = summary.get("phases")
    if not phases:
        raise ReportError(
            f"{path} has no phases: the continual report needs a run whose summary records its "
            "phases (a run of this multiq version that finished)"
        )
    if not isinstance(phases, list):
        raise ReportError(f"{path}: 'phases' must be a list, got {type(phases).__name__}")
    for index, phase in enumerate(phases):
        if not isinstance(phase, Mapping):
            raise ReportError(f"{path}: phases[{index}] must be an object, got {phase!r}")
        tasks = phase.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise ReportError(f"{path}: phases[{index}].tasks must be a list of task names")
        for key in _PHASE_INT_KEYS:
            value = phase.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ReportError(f"{path}: phases[{index}].{key} must be an integer step")
    return phases


def _phase_end_returns(
    curves: Mapping[str, Series],
    names: list[str],
    steps: list[tuple[int, int]],
    path: Path,
) -> np.ndarray:
    """[P, T] each task's return at each phase's end step; refuses a phase end with none."""
    by_step = [dict(curve) for curve in curves.values()]
    returns = np.array(
        [[points.get(end, math.nan) for points in by_step] for _, end in steps], dtype=np.float64
    ).reshape(len(steps), len(by_step))
    for index, (name, (_, end)) in enumerate(zip(names, steps, strict=True)):
        if np.isnan(returns[index]).all():
            raise ReportError(
                f"{path} has no evaluation at the end of phase {name!r} (step {end}): no "
                "task/<name>/return row at that step. Every phase's end must be evaluated; "
                "was the run stopped inside that phase?"
            )
    return returns


def _missing_notes(returns: np.ndarray, tasks: list[str], phases: list[str]) -> list[str]:
    notes = []
    for j, task in enumerate(tasks):
        missing = [phases[i] for i in np.flatnonzero(np.isnan(returns[:, j]))]
        if missing:
            notes.append(
                f"task {task} has no evaluation at the end of phase(s) {', '.join(missing)}: "
                "those cells are NaN"
            )
    return notes


def _reference_tasks(
    run_dirs: Iterable[str | Path], tasks: Sequence[str] | None
) -> dict[str, Path]:
    """task -> the reference folder that holds it, refusing unknown and repeated tasks."""
    owners: dict[str, Path] = {}
    for run_dir in map(Path, run_dirs):
        held = list(read_summary(run_dir).get("tasks", {}))
        if not held:
            raise ReportError(f"reference {run_dir}: its {SUMMARY_FILE} holds no task")
        unknown = [task for task in held if tasks is not None and task not in tasks]
        if unknown:
            raise ReportError(
                f"reference {run_dir} holds task(s) {', '.join(unknown)}, which the continual "
                f"run does not ({', '.join(tasks or [])}): give single-task runs of its tasks"
            )
        for task in held:
            if task in owners:
                raise ReportError(
                    f"task {task} has two references, {owners[task]} and {run_dir}: give one"
                )
            owners[task] = run_dir
    return owners


# --- metric helpers ----------------------------------------------------------------------------


def _normalisation_notes(matrix: ContinualMatrix, reference: np.ndarray) -> list[str]:
    notes = []
    for task, random, ref in zip(matrix.tasks, matrix.random, reference, strict=True):
        if task not in matrix.trained_in:
            continue
        if math.isnan(ref):
            notes.append(f"task {task} has no reference run: its normalised returns are NaN")
        elif math.isnan(random):
            notes.append(f"task {task} has no random-policy return: its normalised returns are NaN")
        elif ref == random:
            notes.append(
                f"task {task}: the reference return equals the random-policy return "
                f"({ref:g}), so it cannot be normalised: its values are NaN"
            )
    return notes


def _forward_transfer(
    matrix: ContinualMatrix,
    reference: np.ndarray,
    curves: Mapping[str, Series] | None,
    notes: list[str],
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per sequence task: (AUC_j, AUC_ref_j, FT_j)."""
    if curves is None:
        notes.append("forward transfer needs the reference runs' curves: it is NaN")
    auc, reference_auc, transfer = {}, {}, {}
    for task in matrix.sequence:
        j = matrix.tasks.index(task)
        start, end = matrix.phase_steps[matrix.trained_in[task]]
        scale = (matrix.random[j], reference[j])
        auc[task] = window_auc(_normalised_curve(matrix.curves[task], *scale), start, end)
        ref_curve = (curves or {}).get(task, [])
        reference_auc[task] = window_auc(_normalised_curve(ref_curve, *scale), 0, end - start)
        if curves is not None and not math.isnan(reference[j]) and not ref_curve:
            notes.append(f"task {task}: its reference run logged no evaluation curve")
        elif curves is not None and ref_curve and ref_curve[-1][0] < end - start:
            notes.append(
                f"task {task}: its reference run's curve ends at step {ref_curve[-1][0]}, before "
                f"the phase's length ({end - start} steps): no reference AUC"
            )
        transfer[task] = _transfer(auc[task], reference_auc[task], task, notes)
    return auc, reference_auc, transfer


def _transfer(auc: float, reference_auc: float, task: str, notes: list[str]) -> float:
    if reference_auc >= 1.0:
        notes.append(
            f"task {task}: the reference's AUC is {reference_auc:.2f} >= 1, so forward transfer "
            "(AUC − AUC_ref) / (1 − AUC_ref) is undefined (NaN)"
        )
        return math.nan
    return (auc - reference_auc) / (1.0 - reference_auc)


def _normalised_curve(curve: Series, random: float, reference: float) -> Series:
    values = normalise([value for _, value in curve], random, reference)
    return [(step, float(p)) for (step, _), p in zip(curve, values, strict=True)]


def _share(forgetting: float, own: float, random: float) -> float:
    """forgetting / (own − random); NaN when own <= random or either is NaN."""
    gained = own - random
    return forgetting / gained if gained > 0 else math.nan


def _finite_mean(values: Mapping[str, float], label: str, notes: list[str]) -> float:
    finite = [v for v in values.values() if math.isfinite(v)]
    left_out = [task for task, v in values.items() if not math.isfinite(v)]
    if left_out:
        notes.append(
            f"{label}: the mean is over {len(finite)} of {len(values)} tasks "
            f"({', '.join(left_out)} NaN)"
        )
    return float(np.mean(finite)) if finite else math.nan


# --- plot helpers ------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _matrix_values(
    matrix: ContinualMatrix, reference: Mapping[str, float] | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(the cells' values, their colours, a label): p twice, or raw returns and per-column 0..1."""
    if reference is not None:
        ref = [reference.get(task, math.nan) for task in matrix.tasks]
        values = normalise(matrix.returns, matrix.random, ref)
        return values, values, "normalised return p (0: random, 1: reference)"
    values = matrix.returns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: a task not evaluated
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        spread = np.where(high > low, high - low, np.nan)
        colours = np.where(np.isnan(spread), 0.5, (values - low) / spread)
    colours[np.isnan(values)] = np.nan
    return values, colours, "return (colour: each task's lowest to highest)"


def _lowest(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.min()) if finite.size else 0.0


def _plot_sequence_task(axes: Axes, matrix: ContinualMatrix, task: str, random: float) -> None:
    from matplotlib.ticker import EngFormatter

    if task in matrix.trained_in:
        start, end = matrix.phase_steps[matrix.trained_in[task]]
        axes.axvspan(start, end, color="tab:blue", alpha=0.08, label="own phase")
    for _, end in matrix.phase_steps[:-1]:
        axes.axvline(end, color="gray", linewidth=0.8)
    curve = matrix.curves[task]
    if curve:
        axes.plot([s for s, _ in curve], [v for _, v in curve], marker=".", label="eval return")
    else:
        axes.text(0.5, 0.5, "no evaluations", transform=axes.transAxes, ha="center")
    if math.isfinite(random):
        axes.axhline(random, linestyle="--", color="gray", label="random policy")
    axes.set_ylabel(task)
    axes.set_xlim(0, matrix.phase_steps[-1][1])
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes.grid(alpha=0.3)


# --- report helpers ----------------------------------------------------------------------------


def _phases_section(matrix: ContinualMatrix) -> str:
    rows = [
        markdown_line((name, f"{start:,}", f"{end:,}", _trained(matrix, i)))
        for i, (name, (start, end)) in enumerate(
            zip(matrix.phases, matrix.phase_steps, strict=True)
        )
    ]
    return "\n".join(
        [
            f"# Continual run {matrix.run_dir}",
            "",
            f"{len(matrix.phases)} phases; steps are env steps per active task.",
            "",
            markdown_line(("phase", "start step", "end step", "new tasks")),
            markdown_line((":---", "---:", "---:", ":---")),
            *rows,
        ]
    )


def _trained(matrix: ContinualMatrix, phase: int) -> str:
    return ", ".join(t for t in matrix.sequence if matrix.trained_in[t] == phase) or MISSING


def _raw_section(matrix: ContinualMatrix, reference: Mapping[str, float] | None) -> str:
    extra = [("random policy", matrix.random)]
    if reference is not None:
        extra.append(("reference", np.array([reference.get(t, math.nan) for t in matrix.tasks])))
    return "\n".join(
        [
            "## Evaluation matrix R (returns)",
            "",
            "R[i, j]: the evaluation return of task j (column) at the end of phase i (row). "
            "**Bold**: each task right after its own phase; below it, what was kept.",
            "",
            _matrix_table(matrix, matrix.returns, extra),
        ]
    )


def _normalised_section(matrix: ContinualMatrix, metrics: ContinualMetrics) -> str:
    return "\n".join(
        [
            "## Normalised matrix p",
            "",
            "p = (R - random) / (reference - random): 0 is the random policy, 1 the single-task "
            "reference run's final return.",
            "",
            _matrix_table(matrix, metrics.normalised, []),
        ]
    )


def _matrix_table(
    matrix: ContinualMatrix, values: np.ndarray, extra: list[tuple[str, np.ndarray]]
) -> str:
    lines = [
        markdown_line(("after phase", *matrix.tasks)),
        markdown_line((":---", *("---:" for _ in matrix.tasks))),
    ]
    for i, name in enumerate(matrix.phases):
        cells = [_number(v) for v in values[i]]
        for task, phase in matrix.trained_in.items():
            if phase == i:
                cells[matrix.tasks.index(task)] = f"**{cells[matrix.tasks.index(task)]}**"
        lines.append(markdown_line((name, *cells)))
    lines += [markdown_line((f"*{label}*", *map(_number, row))) for label, row in extra]
    return "\n".join(lines)


def _raw_forgetting_section(matrix: ContinualMatrix, raw: RawForgetting) -> str:
    title = "## Forgetting in raw returns"
    if not raw.tasks:
        return f"{title}\n\nOne phase only: no task was trained before the last phase."
    header = ("task", "phase", "after its phase", "at the end", "forgetting", "share of gain")
    rows = [
        markdown_line(
            (
                task,
                matrix.phases[matrix.trained_in[task]],
                _number(raw.own[task]),
                _number(raw.final[task]),
                _number(raw.forgetting[task]),
                _number(raw.share[task]),
            )
        )
        for task in raw.tasks
    ]
    return "\n".join(
        [
            title,
            "",
            f"- raw forgetting F_raw = {_number(raw.forgetting_mean)}: the mean of R_j(end of "
            "its phase) - R_j(end), over the tasks before the last (positive: forgotten; in "
            "returns, so compare tasks only where their return scales compare).",
            f"- backward transfer BWT = {_number(raw.backward_transfer)}: the mean of "
            "R_j(end) - R_j(end of its phase) = -F_raw (positive: the later phases helped).",
            f"- share of the gain lost = {_number(raw.share_mean)}: the mean of F_raw_j / "
            "(R_j(end of its phase) - random) (1: back to the random policy).",
            "",
            markdown_line(header),
            markdown_line((":---", ":---", *("---:" for _ in header[2:]))),
            *rows,
        ]
    )


def _metrics_section(matrix: ContinualMatrix, metrics: ContinualMetrics) -> str:
    rows = [
        markdown_line(
            (
                task,
                matrix.phases[matrix.trained_in[task]],
                _number(metrics.final[task]),
                _number(metrics.forgetting.get(task)),
                _number(metrics.auc[task]),
                _number(metrics.reference_auc[task]),
                _number(metrics.forward_transfer[task]),
            )
        )
        for task in metrics.tasks
    ]
    header = ("task", "phase", "p at the end", "forgetting", "AUC", "reference AUC", "FT")
    return "\n".join(
        [
            "## Metrics (Continual World, Wołczyk et al. 2021)",
            "",
            f"- average performance P = {_number(metrics.average_performance)}: the mean over "
            "the sequence's tasks of p at the end of the last phase.",
            f"- forgetting F = {_number(metrics.forgetting_mean)}: the mean of F_j = p_j(end of "
            "its phase) - p_j(end), over the tasks before the last (positive: forgotten).",
            f"- forward transfer FT = {_number(metrics.forward_transfer_mean)}: the mean of "
            "FT_j = (AUC_j - AUC_ref_j) / (1 - AUC_ref_j), AUC the mean p during the task's "
            "phase (the reference's over as many first steps; p = 0 before a first evaluation); "
            "positive: the earlier tasks helped.",
            "",
            markdown_line(header),
            markdown_line((":---", ":---", *("---:" for _ in header[2:]))),
            *rows,
        ]
    )


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return MISSING
    return f"{float(value):.2f}"
