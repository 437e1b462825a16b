"""Transfer metrics from logged evaluation curves: a transfer run against its scratch baseline.

A transfer run's summary.json has a `transfer` entry (mode, source, source_tasks, target_tasks)
and its metrics.csv the evaluation returns `task/<name>/return`, the first at step 0 before any
target training; `step` is env steps per task. The scratch baseline is a transfer run of mode
`scratch` with the same target tasks, budget and seed. Everything here is computed from those
curves alone (numpy + stdlib; no torch), so a report can be rebuilt from the folders.

Per target task (the scratch run's random-policy return `R_rand` is the zero of the areas and of
the threshold, so a run whose curve equals scratch's scores jumpstart 0 and ratio exactly 1):
- jumpstart = first eval − scratch's first eval; asymptotic gain = final eval − scratch's;
- transfer ratio = ∫(R − R_rand) / ∫(R_scratch − R_rand), each curve linearly interpolated and
  integrated over the steps both curves cover. It is undefined (NaN, with a note saying why)
  when scratch did not learn: its area above random, per step, is at most
  UNDEFINED_TOLERANCE (1%) of the return scale (the largest |R − R_rand| of either curve over
  that range), since a ratio over a near-zero area is noise; the area difference
  ∫(R − R_scratch) / (steps), the mean return gained over scratch, is defined there too;
- time to threshold = the first eval step whose return >= R_rand + f·(R_scratch_final − R_rand);
  undefined (None, with `NO_THRESHOLD`) when scratch's final return is not above random by more
  than UNDEFINED_TOLERANCE of the return scale: the threshold would sit at random, which every
  curve reaches at its first evaluation.

Per source task (the run's own curve): forgetting = first eval − last eval (positive: forgot),
also divided by (first eval − R_rand), what the source training had gained over random.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multiq.report.metrics import (
    ReportError,
    Series,
    random_policy_return,
    read_metrics,
    read_summary,
    task_names,
)
from multiq.report.stats import bootstrap_ci
from multiq.report.table import MISSING, aligned_table, format_mean_std
from multiq.runio.layout import SUMMARY_FILE, random_return_key, return_key

THRESHOLD_FRACTION = 0.8
UNDEFINED_TOLERANCE = 0.01
SCRATCH_DID_NOT_LEARN = "undefined: scratch did not learn (area above random ≈ 0)"
NO_COMMON_STEPS = "undefined: the two curves share no step range"
NO_THRESHOLD = "undefined: scratch ended at random"
SCRATCH_MODE = "scratch"
NOT_REACHED = "not reached"
_REQUIRED_KEYS = ("mode", "source_tasks", "target_tasks")


@dataclass(frozen=True)
class TransferRun:
    """What a transfer run folder logged, as the transfer metrics need it.

    Attributes:
        run_dir: the run folder.
        mode: the transfer mode (`scratch` for the baseline).
        source_tasks: the tasks the source agent was trained on.
        target_tasks: the tasks trained in this run.
        curves: task -> [(env steps per task, eval return), ...] in step order, for every task
            with eval returns in metrics.csv.
        random: task -> random-policy return, for the tasks where it is known.
        source: where the source agent came from (as summary.json names it), if anywhere.
    """

    run_dir: Path
    mode: str
    source_tasks: list[str]
    target_tasks: list[str]
    curves: dict[str, Series]
    random: dict[str, float]
    source: str | None = None


def read_transfer_run(run_dir: str | Path) -> TransferRun:
    """Reads a transfer run folder's curves and random-policy returns.

    A task's random-policy return is the last `task/<name>/random_return` row of metrics.csv,
    else `tasks[name].random_return_mean` of summary.json.

    Args:
        run_dir: the folder of a transfer run (holds metrics.csv and summary.json).

    Returns:
        The run.

    Raises:
        RunFolderError: metrics.csv or summary.json is missing.
        ReportError: summary.json has no valid `transfer` entry (not a transfer run), or a file
            is malformed.
    """
    summary = read_summary(run_dir)
    info = _transfer_info(summary, run_dir)
    metrics = read_metrics(run_dir)
    curves = {name: metrics[return_key(name)] for name in task_names(metrics)}
    names = dict.fromkeys(
        [*curves, *info["source_tasks"], *info["target_tasks"], *summary.get("tasks", {})]
    )
    random = {name: random_policy_return(name, metrics, summary) for name in names}
    source = info.get("source")
    return TransferRun(
        run_dir=Path(run_dir),
        mode=str(info["mode"]),
        source_tasks=list(info["source_tasks"]),
        target_tasks=list(info["target_tasks"]),
        curves={name: points for name, points in curves.items() if points},
        random={name: value for name, value in random.items() if value is not None},
        source=None if source is None else str(source),
    )


def transfer_metrics(
    run: TransferRun, scratch: TransferRun, threshold_fraction: float = THRESHOLD_FRACTION
) -> dict[str, Any]:
    """The transfer metrics of one run against the scratch run of the same seed.

    Args:
        run: the transfer run.
        scratch: the scratch baseline (needs eval curves for the run's target tasks).
        threshold_fraction: f in the threshold R_rand + f·(R_scratch_final − R_rand).

    Returns:
        `{"threshold_fraction": f, "target": {task: {...}}, "source": {task: {...}}}`, plain
        floats, ints, strings and None (NaN where a metric is undefined; `json_safe` turns
        those into None before writing JSON). Target entries: random_return, first_return,
        scratch_first_return, jumpstart, final_return, scratch_final_return, asymptotic_gain,
        transfer_ratio (NaN when undefined), transfer_ratio_note (None, or why the ratio is
        undefined, e.g. `SCRATCH_DID_NOT_LEARN`), area_difference (∫(R − R_scratch) per step
        over the common step range: the mean return gained over scratch), scratch_area
        (∫(R_scratch − R_rand) per step), return_scale (the largest |R − R_rand| of either
        curve there), threshold_return (NaN when undefined), threshold_note (None, or
        `NO_THRESHOLD`), time_to_threshold_steps, scratch_time_to_threshold_steps (None: never
        reached, or the threshold is undefined). Source entries (source tasks
        with eval returns in the run): random_return, return_before, return_after, forgetting,
        forgetting_normalised.

    Raises:
        ReportError: a target task has no eval curve in either run, or no random-policy return.
    """
    return {
        "threshold_fraction": float(threshold_fraction),
        "target": {
            task: _target_metrics(task, run, scratch, threshold_fraction)
            for task in run.target_tasks
        },
        "source": {
            task: source_metrics(run.curves[task], run.random.get(task, math.nan))
            for task in run.source_tasks
            if run.curves.get(task)
        },
    }


def source_metrics(curve: Series, random_return: float) -> dict[str, float]:
    """Forgetting of a source task over a run: its first eval against its last.

    Args:
        curve: the task's [(step, eval return), ...] in the run, in step order.
        random_return: the task's random-policy return (nan when unknown).

    Returns:
        random_return, return_before (first eval), return_after (last eval), forgetting
        (before − after; positive: forgot) and forgetting_normalised (forgetting divided by
        before − random; nan when that is <= 0 or unknown).
    """
    before, after = float(curve[0][1]), float(curve[-1][1])
    gained = before - float(random_return)
    return {
        "random_return": float(random_return),
        "return_before": before,
        "return_after": after,
        "forgetting": before - after,
        "forgetting_normalised": (before - after) / gained if gained > 0 else math.nan,
    }


@dataclass(frozen=True)
class AreaComparison:
    """Two curves' areas above the random return over the steps both cover, per step.

    Attributes:
        area: ∫(curve − random) / (end − start): the curve's mean return above random.
        baseline_area: the same for the baseline (scratch).
        scale: the largest |return − random| of either curve at the steps in that range (the
            interpolants' extremes): the returns' scale the tolerance is relative to.
        ratio: area / baseline_area; NaN when undefined (see `note`).
        note: None, or why the ratio is undefined: `SCRATCH_DID_NOT_LEARN` when baseline_area
            <= tolerance · scale (also when it is negative, or both curves sit at random),
            `NO_COMMON_STEPS` when the range is a single step or empty (then all are NaN).
    """

    area: float
    baseline_area: float
    scale: float
    ratio: float
    note: str | None

    @property
    def difference(self) -> float:
        """area − baseline_area = ∫(curve − baseline) per step: the mean return gained."""
        return self.area - self.baseline_area


def compare_areas(
    curve: Series,
    baseline: Series,
    random_return: float,
    tolerance: float = UNDEFINED_TOLERANCE,
) -> AreaComparison:
    """Areas above random of a curve and its baseline over the steps both cover, per step.

    Each curve is linearly interpolated between its eval points, so where the two were
    evaluated at different steps the areas are still over the same step range; the trapezoid
    rule on the union of their steps integrates both interpolants exactly.

    Args:
        curve: [(step, return), ...] in step order.
        baseline: the same for the baseline (scratch).
        random_return: the zero of both areas.
        tolerance: the baseline's area per step counts as zero (the ratio is undefined) when
            it is at most `tolerance` times the return scale.

    Returns:
        The comparison (see `AreaComparison`).
    """
    start, end = max(curve[0][0], baseline[0][0]), min(curve[-1][0], baseline[-1][0])
    if end <= start:
        return AreaComparison(math.nan, math.nan, math.nan, math.nan, NO_COMMON_STEPS)
    inner = [step for step, _ in [*curve, *baseline] if start < step < end]
    steps = np.unique(np.array([start, end, *inner], dtype=np.float64))
    heights = [_heights(points, steps, random_return) for points in (curve, baseline)]
    area, baseline_area = (_mean_area(h, steps) for h in heights)
    scale = float(max(np.max(np.abs(h)) for h in heights))
    if not baseline_area > tolerance * scale:  # also catches nan
        return AreaComparison(area, baseline_area, scale, math.nan, SCRATCH_DID_NOT_LEARN)
    return AreaComparison(area, baseline_area, scale, area / baseline_area, None)


def area_ratio(
    curve: Series,
    baseline: Series,
    random_return: float,
    tolerance: float = UNDEFINED_TOLERANCE,
) -> float:
    """∫(curve − random) / ∫(baseline − random) over the steps both curves cover.

    Args:
        curve: [(step, return), ...] in step order.
        baseline: the same for the baseline (scratch).
        random_return: the zero of both areas.
        tolerance: as in `compare_areas`.

    Returns:
        The ratio; nan when it is undefined: the baseline's area is at most `tolerance` times
        the return scale (scratch did not learn), or the common step range is a single step
        or empty (see `compare_areas`).
    """
    return compare_areas(curve, baseline, random_return, tolerance).ratio


def steps_to_threshold(curve: Series, threshold: float) -> int | None:
    """The first eval step whose return is >= `threshold`, or None if none is.

    Args:
        curve: [(step, return), ...] in step order.
        threshold: the return to reach.

    Returns:
        The step (env steps per task), or None.
    """
    return next((int(step) for step, value in curve if value >= threshold), None)


def aggregate_seeds(
    pairs: Sequence[tuple[TransferRun, TransferRun]],
    threshold_fraction: float = THRESHOLD_FRACTION,
    confidence: float = 0.95,
    resamples: int = 10_000,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Transfer metrics over seeds: the mean of each and its bootstrap interval.

    Args:
        pairs: (transfer run, scratch run) of the same seed, one pair per seed.
        threshold_fraction: as in `transfer_metrics`.
        confidence: the intervals' coverage.
        resamples: bootstrap resamples per interval.
        rng: the generator the bootstrap draws from; default `np.random.default_rng(0)`.

    Returns:
        `{"seeds": n, "threshold_fraction", "confidence", "target": {task: {metric: stat}},
        "source": {task: {metric: stat}}}`, a stat being `{"mean", "low", "high", "n"}` (n: seeds
        with a finite value; NaNs are left out). The time-to-threshold stats are over the seeds
        that reached the threshold, with `"reached"` (how many did), `"seeds"` instead of n and
        `"undefined"` (in how many the threshold was undefined: scratch ended at random).
        The transfer-ratio stat also has `"undefined"`: how many seeds' ratios were undefined
        and left out (scratch did not learn there; their area difference still counts). Each
        target task also has `"verdict"` (see `verdict`) from its transfer-ratio interval and
        `"ratio_note"`: None, or a sentence saying how many seeds were left out and why.

    Raises:
        ReportError: no pairs, or the runs do not all have the same target tasks.
    """
    if not pairs:
        raise ReportError("aggregate_seeds needs at least one (transfer run, scratch run) pair")
    _check_same_targets([run for run, _ in pairs])
    per_seed = [transfer_metrics(run, scratch, threshold_fraction) for run, scratch in pairs]
    rng = np.random.default_rng(0) if rng is None else rng
    settings = {"confidence": confidence, "resamples": resamples, "rng": rng}
    target = {
        task: _aggregate_target([m["target"][task] for m in per_seed], settings)
        for task in per_seed[0]["target"]
    }
    source_tasks = dict.fromkeys(task for m in per_seed for task in m["source"])
    source = {
        task: _aggregate_values(
            [m["source"][task] for m in per_seed if task in m["source"]], settings
        )
        for task in source_tasks
    }
    return {
        "seeds": len(pairs),
        "threshold_fraction": float(threshold_fraction),
        "confidence": float(confidence),
        "target": target,
        "source": source,
    }


def verdict(ratio_low: float, ratio_high: float, undefined_seeds: int = 0) -> str:
    """Reads a transfer-ratio interval: is the transfer clearly positive or negative?

    Args:
        ratio_low: the interval's lower end.
        ratio_high: its upper end.
        undefined_seeds: how many seeds' ratios were undefined because scratch did not learn
            (the interval is over the others).

    Returns:
        "positive transfer" (low > 1), "negative transfer" (high < 1), "no clear transfer
        (interval includes 1)"; when an end is nan, `SCRATCH_DID_NOT_LEARN` with a pointer to
        the area difference if `undefined_seeds` > 0, else "undetermined (no finite transfer
        ratio)".
    """
    if math.isnan(ratio_low) or math.isnan(ratio_high):
        if undefined_seeds > 0:
            seeds = "seed" if undefined_seeds == 1 else "seeds"
            return (
                f"{SCRATCH_DID_NOT_LEARN} in {undefined_seeds} {seeds}: no transfer ratio; "
                "read the area difference (mean return gained over scratch)"
            )
        return "undetermined (no finite transfer ratio)"
    if ratio_low > 1.0:
        return "positive transfer"
    if ratio_high < 1.0:
        return "negative transfer"
    return "no clear transfer (interval includes 1)"


def area_verdict(low: float, high: float) -> str:
    """Reads an area-difference interval (the mean return gained over scratch), for targets
    where scratch did not learn and the ratio is undefined.

    Returns:
        "positive transfer (area difference > 0)" (low > 0), "negative transfer (area
        difference < 0)" (high < 0), "no clear transfer (area difference interval includes 0)",
        or "undetermined (no finite area difference)" when an end is nan.
    """
    if math.isnan(low) or math.isnan(high):
        return "undetermined (no finite area difference)"
    if low > 0.0:
        return "positive transfer (area difference > 0)"
    if high < 0.0:
        return "negative transfer (area difference < 0)"
    return "no clear transfer (area difference interval includes 0)"


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (an undefined metric) replaced by None, recursively
    through dicts, lists and tuples, so `json.dumps` writes null rather than NaN.

    Args:
        value: the metrics of `transfer_metrics` or `aggregate_seeds`, or any part of them.

    Returns:
        The same structure (tuples become lists); other values unchanged.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def format_transfer_report(
    run_dir: str | Path,
    baseline_dir: str | Path | None = None,
    threshold_fraction: float = THRESHOLD_FRACTION,
) -> str:
    """A plain-text report of a transfer run, against its scratch baseline when given.

    With a baseline: per target task (one column each) the returns, jumpstart, asymptotic
    gain, transfer ratio and time to threshold of both runs. Without: the target tasks' first
    and final returns. Then, in both cases, the source tasks' returns before and after.

    Args:
        run_dir: the transfer run's folder.
        baseline_dir: the scratch run's folder (same target tasks and seed), or None.
        threshold_fraction: as in `transfer_metrics`.

    Returns:
        The report (sections separated by a blank line).

    Raises:
        RunFolderError: a folder lacks metrics.csv or summary.json.
        ReportError: a folder is not a transfer run, or the baseline lacks a target task.
    """
    run = read_transfer_run(run_dir)
    scratch = None if baseline_dir is None else read_transfer_run(baseline_dir)
    sections = [_header(run, scratch)]
    if scratch is None:
        sections.append(_target_block_alone(run))
    else:
        metrics = transfer_metrics(run, scratch, threshold_fraction)
        sections.append(_target_block(metrics["target"], threshold_fraction))
        sections.append(_undefined_ratio_notes(metrics["target"]))
    sections.append(_source_block(run))
    return "\n\n".join(section for section in sections if section)


# --- reading -----------------------------------------------------------------------------------


def _transfer_info(summary: Mapping[str, Any], run_dir: str | Path) -> Mapping[str, Any]:
    info = summary.get("transfer")
    if not isinstance(info, Mapping):
        raise ReportError(
            f"{run_dir} is not a transfer run: its {SUMMARY_FILE} has no 'transfer' entry. "
            "Give the folder of a `multiq transfer` run (its scratch baseline too, with "
            "--baseline); report a plain training run without --baseline"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in info]
    if missing:
        raise ReportError(f"{run_dir}/{SUMMARY_FILE}: 'transfer' lacks {', '.join(missing)}")
    for key in ("source_tasks", "target_tasks"):
        if not isinstance(info[key], list) or not all(isinstance(t, str) for t in info[key]):
            raise ReportError(
                f"{run_dir}/{SUMMARY_FILE}: transfer.{key} must be a list of task names, "
                f"got {info[key]!r}"
            )
    return info


# --- metrics -----------------------------------------------------------------------------------


def _target_metrics(
    task: str, run: TransferRun, scratch: TransferRun, threshold_fraction: float
) -> dict[str, float | int | str | None]:
    curve = _curve(run, task, "transfer run")
    baseline = _curve(scratch, task, "scratch run")
    random = _target_random(task, run, scratch)
    first, final = float(curve[0][1]), float(curve[-1][1])
    scratch_first, scratch_final = float(baseline[0][1]), float(baseline[-1][1])
    areas = compare_areas(curve, baseline, random)
    threshold_note = None
    threshold = random + threshold_fraction * (scratch_final - random)
    if not scratch_final - random > UNDEFINED_TOLERANCE * areas.scale:  # also catches nan
        threshold_note, threshold = NO_THRESHOLD, math.nan
    return {
        "random_return": random,
        "first_return": first,
        "scratch_first_return": scratch_first,
        "jumpstart": first - scratch_first,
        "final_return": final,
        "scratch_final_return": scratch_final,
        "asymptotic_gain": final - scratch_final,
        "transfer_ratio": areas.ratio,
        "transfer_ratio_note": areas.note,
        "area_difference": areas.difference,
        "scratch_area": areas.baseline_area,
        "return_scale": areas.scale,
        "threshold_return": threshold,
        "threshold_note": threshold_note,
        "time_to_threshold_steps": steps_to_threshold(curve, threshold),  # None at a NaN
        "scratch_time_to_threshold_steps": steps_to_threshold(baseline, threshold),
    }


def _curve(run: TransferRun, task: str, role: str) -> Series:
    curve = run.curves.get(task)
    if not curve:
        raise ReportError(
            f"the {role} {run.run_dir} has no {return_key(task)} rows in its metrics.csv: the "
            f"baseline must be the scratch run of the same target tasks (target task {task!r})"
        )
    return curve


def _target_random(task: str, run: TransferRun, scratch: TransferRun) -> float:
    """Scratch's random-policy return for `task` (the run's if scratch has none)."""
    value = scratch.random.get(task, run.random.get(task))
    if value is None:
        raise ReportError(
            f"no random-policy return for target task {task!r} in {scratch.run_dir} or "
            f"{run.run_dir}: neither metrics.csv ({random_return_key(task)}) nor summary.json "
            f"(tasks.{task}.random_return_mean) has one"
        )
    return value


def _heights(curve: Series, steps: np.ndarray, random_return: float) -> np.ndarray:
    """[S] (curve − random_return), the curve interpolated linearly at `steps` ([S])."""
    points = np.array(curve, dtype=np.float64)
    return np.interp(steps, points[:, 0], points[:, 1]) - random_return


def _mean_area(heights: np.ndarray, steps: np.ndarray) -> float:
    """Trapezoid area under `heights` ([S]) at `steps` ([S], >= 2 distinct), per step."""
    area = np.sum(np.diff(steps) * (heights[1:] + heights[:-1]) / 2.0)
    return float(area / (steps[-1] - steps[0]))


# --- aggregation -------------------------------------------------------------------------------


def _check_same_targets(runs: Sequence[TransferRun]) -> None:
    targets = {tuple(sorted(run.target_tasks)) for run in runs}
    if len(targets) > 1:
        listed = "; ".join(f"{run.run_dir}: {', '.join(run.target_tasks)}" for run in runs)
        raise ReportError(f"the seeds' transfer runs have different target tasks ({listed})")


def _aggregate_target(per_seed: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    steps_keys = ("time_to_threshold_steps", "scratch_time_to_threshold_steps")
    skipped = (*steps_keys, "transfer_ratio_note", "threshold_note")
    values = [{k: v for k, v in m.items() if k not in skipped} for m in per_seed]
    stats: dict[str, Any] = _aggregate_values(values, settings)
    no_threshold = sum(1 for m in per_seed if m["threshold_note"] is not None)
    for key in steps_keys:
        reached = [float(m[key]) for m in per_seed if m[key] is not None]
        mean, low, high = bootstrap_ci(reached, **settings)
        stats[key] = {
            "mean": mean,
            "low": low,
            "high": high,
            "reached": len(reached),
            "seeds": len(per_seed),
            "undefined": no_threshold,
        }
    undefined = sum(1 for m in per_seed if m["transfer_ratio_note"] == SCRATCH_DID_NOT_LEARN)
    ratio = stats["transfer_ratio"]
    ratio["undefined"] = undefined
    stats["verdict"] = verdict(ratio["low"], ratio["high"], undefined)
    stats["ratio_note"] = _ratio_note(undefined, len(per_seed))
    return stats


def _ratio_note(undefined: int, seeds: int) -> str | None:
    if undefined == 0:
        return None
    return (
        f"transfer ratio over {seeds - undefined} of {seeds} seeds: {undefined} left out, "
        f"{SCRATCH_DID_NOT_LEARN}"
    )


def _aggregate_values(
    per_seed: list[dict[str, float]], settings: dict[str, Any]
) -> dict[str, dict[str, float]]:
    return {key: _stat([m[key] for m in per_seed], settings) for key in per_seed[0]}


def _stat(values: list[float], settings: dict[str, Any]) -> dict[str, Any]:
    mean, low, high = bootstrap_ci(values, **settings)
    finite = sum(1 for value in values if not math.isnan(value))
    return {"mean": mean, "low": low, "high": high, "n": finite}


# --- formatting --------------------------------------------------------------------------------


def _header(run: TransferRun, scratch: TransferRun | None) -> str:
    lines = [f"transfer run: {run.run_dir} (mode {run.mode}, source {run.source or MISSING})"]
    if scratch is None:
        lines.append(
            "baseline: none (--baseline SCRATCH_RUN adds jumpstart, transfer ratio and time "
            "to threshold)"
        )
    else:
        lines.append(f"baseline: {scratch.run_dir} (mode {scratch.mode})")
        if scratch.mode != SCRATCH_MODE:
            lines.append(f"note: the baseline's mode is {scratch.mode!r}, not {SCRATCH_MODE!r}")
    return "\n".join(lines)


def _target_block(target: Mapping[str, Mapping[str, Any]], threshold_fraction: float) -> str:
    rows: list[tuple[str, str, Callable[[Any], str]]] = [
        ("random return", "random_return", format_mean_std),
        ("first return", "first_return", format_mean_std),
        ("scratch first return", "scratch_first_return", format_mean_std),
        ("jumpstart", "jumpstart", format_mean_std),
        ("final return", "final_return", format_mean_std),
        ("scratch final return", "scratch_final_return", format_mean_std),
        ("asymptotic gain", "asymptotic_gain", format_mean_std),
        ("transfer ratio (area)", "transfer_ratio", _format_ratio),
        ("area difference (per step)", "area_difference", format_mean_std),
        (f"threshold return (f={threshold_fraction:g})", "threshold_return", format_mean_std),
        ("steps to threshold", "time_to_threshold_steps", _format_steps),
        ("scratch steps to threshold", "scratch_time_to_threshold_steps", _format_steps),
    ]
    cells = [
        (label, [_cell(target[task], key, fmt) for task in target]) for label, key, fmt in rows
    ]
    return _block("target task (vs scratch)", list(target), cells)


def _cell(metrics: Mapping[str, Any], key: str, fmt: Callable[[Any], str]) -> str:
    """The formatted metric, or the threshold's note where the threshold is undefined."""
    note = metrics.get("threshold_note")
    if note and (key == "threshold_return" or key.endswith("time_to_threshold_steps")):
        return note
    return fmt(metrics[key])


def _target_block_alone(run: TransferRun) -> str:
    curves = [run.curves.get(task) for task in run.target_tasks]
    cells = [
        ("random return", [format_mean_std(run.random.get(task)) for task in run.target_tasks]),
        ("first return", [format_mean_std(c[0][1] if c else None) for c in curves]),
        ("final return", [format_mean_std(c[-1][1] if c else None) for c in curves]),
    ]
    return _block("target task", run.target_tasks, cells)


def _source_block(run: TransferRun) -> str:
    if not run.source_tasks:
        return ""
    tasks = [task for task in run.source_tasks if run.curves.get(task)]
    if not tasks:
        return f"source tasks ({', '.join(run.source_tasks)}): no eval returns in this run"
    metrics = [source_metrics(run.curves[t], run.random.get(t, math.nan)) for t in tasks]
    rows = [
        ("random return", "random_return"),
        ("return before", "return_before"),
        ("return after", "return_after"),
        ("forgetting (before - after)", "forgetting"),
        ("forgetting / (before - random)", "forgetting_normalised"),
    ]
    cells = [(label, [format_mean_std(m[key]) for m in metrics]) for label, key in rows]
    return _block("source task", tasks, cells)


def _undefined_ratio_notes(target: Mapping[str, Mapping[str, Any]]) -> str:
    """A line per target task whose transfer ratio is undefined: why, and what to read."""
    lines = []
    for task, metrics in target.items():
        note = metrics["transfer_ratio_note"]
        if note == SCRATCH_DID_NOT_LEARN:
            lines.append(
                f"{task}: transfer ratio {note}: scratch's mean return above random "
                f"({metrics['scratch_area']:.3g}) is at most {UNDEFINED_TOLERANCE:.0%} of the "
                f"return scale ({metrics['return_scale']:.3g}). The area difference "
                f"{metrics['area_difference']:+.2f} is the mean return gained over scratch."
            )
        elif note is not None:
            lines.append(f"{task}: transfer ratio {note}")
    return "\n".join(lines)


def _format_ratio(value: float) -> str:
    return "undefined" if math.isnan(value) else format_mean_std(value)


def _format_steps(steps: int | None) -> str:
    return NOT_REACHED if steps is None else f"{steps:,}"


def _block(title: str, tasks: list[str], cells: list[tuple[str, list[str]]]) -> str:
    """An aligned table: a row per metric, a column per task (labels left, numbers right)."""
    return aligned_table([(title, *tasks), *((label, *values) for label, values in cells)])
