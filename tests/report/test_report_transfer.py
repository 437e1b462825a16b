"""Transfer metrics from hand-built run folders and curves, against hand-computed numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from multiq.report import (
    ReportError,
    RunFolderError,
    TransferRun,
    aggregate_seeds,
    bootstrap_ci,
    format_transfer_report,
    read_transfer_run,
    transfer_metrics,
    verdict,
)
from multiq.report.transfer import (
    NO_THRESHOLD,
    area_ratio,
    area_verdict,
    source_metrics,
    steps_to_threshold,
)

HEADER = "step,wall_time_s,key,value\n"
Curves = dict[str, list[tuple[int, float]]]


def _write_run(
    run_dir: Path,
    curves: Curves,
    logged_random: dict[str, float] | None = None,
    summary_random: dict[str, float] | None = None,
    transfer: dict[str, Any] | None = None,
) -> Path:
    """Writes metrics.csv (eval returns, random returns at step 0) and summary.json."""
    run_dir.mkdir()
    rows = [
        f"{step},{0.1 * step},task/{task}/return,{value}\n"
        for task, points in curves.items()
        for step, value in points
    ]
    rows += [f"0,0.0,task/{t}/random_return,{v}\n" for t, v in (logged_random or {}).items()]
    (run_dir / "metrics.csv").write_text(HEADER + "".join(rows))
    tasks = {t: {"return_mean": points[-1][1]} for t, points in curves.items()}
    for task, value in (summary_random or {}).items():
        tasks.setdefault(task, {})["random_return_mean"] = value
    summary: dict[str, Any] = {"tasks": tasks, "env_steps_per_task": 20}
    if transfer is not None:
        summary["transfer"] = transfer
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _transfer_info(mode: str) -> dict[str, Any]:
    return {"mode": mode, "source": "runs/src", "source_tasks": ["Src"], "target_tasks": ["Tgt"]}


def _run(
    curves: Curves, random: dict[str, float], mode: str = "finetune", name: str = "run"
) -> TransferRun:
    return TransferRun(
        run_dir=Path(name),
        mode=mode,
        source_tasks=["Src"],
        target_tasks=["Tgt"],
        curves=curves,
        random=random,
    )


def _scratch(curve: list[tuple[int, float]], random: float = 0.0) -> TransferRun:
    return _run({"Tgt": curve}, {"Tgt": random}, mode="scratch", name="scratch")


# --- reading ----------------------------------------------------------------------------------


def test_read_transfer_run_curves_and_random_returns(tmp_path: Path) -> None:
    run_dir = _write_run(
        tmp_path / "run",
        {"Tgt": [(0, 1.0), (10, 3.0)], "Src": [(0, 9.0), (10, 7.0)]},
        logged_random={"Tgt": 0.5},
        summary_random={"Tgt": 99.0, "Src": 2.0},
        transfer=_transfer_info("finetune"),
    )
    run = read_transfer_run(run_dir)
    assert run.mode == "finetune"
    assert run.source == "runs/src"
    assert run.source_tasks == ["Src"] and run.target_tasks == ["Tgt"]
    assert run.curves == {"Tgt": [(0, 1.0), (10, 3.0)], "Src": [(0, 9.0), (10, 7.0)]}
    # The logged random return wins over summary.json's; summary.json is the fallback.
    assert run.random == {"Tgt": 0.5, "Src": 2.0}


def test_read_transfer_run_rejects_a_plain_run(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "plain", {"Tgt": [(0, 1.0)]})
    with pytest.raises(ReportError, match="not a transfer run") as info:
        read_transfer_run(run_dir)
    assert str(run_dir) in str(info.value)
    assert "--baseline" in str(info.value)


def test_read_transfer_run_names_missing_transfer_keys(tmp_path: Path) -> None:
    transfer = {"mode": "finetune", "source": None}
    run_dir = _write_run(tmp_path / "run", {"Tgt": [(0, 1.0)]}, transfer=transfer)
    with pytest.raises(ReportError, match="source_tasks, target_tasks"):
        read_transfer_run(run_dir)


def test_read_transfer_run_needs_summary(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "run", {"Tgt": [(0, 1.0)]}, transfer=_transfer_info("ft"))
    (run_dir / "summary.json").unlink()
    with pytest.raises(RunFolderError):
        read_transfer_run(run_dir)


# --- target-task metrics ----------------------------------------------------------------------


def test_jumpstart_final_and_asymptotic_gain() -> None:
    run = _run({"Tgt": [(0, 3.0), (10, 6.0), (20, 8.5)]}, {"Tgt": 0.0})
    scratch = _scratch([(0, 1.0), (10, 2.0), (20, 7.0)])
    target = transfer_metrics(run, scratch)["target"]["Tgt"]
    assert target["first_return"] == 3.0 and target["scratch_first_return"] == 1.0
    assert target["jumpstart"] == pytest.approx(2.0)
    assert target["final_return"] == 8.5 and target["scratch_final_return"] == 7.0
    assert target["asymptotic_gain"] == pytest.approx(1.5)


def test_area_ratio_hand_computed() -> None:
    assert area_ratio([(0, 0.0), (10, 10.0)], [(0, 0.0), (10, 5.0)], 0.0) == pytest.approx(2.0)
    # Areas are above the random return: (area 50 + 50) / (25 + 50) with random = -5.
    assert area_ratio([(0, 0.0), (10, 10.0)], [(0, 0.0), (10, 5.0)], -5.0) == pytest.approx(
        100.0 / 75.0
    )


def test_area_ratio_uses_scratch_random_return() -> None:
    run = _run({"Tgt": [(0, 1.0), (10, 11.0)]}, {"Tgt": 100.0})
    scratch = _scratch([(0, 1.0), (10, 6.0)], random=1.0)
    target = transfer_metrics(run, scratch)["target"]["Tgt"]
    assert target["random_return"] == 1.0
    assert target["transfer_ratio"] == pytest.approx(2.0)


def test_area_ratio_interpolates_when_steps_differ() -> None:
    # Run evaluated at 0, 4, 10: area (0 + 8) / 2 * 4 + 8 * 6 = 64; scratch's line: area 50.
    run_curve = [(0, 0.0), (4, 8.0), (10, 8.0)]
    assert area_ratio(run_curve, [(0, 0.0), (10, 10.0)], 0.0) == pytest.approx(64.0 / 50.0)
    # Scratch's kink at step 5 (between the run's evals) counts: its area is 25 + 50 = 75.
    kinked = [(0, 0.0), (5, 10.0), (10, 10.0)]
    assert area_ratio([(0, 0.0), (10, 10.0)], kinked, 0.0) == pytest.approx(50.0 / 75.0)


def test_area_ratio_cuts_to_the_common_step_range() -> None:
    # The run goes on to step 20; only [0, 10] counts: 50 / 25.
    long_run = [(0, 0.0), (10, 10.0), (20, 100.0)]
    assert area_ratio(long_run, [(0, 0.0), (10, 5.0)], 0.0) == pytest.approx(2.0)
    # Scratch starts at 5: over [5, 10] the run's area is (5 + 10) / 2 * 5, scratch's 5 * 5.
    assert area_ratio([(0, 0.0), (10, 10.0)], [(5, 5.0), (10, 5.0)], 0.0) == pytest.approx(1.5)


@pytest.mark.parametrize(
    "scratch_curve",
    [
        [(0, 2.0), (10, 2.0)],  # at the random return: area 0
        [(0, 1.0), (10, 0.0)],  # below it: negative area
        [(10, 5.0), (20, 9.0)],  # shares a single step with the run: no range
    ],
)
def test_area_ratio_nan_without_a_positive_scratch_area(
    scratch_curve: list[tuple[int, float]],
) -> None:
    assert math.isnan(area_ratio([(0, 0.0), (10, 10.0)], scratch_curve, 2.0))


def test_steps_to_threshold_reached_and_never() -> None:
    # Scratch's final return 10, random 0, f = 0.8: threshold 8.
    run = _run({"Tgt": [(0, 2.0), (10, 9.0), (20, 9.0)]}, {"Tgt": 0.0})
    scratch = _scratch([(0, 0.0), (10, 5.0), (20, 10.0)])
    target = transfer_metrics(run, scratch)["target"]["Tgt"]
    assert target["threshold_return"] == pytest.approx(8.0)
    assert target["time_to_threshold_steps"] == 10
    assert target["scratch_time_to_threshold_steps"] == 20
    half = transfer_metrics(run, scratch, threshold_fraction=0.5)["target"]["Tgt"]
    assert half["threshold_return"] == pytest.approx(5.0)
    assert half["scratch_time_to_threshold_steps"] == 10
    assert steps_to_threshold([(0, 0.0), (10, 3.0), (20, 7.9)], 8.0) is None
    assert steps_to_threshold([(0, 0.0), (10, 8.0)], 8.0) == 10


@pytest.mark.parametrize("scratch_final", [2.0, 1.5, 2.05])  # random 2; 2.05 is within 1%
def test_threshold_undefined_when_scratch_ends_at_random(scratch_final: float) -> None:
    # Scratch learned (area > 0) but ended at random: a threshold at random would be "reached"
    # at step 0 by every curve, so there is none.
    run = _run({"Tgt": [(0, 2.0), (10, 9.0), (20, 9.0)]}, {"Tgt": 2.0})
    scratch = _scratch([(0, 2.0), (10, 8.0), (20, scratch_final)], random=2.0)
    target = transfer_metrics(run, scratch)["target"]["Tgt"]
    assert target["threshold_note"] == NO_THRESHOLD
    assert math.isnan(target["threshold_return"])
    assert target["time_to_threshold_steps"] is None
    assert target["scratch_time_to_threshold_steps"] is None
    assert not math.isnan(target["transfer_ratio"])  # scratch's area is still above random


def test_aggregate_counts_seeds_without_a_threshold() -> None:
    learned = (_seed_pair(20.0, 4.0)[0], _scratch([(0, 0.0), (10, 10.0)]))
    at_random = (_seed_pair(20.0, 4.0)[0], _scratch([(0, 0.0), (5, 4.0), (10, 0.0)]))
    steps = aggregate_seeds([learned, at_random])["target"]["Tgt"]["time_to_threshold_steps"]
    assert (steps["reached"], steps["seeds"], steps["undefined"]) == (1, 2, 1)


def test_threshold_is_above_the_random_return() -> None:
    # random 2, scratch final 12, f = 0.8: threshold 2 + 0.8 * 10 = 10.
    run = _run({"Tgt": [(0, 9.9), (10, 10.0)]}, {"Tgt": 2.0})
    target = transfer_metrics(run, _scratch([(0, 2.0), (10, 12.0)], random=2.0))["target"]["Tgt"]
    assert target["threshold_return"] == pytest.approx(10.0)
    assert target["time_to_threshold_steps"] == 10


def test_baseline_without_the_target_task_raises() -> None:
    run = _run({"Tgt": [(0, 1.0), (10, 2.0)]}, {"Tgt": 0.0})
    other = TransferRun(Path("other"), "scratch", [], ["Other"], {"Other": [(0, 1.0)]}, {})
    with pytest.raises(ReportError, match="task/Tgt/return"):
        transfer_metrics(run, other)


def test_missing_random_return_raises() -> None:
    run = _run({"Tgt": [(0, 1.0), (10, 2.0)]}, {})
    scratch = _run({"Tgt": [(0, 1.0), (10, 2.0)]}, {}, mode="scratch")
    with pytest.raises(ReportError, match="random-policy return"):
        transfer_metrics(run, scratch)


# --- source-task forgetting -------------------------------------------------------------------


def test_source_forgetting_and_normalisation() -> None:
    forgot = source_metrics([(0, 10.0), (5, 12.0), (10, 4.0)], 2.0)
    assert forgot["return_before"] == 10.0 and forgot["return_after"] == 4.0
    assert forgot["forgetting"] == pytest.approx(6.0)
    assert forgot["forgetting_normalised"] == pytest.approx(6.0 / 8.0)
    improved = source_metrics([(0, 4.0), (10, 6.0)], 0.0)
    assert improved["forgetting"] == pytest.approx(-2.0)
    assert improved["forgetting_normalised"] == pytest.approx(-0.5)


@pytest.mark.parametrize("random_return", [1.0, 3.0, math.nan])
def test_forgetting_normalised_nan_without_a_gain_over_random(random_return: float) -> None:
    metrics = source_metrics([(0, 1.0), (10, 0.0)], random_return)
    assert metrics["forgetting"] == pytest.approx(1.0)
    assert math.isnan(metrics["forgetting_normalised"])


def test_transfer_metrics_from_folders_is_json_safe(tmp_path: Path) -> None:
    run_dir = _write_run(
        tmp_path / "run",
        {"Tgt": [(0, 2.0), (10, 10.0)], "Src": [(0, 10.0), (10, 6.0)]},
        summary_random={"Tgt": 0.0, "Src": 2.0},
        transfer=_transfer_info("finetune"),
    )
    scratch_dir = _write_run(
        tmp_path / "scratch",
        {"Tgt": [(0, 0.0), (10, 5.0)]},
        logged_random={"Tgt": 0.0},
        transfer=_transfer_info("scratch"),
    )
    metrics = transfer_metrics(read_transfer_run(run_dir), read_transfer_run(scratch_dir))
    assert json.loads(json.dumps(metrics)) == metrics
    assert metrics["target"]["Tgt"]["transfer_ratio"] == pytest.approx(60.0 / 25.0)
    assert metrics["source"]["Src"]["forgetting_normalised"] == pytest.approx(0.5)
    scratch_alone = transfer_metrics(read_transfer_run(scratch_dir), read_transfer_run(scratch_dir))
    assert scratch_alone["source"] == {}  # scratch holds no source task
    assert scratch_alone["target"]["Tgt"]["transfer_ratio"] == 1.0


# --- statistics over seeds --------------------------------------------------------------------


def test_bootstrap_ci_constant_single_empty_and_nan() -> None:
    assert bootstrap_ci([0.1, 0.1, 0.1]) == (0.1, 0.1, 0.1)
    assert bootstrap_ci([4.0]) == (4.0, 4.0, 4.0)
    assert bootstrap_ci([2.0, math.nan, 2.0]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    assert all(math.isnan(x) for x in bootstrap_ci([math.nan]))


def test_bootstrap_ci_interval() -> None:
    # Resampled means of [0, 1] are 0, 0.5 or 1, with 0 and 1 each 1/4 likely: beyond 2.5%.
    assert bootstrap_ci([0.0, 1.0]) == (0.5, 0.0, 1.0)
    values = [1.0, 2.0, 4.0, 8.0]
    mean, low, high = bootstrap_ci(values, rng=np.random.default_rng(7))
    assert mean == pytest.approx(3.75)
    assert 1.0 < low < mean < high < 8.0
    narrow = bootstrap_ci(values, confidence=0.5, rng=np.random.default_rng(7))
    assert low < narrow[1] <= narrow[2] < high
    assert bootstrap_ci(values) == bootstrap_ci(values)  # seeded by default


def test_bootstrap_ci_leaves_the_global_rng_alone() -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    bootstrap_ci([1.0, 2.0, 3.0])
    assert np.random.random() == expected


@pytest.mark.parametrize("kwargs", [{"confidence": 1.0}, {"confidence": 0.0}, {"resamples": 0}])
def test_bootstrap_ci_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], **kwargs)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1.1, 1.5, "positive transfer"),
        (0.5, 0.9, "negative transfer"),
        (0.9, 1.1, "no clear transfer (interval includes 1)"),
        (1.0, 1.2, "no clear transfer (interval includes 1)"),
        (0.8, 1.0, "no clear transfer (interval includes 1)"),
        (math.nan, math.nan, "undetermined (no finite transfer ratio)"),
    ],
)
def test_verdict(low: float, high: float, expected: str) -> None:
    assert verdict(low, high) == expected


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.01, 0.3, "positive transfer (area difference > 0)"),
        (-0.5, -0.1, "negative transfer (area difference < 0)"),
        (-0.2, 0.4, "no clear transfer (area difference interval includes 0)"),
        (0.0, 0.4, "no clear transfer (area difference interval includes 0)"),
        (math.nan, 0.1, "undetermined (no finite area difference)"),
    ],
)
def test_area_verdict(low: float, high: float, expected: str) -> None:
    assert area_verdict(low, high) == expected


def _seed_pair(run_final: float, forgotten_to: float) -> tuple[TransferRun, TransferRun]:
    run = _run(
        {"Tgt": [(0, 0.0), (10, run_final)], "Src": [(0, 10.0), (10, forgotten_to)]},
        {"Tgt": 0.0, "Src": 0.0},
    )
    return run, _scratch([(0, 0.0), (10, 10.0)])


def test_aggregate_seeds_means_intervals_and_threshold_counts() -> None:
    # Ratios 2, 2, 0.5; threshold 8 reached at step 10 by the first two runs only.
    pairs = [_seed_pair(20.0, 4.0), _seed_pair(20.0, 6.0), _seed_pair(5.0, 8.0)]
    result = aggregate_seeds(pairs)
    assert result["seeds"] == 3 and result["threshold_fraction"] == 0.8
    target = result["target"]["Tgt"]
    assert target["transfer_ratio"]["mean"] == pytest.approx(1.5)
    assert target["transfer_ratio"]["n"] == 3
    assert 0.5 <= target["transfer_ratio"]["low"] < 1.0 < target["transfer_ratio"]["high"] <= 2.0
    assert target["verdict"] == "no clear transfer (interval includes 1)"
    assert target["jumpstart"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 3}
    steps = target["time_to_threshold_steps"]
    assert (steps["mean"], steps["reached"], steps["seeds"]) == (10.0, 2, 3)
    assert target["scratch_time_to_threshold_steps"]["reached"] == 3
    forgetting = result["source"]["Src"]["forgetting"]
    assert forgetting["mean"] == pytest.approx(4.0)
    assert 2.0 <= forgetting["low"] < 4.0 < forgetting["high"] <= 6.0


def test_aggregate_seeds_verdict_positive_and_nan_dropped() -> None:
    nan_pair = (_seed_pair(20.0, 4.0)[0], _scratch([(0, 0.0), (10, 0.0)]))  # scratch area 0
    result = aggregate_seeds([_seed_pair(20.0, 4.0), _seed_pair(30.0, 4.0), nan_pair])
    ratio = result["target"]["Tgt"]["transfer_ratio"]
    assert ratio["n"] == 2
    assert ratio["mean"] == pytest.approx(2.5)
    assert result["target"]["Tgt"]["verdict"] == "positive transfer"


def test_aggregate_seeds_rejects_empty_and_mismatched_targets() -> None:
    with pytest.raises(ReportError):
        aggregate_seeds([])
    other = TransferRun(Path("other"), "finetune", [], ["Other"], {"Other": [(0, 1.0)]}, {})
    with pytest.raises(ReportError, match="different target tasks"):
        aggregate_seeds([_seed_pair(20.0, 4.0), (other, _scratch([(0, 0.0)]))])


# --- the report ------------------------------------------------------------------------------


def _report_folders(tmp_path: Path) -> tuple[Path, Path]:
    run_dir = _write_run(
        tmp_path / "ft",
        {"Tgt": [(0, 2.0), (1000, 9.0), (2000, 10.0)], "Src": [(0, 10.0), (2000, 6.0)]},
        logged_random={"Tgt": 0.0, "Src": 2.0},
        transfer=_transfer_info("finetune"),
    )
    scratch_dir = _write_run(
        tmp_path / "scratch",
        {"Tgt": [(0, 0.0), (1000, 2.0), (2000, 5.0)]},
        logged_random={"Tgt": 0.0},
        transfer=_transfer_info("scratch"),
    )
    return run_dir, scratch_dir


def _row(report: str, label: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith(label + "  "))
    return line[len(label) :].split()


def test_format_transfer_report_with_baseline(tmp_path: Path) -> None:
    run_dir, scratch_dir = _report_folders(tmp_path)
    report = format_transfer_report(run_dir, scratch_dir)
    assert str(scratch_dir) in report and "mode finetune" in report
    assert _row(report, "target task (vs scratch)") == ["Tgt"]
    assert _row(report, "jumpstart") == ["2.00"]
    assert _row(report, "asymptotic gain") == ["5.00"]
    # Run area 5.5 * 1000 + 9.5 * 1000 = 15000; scratch 1000 + 3500 = 4500.
    assert _row(report, "transfer ratio (area)") == [f"{15000 / 4500:.2f}"]
    assert _row(report, "steps to threshold") == ["1,000"]  # threshold 0.8 * 5 = 4
    assert _row(report, "scratch steps to threshold") == ["2,000"]
    assert _row(report, "forgetting (before - after)") == ["4.00"]
    assert _row(report, "forgetting / (before - random)") == ["0.50"]


def test_format_transfer_report_threshold_not_reached(tmp_path: Path) -> None:
    run_dir, scratch_dir = _report_folders(tmp_path)
    report = format_transfer_report(scratch_dir, run_dir, threshold_fraction=0.9)
    assert _row(report, "steps to threshold") == ["not", "reached"]  # 5 < 0.9 * 10
    assert "note: the baseline's mode is 'finetune'" in report


def test_format_transfer_report_says_the_threshold_is_undefined(tmp_path: Path) -> None:
    run_dir, _ = _report_folders(tmp_path)
    flat = _write_run(
        tmp_path / "flat",
        {"Tgt": [(0, 0.0), (1000, 0.0), (2000, 0.0)]},
        logged_random={"Tgt": 0.0},
        transfer=_transfer_info("scratch"),
    )
    report = format_transfer_report(run_dir, flat)
    for label in ("steps to threshold", "scratch steps to threshold"):
        assert " ".join(_row(report, label)) == NO_THRESHOLD


def test_format_transfer_report_without_baseline(tmp_path: Path) -> None:
    run_dir, _ = _report_folders(tmp_path)
    report = format_transfer_report(run_dir)
    assert "--baseline SCRATCH_RUN" in report
    labels = [line.split("  ")[0] for line in report.splitlines()]
    assert "jumpstart" not in labels and "transfer ratio (area)" not in labels
    assert _row(report, "first return") == ["2.00"]
    assert _row(report, "final return") == ["10.00"]
    assert _row(report, "return after") == ["6.00"]
    assert _row(report, "forgetting (before - after)") == ["4.00"]


def test_format_transfer_report_of_a_plain_run_raises(tmp_path: Path) -> None:
    _, scratch_dir = _report_folders(tmp_path)
    plain = _write_run(tmp_path / "plain", {"Tgt": [(0, 1.0)]})
    with pytest.raises(ReportError, match="not a transfer run"):
        format_transfer_report(plain, scratch_dir)
    with pytest.raises(ReportError, match="not a transfer run"):
        format_transfer_report(scratch_dir, plain)
