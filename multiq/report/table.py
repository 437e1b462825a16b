"""Final-results tables (plain text and markdown) from a run's summary.json."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = ("task", "random return", "final return (mean ± std)", "episodes")
MISSING = "-"


def format_table(summary: Mapping[str, Any]) -> str:
    """An aligned plain-text table: one row per task, then a line with steps and wall time.

    Args:
        summary: as returned by `read_summary`.

    Returns:
        The table; the task column is left-aligned, the numbers right-aligned.
    """
    return "\n".join([aligned_table([COLUMNS, *_rows(summary)]), "", _footer(summary)])


def format_markdown_table(summary: Mapping[str, Any]) -> str:
    """The same data as `format_table`, as a markdown table followed by the footer line.

    Args:
        summary: as returned by `read_summary`.

    Returns:
        The markdown text.
    """
    lines = [
        markdown_line(COLUMNS),
        markdown_line((":---", "---:", "---:", "---:")),
        *(markdown_line(row) for row in _rows(summary)),
    ]
    return "\n".join([*lines, "", _footer(summary)])


def format_mean_std(mean: Any, std: Any = None) -> str:
    """`5.20 ± 1.10`, or just `5.20` without a std, or `-` without a mean.

    Args:
        mean: a number or None.
        std: a number or None.

    Returns:
        The formatted text (non-finite numbers show as `nan` / `inf`).
    """
    if mean is None:
        return MISSING
    if std is None:
        return f"{float(mean):.2f}"
    return f"{float(mean):.2f} ± {float(std):.2f}"


def format_duration(seconds: Any) -> str:
    """`8m 32s`, `1h 02m 03s` or `45.2s`; `-` when unknown.

    Args:
        seconds: a number of seconds or None.

    Returns:
        The formatted duration.
    """
    if seconds is None or not math.isfinite(float(seconds)):
        return MISSING
    if float(seconds) < 60:
        return f"{float(seconds):.1f}s"
    minutes, secs = divmod(round(float(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _rows(summary: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    return [_row(name, task) for name, task in summary.get("tasks", {}).items()]


def _row(name: str, task: Mapping[str, Any]) -> tuple[str, str, str, str]:
    episodes = task.get("episodes")
    return (
        str(name),
        format_mean_std(task.get("random_return_mean"), task.get("random_return_std")),
        format_mean_std(task.get("return_mean"), task.get("return_std")),
        MISSING if episodes is None else str(episodes),
    )


def _footer(summary: Mapping[str, Any]) -> str:
    parts = [
        f"env steps per task: {_format_count(summary.get('env_steps_per_task'))}",
        f"wall time: {format_duration(summary.get('wall_time_s'))}",
    ]
    if summary.get("env_steps_per_s") is not None:
        parts.append(f"env steps/s: {_format_count(summary['env_steps_per_s'])}")
    return " | ".join(parts)


def _format_count(value: Any) -> str:
    if value is None or not math.isfinite(float(value)):
        return MISSING
    return f"{float(value):,.0f}"


def aligned_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of text cells as a plain-text table, the first row a header underlined with
    dashes: the first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = [_aligned_line(row, widths) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _aligned_line(row: Sequence[str], widths: list[int]) -> str:
    cells = [row[0].ljust(widths[0])]
    cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
    return "  ".join(cells).rstrip()


def markdown_line(row: tuple[str, ...]) -> str:
    """One markdown table row of `row`'s cells (a `|` inside a cell is escaped)."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
