"""Forgetting in raw returns from a hand-built continual run: per task, its mean, backward
transfer and the share of the gain lost, printed with and without reference runs.

The run: A, B, C trained one after another (100 steps each), evaluated at each phase's end.
Random returns A 0, B 1, C 0. By hand:
- A: 10 after its phase, 4 at the end: forgetting 6, share 6 / (10 - 0) = 0.6;
- B: 21 after its phase, 23 at the end: forgetting -2 (it improved), share -2 / 20 = -0.1;
- C is trained in the last phase: nothing to forget yet.
F_raw = (6 - 2) / 2 = 2, BWT = -2, mean share (0.6 - 0.1) / 2 = 0.25.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from multiq.cli import main
from multiq.report import evaluation_matrix, format_continual_report
from multiq.report.continual import raw_forgetting

HEADER = "step,wall_time_s,key,value\n"
Curves = dict[str, list[tuple[int, float]]]
PHASES = [("learn-A", ["A"], 0, 100), ("learn-B", ["B"], 100, 200), ("learn-C", ["C"], 200, 300)]
CURVES: Curves = {
    "A": [(100, 10.0), (200, 7.0), (300, 4.0)],
    "B": [(100, 1.0), (200, 21.0), (300, 23.0)],
    "C": [(100, 0.0), (200, 0.0), (300, 9.0)],
}
RANDOM = {"A": 0.0, "B": 1.0, "C": 0.0}


def _write_run(
    run_dir: Path,
    curves: Curves,
    phases: list[tuple[str, list[str], int, int]],
    random: dict[str, float],
) -> Path:
    """metrics.csv (random returns at step 0, eval returns) and summary.json with phases."""
    run_dir.mkdir(parents=True)
    rows = [f"0,0.0,task/{t}/random_return,{v}\n" for t, v in random.items()]
    rows += [
        f"{step},{0.01 * step},task/{task}/return,{value}\n"
        for task, points in curves.items()
        for step, value in points
    ]
    (run_dir / "metrics.csv").write_text(HEADER + "".join(rows))
    summary: dict[str, Any] = {
        "tasks": {t: {"return_mean": points[-1][1]} for t, points in curves.items()},
        "env_steps_per_task": phases[-1][3],
        "continual": {"method": "finetune", "sequence": [p[1][0] for p in phases], "cycles": 1},
        "phases": [
            {"name": name, "tasks": tasks, "start_step": start, "end_step": end}
            for name, tasks, start, end in phases
        ],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _continual(tmp_path: Path, curves: Curves = CURVES) -> Path:
    return _write_run(tmp_path / "continual", curves, PHASES, RANDOM)


def _references(tmp_path: Path) -> list[Path]:
    finals = {"A": 10.0, "B": 21.0, "C": 10.0}
    return [
        _write_run(tmp_path / f"ref-{t}", {t: [(100, v)]}, [("train", [t], 0, 100)], {t: 0.0})
        for t, v in finals.items()
    ]


def test_raw_forgetting_hand_computed(tmp_path: Path) -> None:
    raw = raw_forgetting(evaluation_matrix(_continual(tmp_path)))
    assert raw.tasks == ["A", "B"]
    assert raw.own == {"A": 10.0, "B": 21.0} and raw.final == {"A": 4.0, "B": 23.0}
    assert raw.forgetting == {"A": 6.0, "B": -2.0}
    assert raw.share == pytest.approx({"A": 0.6, "B": -0.1})
    assert raw.forgetting_mean == pytest.approx(2.0)
    assert raw.backward_transfer == pytest.approx(-2.0)
    assert raw.share_mean == pytest.approx(0.25)
    assert raw.notes == []


def test_a_missing_cell_and_no_gain_over_random(tmp_path: Path) -> None:
    # A has no evaluation at the end of the run; B ends its phase at its random return.
    curves = {
        "A": [(100, 10.0), (200, 7.0)],
        "B": [(100, 1.0), (200, 1.0), (300, 0.0)],
        "C": [(100, 0.0), (200, 0.0), (300, 9.0)],
    }
    raw = raw_forgetting(evaluation_matrix(_continual(tmp_path, curves)))
    assert math.isnan(raw.forgetting["A"]) and math.isnan(raw.share["A"])
    assert raw.forgetting["B"] == 1.0 and math.isnan(raw.share["B"])
    assert raw.forgetting_mean == 1.0 and raw.backward_transfer == -1.0
    assert math.isnan(raw.share_mean)
    assert any("task B: its return after its own phase is not above" in n for n in raw.notes)
    assert "raw forgetting: the mean is over 1 of 2 tasks (A NaN)" in raw.notes


def test_a_single_phase_has_nothing_to_forget(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "one", {"A": [(100, 5.0)]}, [PHASES[0]], {"A": 0.0})
    raw = raw_forgetting(evaluation_matrix(run_dir))
    assert raw.tasks == [] and math.isnan(raw.forgetting_mean)
    report = format_continual_report(run_dir)
    assert "One phase only: no task was trained before the last phase." in report


def test_report_without_references_gives_raw_forgetting(tmp_path: Path) -> None:
    report = format_continual_report(_continual(tmp_path))
    assert "## Forgetting in raw returns" in report
    assert "raw forgetting F_raw = 2.00" in report
    assert "backward transfer BWT = -2.00" in report
    assert "share of the gain lost = 0.25" in report
    assert "| A | learn-A | 10.00 | 4.00 | 6.00 | 0.60 |" in report
    assert "| B | learn-B | 21.00 | 23.00 | -2.00 | -0.10 |" in report
    assert "| C |" not in report.split("## Forgetting in raw returns")[1]
    assert "average performance P" not in report
    assert "Notes:" not in report


def test_report_with_references_keeps_the_normalised_metrics(tmp_path: Path) -> None:
    report = format_continual_report(_continual(tmp_path), _references(tmp_path))
    assert "raw forgetting F_raw = 2.00" in report
    # Normalised: p_A = R / 10, p_B = (R - 1) / 20: F = ((1 - 0.4) + (1 - 1.1)) / 2 = 0.25.
    assert "forgetting F = 0.25" in report
    assert "average performance P" in report


def test_cli_report_prints_raw_forgetting(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = _continual(tmp_path)
    code = main(["report", str(run_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "raw forgetting F_raw = 2.00" in out
    assert "| A | learn-A | 10.00 | 4.00 | 6.00 | 0.60 |" in out
    assert (run_dir / "matrix.png").is_file()
