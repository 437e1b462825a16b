"""A transfer ratio over a scratch run that never left the random return: undefined, said in
words, with the area difference in its place; over seeds such a seed is counted, not NaN."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from multiq.cli import main
from multiq.report import TransferRun, aggregate_seeds, format_transfer_report, verdict
from multiq.report.transfer import (
    NO_COMMON_STEPS,
    SCRATCH_DID_NOT_LEARN,
    area_ratio,
    compare_areas,
    json_safe,
    transfer_metrics,
)

HEADER = "step,wall_time_s,key,value\n"
WORDS = "undefined: scratch did not learn (area above random ≈ 0)"
Curve = list[tuple[int, float]]


def _write_run(run_dir: Path, curves: dict[str, Curve], mode: str) -> Path:
    """metrics.csv (eval returns, random returns 0 at step 0) and summary.json of a transfer
    run from Src to Tgt."""
    run_dir.mkdir()
    rows = [
        f"{step},{0.1 * step},task/{task}/return,{value}\n"
        for task, points in curves.items()
        for step, value in points
    ]
    rows += [f"0,0.0,task/{task}/random_return,0.0\n" for task in curves]
    (run_dir / "metrics.csv").write_text(HEADER + "".join(rows))
    summary: dict[str, Any] = {
        "tasks": {t: {"return_mean": points[-1][1]} for t, points in curves.items()},
        "env_steps_per_task": curves["Tgt"][-1][0],
        "transfer": {
            "mode": mode,
            "source": "runs/src",
            "source_tasks": ["Src"],
            "target_tasks": ["Tgt"],
        },
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _run(curve: Curve, mode: str = "finetune") -> TransferRun:
    return TransferRun(Path(mode), mode, ["Src"], ["Tgt"], {"Tgt": curve}, {"Tgt": 0.0})


FLAT: Curve = [(0, 0.0), (1000, 0.0), (2000, 0.0)]
# Area per step: ((0 + 0.5) / 2 * 1000 + (0.5 + 1) / 2 * 1000) / 2000 = 0.5.
LEARNS: Curve = [(0, 0.0), (1000, 0.5), (2000, 1.0)]


# --- the areas ---------------------------------------------------------------------------------


def test_flat_scratch_gives_an_undefined_ratio_and_the_area_difference() -> None:
    areas = compare_areas(LEARNS, FLAT, 0.0)
    assert areas.area == pytest.approx(0.5)
    assert areas.baseline_area == 0.0
    assert areas.scale == 1.0
    assert math.isnan(areas.ratio)
    assert areas.note == SCRATCH_DID_NOT_LEARN == WORDS
    assert areas.difference == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("scratch_end", "expected"),
    [
        (0.1, math.nan),  # area per step 0.05 <= 1% of the scale 10: undefined
        (0.4, 5.0 / 0.2),  # area per step 0.2 > 0.1: ratio 5 / 0.2
    ],
)
def test_the_tolerance_is_relative_to_the_return_scale(scratch_end: float, expected: float) -> None:
    curve, scratch = [(0, 0.0), (10, 10.0)], [(0, 0.0), (10, scratch_end)]
    ratio = area_ratio(curve, scratch, 0.0)
    assert ratio == pytest.approx(expected, nan_ok=True)
    # The same scratch curve against a run on its own scale: its area counts.
    assert area_ratio([(0, 0.0), (10, scratch_end)], scratch, 0.0) == 1.0
    # Scaling every return (and the random return) leaves the answer unchanged.
    scaled = area_ratio([(0, 5.0), (10, 105.0)], [(0, 5.0), (10, 5.0 + 10 * scratch_end)], 5.0)
    assert scaled == pytest.approx(expected, nan_ok=True)


def test_scratch_below_random_and_both_at_random_are_undefined() -> None:
    below = compare_areas([(0, 1.0), (10, 3.0)], [(0, 1.0), (10, -1.0)], 1.0)
    assert below.note == SCRATCH_DID_NOT_LEARN
    assert below.baseline_area == pytest.approx(-1.0) and below.area == pytest.approx(1.0)
    assert below.difference == pytest.approx(2.0)
    both = compare_areas([(0, 2.0), (10, 2.0)], [(0, 2.0), (10, 2.0)], 2.0)
    assert (both.scale, both.difference, both.note) == (0.0, 0.0, SCRATCH_DID_NOT_LEARN)


def test_curves_without_a_common_step_range() -> None:
    areas = compare_areas([(0, 0.0), (10, 1.0)], [(10, 5.0), (20, 9.0)], 0.0)
    assert areas.note == NO_COMMON_STEPS
    assert all(math.isnan(v) for v in (areas.area, areas.ratio, areas.difference))


def test_transfer_metrics_fields_and_json_with_null() -> None:
    metrics = transfer_metrics(_run(LEARNS), _run(FLAT, "scratch"))
    target = metrics["target"]["Tgt"]
    assert math.isnan(target["transfer_ratio"])
    assert target["transfer_ratio_note"] == WORDS
    assert target["area_difference"] == pytest.approx(0.5)
    assert (target["scratch_area"], target["return_scale"]) == (0.0, 1.0)
    written = json.loads(json.dumps(json_safe(metrics), allow_nan=False))
    assert written["target"]["Tgt"]["transfer_ratio"] is None
    assert written["target"]["Tgt"]["area_difference"] == pytest.approx(0.5)
    assert json_safe({"a": (1.0, math.inf), "b": "x"}) == {"a": [1.0, None], "b": "x"}


def test_a_defined_ratio_has_no_note() -> None:
    scratch = [(0, 0.0), (1000, 0.25), (2000, 0.5)]  # area per step 0.25
    target = transfer_metrics(_run(LEARNS), _run(scratch, "scratch"))["target"]["Tgt"]
    assert target["transfer_ratio"] == pytest.approx(2.0)
    assert target["transfer_ratio_note"] is None
    assert target["area_difference"] == pytest.approx(0.25)


# --- over seeds --------------------------------------------------------------------------------


def test_an_undefined_seed_is_left_out_and_counted() -> None:
    # Ratios 2 and 3 (scratch area per step 0.25, runs 0.5 and 0.75); the third seed's scratch
    # is flat: its ratio is left out, its area difference (0.5) counts.
    scratch = _run([(0, 0.0), (10, 0.5)], "scratch")
    pairs = [
        (_run([(0, 0.0), (10, 1.0)]), scratch),
        (_run([(0, 0.0), (10, 1.5)]), scratch),
        (_run([(0, 0.0), (10, 1.0)]), _run([(0, 0.0), (10, 0.0)], "scratch")),
    ]
    target = aggregate_seeds(pairs)["target"]["Tgt"]
    ratio = target["transfer_ratio"]
    assert (ratio["mean"], ratio["n"], ratio["undefined"]) == (pytest.approx(2.5), 2, 1)
    assert target["ratio_note"] == f"transfer ratio over 2 of 3 seeds: 1 left out, {WORDS}"
    assert target["verdict"] == "positive transfer"
    difference = target["area_difference"]
    assert difference["mean"] == pytest.approx((0.25 + 0.5 + 0.5) / 3) and difference["n"] == 3


def test_every_seed_undefined_gives_a_verdict_in_words() -> None:
    flat = _run([(0, 0.0), (10, 0.0)], "scratch")
    target = aggregate_seeds([(_run([(0, 0.0), (10, 1.0)]), flat)] * 3)["target"]["Tgt"]
    assert target["transfer_ratio"]["n"] == 0 and target["transfer_ratio"]["undefined"] == 3
    assert target["verdict"].startswith(f"{WORDS} in 3 seeds")
    assert "area difference" in target["verdict"]
    assert target["area_difference"]["mean"] == pytest.approx(0.5)


def test_verdict_with_and_without_undefined_seeds() -> None:
    assert verdict(math.nan, math.nan) == "undetermined (no finite transfer ratio)"
    assert verdict(math.nan, math.nan, 1).startswith(f"{WORDS} in 1 seed:")
    assert verdict(1.2, 1.5, 1) == "positive transfer"


def test_no_undefined_seed_gives_no_note() -> None:
    scratch = _run([(0, 0.0), (10, 0.5)], "scratch")
    target = aggregate_seeds([(_run([(0, 0.0), (10, 1.0)]), scratch)])["target"]["Tgt"]
    assert target["ratio_note"] is None and target["transfer_ratio"]["undefined"] == 0


# --- the report and the command line -----------------------------------------------------------


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    source = [(0, 1.0), (2000, 0.0)]
    run_dir = _write_run(tmp_path / "ft", {"Tgt": LEARNS, "Src": source}, "finetune")
    return run_dir, _write_run(tmp_path / "scratch", {"Tgt": FLAT}, "scratch")


def _row(report: str, label: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith(label + "  "))
    return line[len(label) :].split()


def test_report_says_undefined_in_words(tmp_path: Path) -> None:
    report = format_transfer_report(*_folders(tmp_path))
    assert _row(report, "transfer ratio (area)") == ["undefined"]
    assert _row(report, "area difference (per step)") == ["0.50"]
    assert f"Tgt: transfer ratio {WORDS}" in report
    assert "The area difference +0.50 is the mean return gained over scratch." in report
    assert "nan" not in report


def test_report_of_a_defined_ratio_has_no_undefined_note(tmp_path: Path) -> None:
    run_dir, _ = _folders(tmp_path)
    scratch = _write_run(tmp_path / "s2", {"Tgt": [(0, 0.0), (1000, 0.25), (2000, 0.5)]}, "scratch")
    report = format_transfer_report(run_dir, scratch)
    assert _row(report, "transfer ratio (area)") == ["2.00"]
    assert _row(report, "area difference (per step)") == ["0.25"]
    assert "undefined" not in report


def test_cli_report_with_a_flat_baseline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir, scratch_dir = _folders(tmp_path)
    code = main(["report", str(run_dir), "--baseline", str(scratch_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert WORDS in out
    assert _row(out, "transfer ratio (area)") == ["undefined"]
    assert _row(out, "area difference (per step)") == ["0.50"]
    assert " nan" not in out
