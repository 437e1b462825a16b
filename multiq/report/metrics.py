"""Reading a run folder: metrics.csv (long format) and summary.json.

This module (like the whole `multiq.report` package) never imports torch.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multiq.errors import MultiqError
from multiq.runio import layout as rundir
from multiq.runio.layout import METRICS_FILE, SUMMARY_FILE

# A list, because `_check_header` compares it with the header row that csv.reader returns.
CSV_HEADER = list(rundir.CSV_HEADER)

Series = list[tuple[int, float]]

SUMMARY_NUMBER_KEYS = ("env_steps_per_task", "wall_time_s", "env_steps_per_s")
TASK_NUMBER_KEYS = (
    "return_mean",
    "return_std",
    "episodes",
    "random_return_mean",
    "random_return_std",
)
DAMAGED = "the file is damaged or not from multiq: run the training again or restore the file"


class RunFolderError(MultiqError, FileNotFoundError):
    """A file the report needs is missing from the run folder."""


class ReportError(MultiqError, ValueError):
    """A run folder's files are malformed or hold nothing to report."""


def read_metrics(run_dir: str | Path) -> dict[str, Series]:
    """Reads `RUN_DIR/metrics.csv` into one series per key.

    A resumed run appends to the same file and may log a step again; when a key's step goes
    back, the points logged at or after that step by the earlier session are replaced, so each
    series is sorted by step with one value per step.

    Args:
        run_dir: the run folder.

    Returns:
        key -> [(step, value), ...] in step order; keys in order of first appearance.

    Raises:
        RunFolderError: there is no metrics.csv in the folder.
        ReportError: the file is not UTF-8 text, or its header or a row is malformed.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise RunFolderError(f"no {METRICS_FILE} in {run_dir}: is this a multiq run folder?")
    series: dict[str, Series] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            _check_header(next(reader, None), path)
            for row in filter(None, reader):
                key, step, value = _parse_row(row, path, reader.line_num)
                _append_point(series.setdefault(key, []), step, value)
        except UnicodeDecodeError as err:
            raise ReportError(f"{path} is not UTF-8 text: {err}; {DAMAGED}") from err
        except csv.Error as err:
            raise ReportError(f"{path}, line {reader.line_num}: {err}; {DAMAGED}") from err
    return series


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """Reads `RUN_DIR/summary.json`, which the trainer writes when training ends.

    Args:
        run_dir: the run folder.

    Returns:
        The summary: `{"tasks": {name: {"return_mean", "return_std", "episodes",
        "random_return_mean", "random_return_std"}}, "env_steps_per_task", "task_env_steps"
        ({name: env steps}), "task_schedule", "wall_time_s", "env_steps_per_s"}`.

    Raises:
        RunFolderError: there is no summary.json in the folder.
        ReportError: the file is not UTF-8 text or not a JSON object, or an entry the report
            reads has the wrong type (`tasks` not an object of objects, a number that is not).
    """
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        raise RunFolderError(
            f"no {SUMMARY_FILE} in {run_dir}: the run has not finished (the trainer writes it "
            "at the end) or this is not a multiq run folder"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ReportError(f"{path} is not UTF-8 text: {err}; {DAMAGED}") from err
    except json.JSONDecodeError as err:
        raise ReportError(f"{path} is not valid JSON: {err}; {DAMAGED}") from err
    if not isinstance(summary, dict):
        raise ReportError(
            f"{path} must hold a JSON object, got {type(summary).__name__}; {DAMAGED}"
        )
    _check_summary(summary, path)
    return summary


def task_names(metrics: dict[str, Series]) -> list[str]:
    """Task names that have eval returns (keys `task/<name>/return`), in order of appearance.

    Args:
        metrics: as returned by `read_metrics`.

    Returns:
        The task names.
    """
    prefix, suffix = "task/", "/return"
    return [
        key[len(prefix) : -len(suffix)]
        for key in metrics
        if key.startswith(prefix) and key.endswith(suffix) and len(key) > len(prefix + suffix)
    ]


def random_policy_return(
    name: str, metrics: Mapping[str, Series], summary: Mapping[str, Any] | None
) -> float | None:
    """A task's random-policy return: the last logged `task/<name>/random_return`, else
    summary.json's `random_return_mean`; None when neither is there or finite."""
    logged = metrics.get(rundir.random_return_key(name))
    if logged:
        value = logged[-1][1]
    else:
        value = (summary or {}).get("tasks", {}).get(name, {}).get("random_return_mean")
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _check_summary(summary: dict[str, Any], path: Path) -> None:
    """Refuses entries the report reads with the wrong type, naming the entry."""
    tasks = summary.get("tasks", {})
    if not isinstance(tasks, dict) or not all(isinstance(t, dict) for t in tasks.values()):
        raise ReportError(f"{path}: 'tasks' must map task names to objects; {DAMAGED}")
    numbers = {key: summary.get(key) for key in SUMMARY_NUMBER_KEYS}
    for name, task in tasks.items():
        numbers.update({f"tasks.{name}.{key}": task.get(key) for key in TASK_NUMBER_KEYS})
    for key, value in numbers.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ReportError(f"{path}: {key} must be a number, got {value!r}; {DAMAGED}")


def _check_header(header: list[str] | None, path: Path) -> None:
    if header != CSV_HEADER:
        raise ReportError(f"{path} must start with the header {','.join(CSV_HEADER)}, got {header}")


def _parse_row(row: list[str], path: Path, line: int) -> tuple[str, int, float]:
    try:
        step, _wall_time, key, value = row
        return key, int(step), float(value)
    except ValueError as err:
        raise ReportError(f"{path}, line {line}: malformed row {row}: {err}") from err


def _append_point(points: Series, step: int, value: float) -> None:
    """Appends (step, value), first dropping points at or after `step` (a resumed session)."""
    while points and points[-1][0] >= step:
        points.pop()
    points.append((step, value))
