"""Reports from a run folder's files (metrics.csv, summary.json): curves, routing, the
gradient-conflict map, tables, transfer metrics, continual-learning metrics.

Reads only files; never imports torch, so it runs anywhere matplotlib does.
"""

from __future__ import annotations

from pathlib import Path

from multiq.report.conflicts import (
    ConflictMap,
    PairConflict,
    build_conflict_figure,
    conflict_series,
    format_conflicts,
    mean_shares,
    most_conflicting,
    plot_conflict_comparison,
    plot_conflicts,
    read_conflicts,
)
from multiq.report.continual import (
    ContinualMatrix,
    ContinualMetrics,
    aggregate_continual,
    continual_metrics,
    evaluation_matrix,
    format_continual_report,
    normalise,
    plot_matrix,
    plot_sequence_curves,
    reference_curves,
    reference_returns,
)
from multiq.report.curves import build_figure, plot_curves
from multiq.report.metrics import (
    ReportError,
    RunFolderError,
    Series,
    read_metrics,
    read_summary,
    task_names,
)
from multiq.report.routing import plot_routing, routing_weights
from multiq.report.stats import bootstrap_ci
from multiq.report.table import format_markdown_table, format_table
from multiq.report.transfer import (
    TransferRun,
    aggregate_seeds,
    area_verdict,
    format_transfer_report,
    read_transfer_run,
    transfer_metrics,
    verdict,
)
from multiq.runio.layout import (
    CONFLICTS_FILE,
    CURVES_FILE,
    MATRIX_FILE,
    METRICS_FILE,
    ROUTING_FILE,
    SEQUENCE_FILE,
    SUMMARY_FILE,
)

__all__ = [
    "CONFLICTS_FILE",
    "CURVES_FILE",
    "MATRIX_FILE",
    "METRICS_FILE",
    "ROUTING_FILE",
    "SEQUENCE_FILE",
    "SUMMARY_FILE",
    "ConflictMap",
    "ContinualMatrix",
    "ContinualMetrics",
    "PairConflict",
    "ReportError",
    "RunFolderError",
    "Series",
    "TransferRun",
    "aggregate_continual",
    "aggregate_seeds",
    "area_verdict",
    "bootstrap_ci",
    "build_conflict_figure",
    "build_figure",
    "conflict_series",
    "continual_metrics",
    "evaluation_matrix",
    "format_conflicts",
    "format_continual_report",
    "format_markdown_table",
    "format_table",
    "format_transfer_report",
    "mean_shares",
    "most_conflicting",
    "normalise",
    "plot_conflict_comparison",
    "plot_conflicts",
    "plot_curves",
    "plot_matrix",
    "plot_routing",
    "plot_sequence_curves",
    "read_conflicts",
    "read_metrics",
    "read_summary",
    "read_transfer_run",
    "reference_curves",
    "reference_returns",
    "routing_weights",
    "task_names",
    "transfer_metrics",
    "verdict",
    "write_report",
]


def write_report(run_dir: str | Path) -> tuple[str, Path]:
    """Writes `RUN_DIR/curves.png` and returns the results table with the PNG's path.

    Args:
        run_dir: the run folder (holds metrics.csv and summary.json).

    Returns:
        (plain-text results table, path of curves.png).

    Raises:
        RunFolderError: metrics.csv or summary.json is missing.
        ReportError: a file is malformed or metrics.csv holds no eval return yet.
    """
    table = format_table(read_summary(run_dir))
    return table, plot_curves(run_dir)
