"""Continual-learning matrix, metrics, plots and report from hand-built run folders.

The run: tasks A, B, C trained one after another, 100 steps each, evaluated every 50 steps
(no evaluation at step 0). Random returns A 0, B 10, C -5; references A 10, B 30, C 15, so
p_A = R / 10, p_B = (R - 10) / 20, p_C = (R + 5) / 20.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from multiq.report import (
    MATRIX_FILE,
    SEQUENCE_FILE,
    ContinualMatrix,
    ReportError,
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
from multiq.report.continual import window_auc

HEADER = "step,wall_time_s,key,value\n"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Curves = dict[str, list[tuple[int, float]]]

CURVES: Curves = {
    "A": [(50, 4.0), (100, 8.0), (150, 6.0), (200, 5.0), (250, 4.0), (300, 2.0)],
    "B": [(50, 10.0), (100, 14.0), (150, 20.0), (200, 26.0), (250, 22.0), (300, 18.0)],
    "C": [(50, -5.0), (100, -1.0), (150, 3.0), (200, 5.0), (250, 11.0), (300, 11.0)],
}
RANDOM = {"A": 0.0, "B": 10.0, "C": -5.0}
PHASES = [("learn-A", ["A"], 0, 100), ("learn-B", ["B"], 100, 200), ("learn-C", ["C"], 200, 300)]
REFERENCE_CURVES: Curves = {
    "A": [(50, 6.0), (100, 10.0)],
    "B": [(50, 20.0), (100, 30.0), (150, 30.0)],  # longer than a phase: cut at 100
    "C": [(25, 0.0), (100, 15.0)],
}

# Hand-computed from the numbers above.
P_MATRIX = [[0.8, 0.2, 0.2], [0.5, 0.8, 0.5], [0.2, 0.4, 0.8]]
# AUC: A (0 at step 0) 10 + 30 = 40 over 100; B 17.5 + 32.5 = 50; C 32.5 + 40 = 72.5.
AUC = {"A": 0.4, "B": 0.5, "C": 0.725}
# Reference AUC: A 15 + 40 = 55; B 12.5 + 37.5 = 50; C 3.125 + 46.875 = 50 (over 100).
REFERENCE_AUC = {"A": 0.55, "B": 0.5, "C": 0.5}
FT = {"A": (0.4 - 0.55) / 0.45, "B": 0.0, "C": (0.725 - 0.5) / 0.5}


def _write_run(
    run_dir: Path,
    curves: Curves,
    phases: list[tuple[str, list[str], int, int]] | None = None,
    random: dict[str, float] | None = None,
) -> Path:
    """Writes metrics.csv (random returns at step 0, then eval returns) and summary.json."""
    run_dir.mkdir(parents=True)
    rows = [f"0,0.0,task/{t}/random_return,{v}\n" for t, v in (random or {}).items()]
    rows += [
        f"{step},{0.01 * step},task/{task}/return,{value}\n"
        for task, points in curves.items()
        for step, value in points
    ]
    (run_dir / "metrics.csv").write_text(HEADER + "".join(rows))
    summary: dict[str, Any] = {
        "tasks": {t: {"return_mean": points[-1][1]} for t, points in curves.items() if points},
        "phases": [
            {
                "name": name,
                "tasks": tasks,
                "start_step": start,
                "end_step": end,
                "steps_per_task": end - start,
                "trainable": ["*"],
                "terms": [],
            }
            for name, tasks, start, end in (phases or [])
        ],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _continual(tmp_path: Path, curves: Curves = CURVES) -> Path:
    return _write_run(tmp_path / "continual", curves, PHASES, RANDOM)


def _references(tmp_path: Path, curves: Curves = REFERENCE_CURVES) -> list[Path]:
    return [
        _write_run(tmp_path / f"ref-{task}", {task: curve}, [("train", [task], 0, curve[-1][0])])
        for task, curve in curves.items()
    ]


# --- the matrix --------------------------------------------------------------------------------


def test_evaluation_matrix_from_rows(tmp_path: Path) -> None:
    # D is held from the start and evaluated, never trained: it comes after the sequence.
    # The rows name tasks in the order D, C, B, A; the sequence order comes from the phases.
    curves = {"D": [(100, 1.0), (200, 2.0), (300, 3.0)], **dict(reversed(CURVES.items()))}
    matrix = evaluation_matrix(_write_run(tmp_path / "run", curves, PHASES, RANDOM))
    assert matrix.phases == ["learn-A", "learn-B", "learn-C"]
    assert matrix.phase_steps == [(0, 100), (100, 200), (200, 300)]
    assert matrix.tasks == ["A", "B", "C", "D"]
    assert matrix.sequence == ["A", "B", "C"]
    assert matrix.trained_in == {"A": 0, "B": 1, "C": 2}
    expected = [[8.0, 14.0, -1.0, 1.0], [5.0, 26.0, 5.0, 2.0], [2.0, 18.0, 11.0, 3.0]]
    np.testing.assert_array_equal(matrix.returns, expected)
    np.testing.assert_array_equal(matrix.random, [0.0, 10.0, -5.0, np.nan])
    assert matrix.curves["B"] == CURVES["B"]
    assert matrix.notes == []


def test_a_task_missing_at_a_phase_end_is_nan_with_a_note(tmp_path: Path) -> None:
    # C joins the run at its phase: no evaluation at the end of learn-A.
    curves = {**CURVES, "C": [(200, 5.0), (250, 11.0), (300, 11.0)]}
    matrix = evaluation_matrix(_write_run(tmp_path / "run", curves, PHASES, RANDOM))
    assert math.isnan(matrix.returns[0, 2])
    assert matrix.returns[1, 2] == 5.0
    assert matrix.notes == [
        "task C has no evaluation at the end of phase(s) learn-A: those cells are NaN"
    ]


def test_no_evaluation_at_a_phase_end_raises(tmp_path: Path) -> None:
    # Stopped inside learn-C: the last evaluation is at 250, the phase log says 270.
    curves = {task: points[:-1] for task, points in CURVES.items()}
    phases = [*PHASES[:2], ("learn-C", ["C"], 200, 270)]
    run_dir = _write_run(tmp_path / "run", curves, phases, RANDOM)
    with pytest.raises(ReportError, match="no evaluation at the end of phase 'learn-C'") as info:
        evaluation_matrix(run_dir)
    assert str(run_dir / "metrics.csv") in str(info.value)
    assert "step 270" in str(info.value)


def test_a_run_without_phases_raises(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "run", CURVES, phases=None, random=RANDOM)
    with pytest.raises(ReportError, match="has no phases") as info:
        evaluation_matrix(run_dir)
    assert str(run_dir / "summary.json") in str(info.value)


def test_a_malformed_phase_raises(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "run", CURVES, PHASES, RANDOM)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["phases"][1]["end_step"] = "200"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ReportError, match=r"phases\[1\]\.end_step must be an integer"):
        evaluation_matrix(run_dir)


# --- normalisation and references --------------------------------------------------------------


def test_normalise_and_nan_where_reference_equals_random() -> None:
    p = normalise([[5.0, 20.0, 3.0], [10.0, 10.0, 3.0]], [0.0, 10.0, 3.0], [10.0, 30.0, 3.0])
    np.testing.assert_allclose(p, [[0.5, 0.5, np.nan], [1.0, 0.0, np.nan]])
    assert math.isnan(normalise([1.0], [math.nan], [2.0])[0])


def test_reference_returns_and_curves(tmp_path: Path) -> None:
    references = _references(tmp_path)
    assert reference_returns(references, ["A", "B", "C"]) == {"A": 10.0, "B": 30.0, "C": 15.0}
    assert reference_curves(references, ["A", "B", "C"]) == REFERENCE_CURVES


def test_a_reference_of_another_task_is_refused(tmp_path: Path) -> None:
    other = _write_run(tmp_path / "ref-Z", {"Z": [(100, 1.0)]}, [("train", ["Z"], 0, 100)])
    with pytest.raises(ReportError, match="holds task\\(s\\) Z") as info:
        reference_returns([*_references(tmp_path), other], ["A", "B", "C"])
    assert str(other) in str(info.value)


def test_two_references_of_one_task_are_refused(tmp_path: Path) -> None:
    first = _write_run(tmp_path / "one", {"A": [(100, 1.0)]}, [("train", ["A"], 0, 100)])
    second = _write_run(tmp_path / "two", {"A": [(100, 2.0)]}, [("train", ["A"], 0, 100)])
    with pytest.raises(ReportError, match="task A has two references"):
        reference_returns([first, second], ["A"])


# --- the metrics -------------------------------------------------------------------------------


def test_metrics_hand_computed(tmp_path: Path) -> None:
    references = _references(tmp_path)
    matrix = evaluation_matrix(_continual(tmp_path))
    metrics = continual_metrics(matrix, reference_returns(references), reference_curves(references))
    np.testing.assert_allclose(metrics.normalised, P_MATRIX)
    assert metrics.tasks == ["A", "B", "C"]
    assert metrics.final == pytest.approx({"A": 0.2, "B": 0.4, "C": 0.8})
    assert metrics.average_performance == pytest.approx(1.4 / 3)
    # F_A = 0.8 - 0.2, F_B = 0.8 - 0.4; C, trained last, has none.
    assert metrics.forgetting == pytest.approx({"A": 0.6, "B": 0.4})
    assert metrics.forgetting_mean == pytest.approx(0.5)
    assert metrics.auc == pytest.approx(AUC)
    assert metrics.reference_auc == pytest.approx(REFERENCE_AUC)
    assert metrics.forward_transfer == pytest.approx(FT)
    assert metrics.forward_transfer_mean == pytest.approx(sum(FT.values()) / 3)
    assert metrics.notes == []


def test_window_auc() -> None:
    # Evaluated at the window's start: 0.5 then 1.0 -> mean 0.75.
    assert window_auc([(100, 0.5), (200, 1.0)], 100, 200) == pytest.approx(0.75)
    # Points before and after the window are interpolated to its edges: 0.5 at 100, 1.5 at 200.
    assert window_auc([(0, 0.0), (200, 1.0), (400, 2.0)], 100, 300) == pytest.approx(1.0)
    # No evaluation at the start: the curve starts from 0 (random) there.
    assert window_auc([(50, 1.0), (100, 1.0)], 0, 100) == pytest.approx(0.75)
    assert math.isnan(window_auc([(50, 1.0)], 0, 100))  # ends before the window does
    assert math.isnan(window_auc([(0, 1.0), (100, 1.0)], 100, 100))  # empty window
    assert math.isnan(window_auc([(0, 1.0), (50, math.nan), (100, 1.0)], 0, 100))


def test_metrics_nan_handling(tmp_path: Path) -> None:
    # B's reference equals its random return (10); C has no reference; no reference curves.
    matrix = evaluation_matrix(_continual(tmp_path))
    metrics = continual_metrics(matrix, {"A": 10.0, "B": 10.0})
    assert np.isnan(metrics.normalised[:, 1:]).all()
    assert metrics.final["A"] == pytest.approx(0.2)
    assert math.isnan(metrics.final["B"]) and math.isnan(metrics.final["C"])
    assert metrics.average_performance == pytest.approx(0.2)  # over A alone
    assert metrics.forgetting_mean == pytest.approx(0.6)
    assert math.isnan(metrics.forward_transfer_mean)
    notes = "\n".join(metrics.notes)
    assert "task B: the reference return equals the random-policy return (10)" in notes
    assert "task C has no reference run" in notes
    assert "average performance: the mean is over 1 of 3 tasks (B, C NaN)" in notes
    assert "forward transfer needs the reference runs' curves" in notes


def test_a_short_reference_curve_gives_no_forward_transfer(tmp_path: Path) -> None:
    short = {**REFERENCE_CURVES, "A": [(50, 6.0)]}
    references = _references(tmp_path, short)
    matrix = evaluation_matrix(_continual(tmp_path))
    metrics = continual_metrics(
        matrix, {"A": 10.0, "B": 30.0, "C": 15.0}, reference_curves(references)
    )
    assert math.isnan(metrics.forward_transfer["A"])
    assert metrics.forward_transfer["C"] == pytest.approx(FT["C"])
    assert any("curve ends at step 50" in note for note in metrics.notes)


def test_aggregate_continual_over_seeds(tmp_path: Path) -> None:
    references = _references(tmp_path)
    reference, ref_curves = reference_returns(references), reference_curves(references)
    first = continual_metrics(evaluation_matrix(_continual(tmp_path)), reference, ref_curves)
    # A second seed that forgets A fully (p_A = 0 at the end): F_A 0.8, F mean 0.6.
    curves = {**CURVES, "A": [*CURVES["A"][:-1], (300, 0.0)]}
    second_dir = _write_run(tmp_path / "seed1", curves, PHASES, RANDOM)
    second = continual_metrics(evaluation_matrix(second_dir), reference, ref_curves)
    result = aggregate_continual([first, second])
    assert result["seeds"] == 2
    assert result["forgetting"]["A"]["mean"] == pytest.approx(0.7)
    assert result["forgetting_mean"]["mean"] == pytest.approx(0.55)
    low, high = result["forgetting_mean"]["low"], result["forgetting_mean"]["high"]
    assert 0.5 - 1e-9 <= low <= high <= 0.6 + 1e-9
    assert result["forward_transfer"]["B"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 2}
    with pytest.raises(ReportError):
        aggregate_continual([])


# --- plots and the report ----------------------------------------------------------------------


def test_plots_are_written_as_pngs(tmp_path: Path) -> None:
    # C is missing at the first phase end, so the plots draw a NaN cell too.
    curves = {**CURVES, "C": [(200, 5.0), (250, 11.0), (300, 11.0)]}
    matrix: ContinualMatrix = evaluation_matrix(_write_run(tmp_path / "run", curves, PHASES))
    matrix_png, sequence_png = plot_matrix(matrix), plot_sequence_curves(matrix)
    assert matrix_png == tmp_path / "run" / MATRIX_FILE
    assert sequence_png == tmp_path / "run" / SEQUENCE_FILE
    normalised_png = plot_matrix(matrix, tmp_path / "normalised.png", {"A": 10.0, "B": 30.0})
    for path in (matrix_png, sequence_png, normalised_png):
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert not list((tmp_path / "run").glob(".*.tmp"))  # written atomically


def test_report_without_references(tmp_path: Path) -> None:
    report = format_continual_report(_continual(tmp_path))
    assert "| learn-A | **8.00** | 14.00 | -1.00 |" in report
    assert "| learn-B | 5.00 | **26.00** | 5.00 |" in report
    assert "| *random policy* | 0.00 | 10.00 | -5.00 |" in report
    assert "Give single-task reference run folders" in report
    assert "average performance P" not in report


def test_report_with_references(tmp_path: Path) -> None:
    report = format_continual_report(_continual(tmp_path), _references(tmp_path))
    assert "| *reference* | 10.00 | 30.00 | 15.00 |" in report
    assert "| learn-C | 0.20 | 0.40 | **0.80** |" in report
    assert f"average performance P = {1.4 / 3:.2f}" in report
    assert "forgetting F = 0.50" in report
    assert f"forward transfer FT = {sum(FT.values()) / 3:.2f}" in report
    assert "| A | learn-A | 0.20 | 0.60 | 0.40 | 0.55 | -0.33 |" in report
    assert "| C | learn-C | 0.80 | - | 0.72 | 0.50 | 0.45 |" in report
    assert "Notes:" not in report


def test_report_refuses_a_bad_reference(tmp_path: Path) -> None:
    other = _write_run(tmp_path / "ref-Z", {"Z": [(100, 1.0)]}, [("train", ["Z"], 0, 100)])
    with pytest.raises(ReportError, match="ref-Z holds task"):
        format_continual_report(_continual(tmp_path), [other])
