"""Tracker: metrics.csv in long format (resume-safe), TensorBoard events, the progress bar."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from multiq.report import read_metrics
from multiq.tracking import Tracker, format_postfix

TASKS = ["Breakout", "Freeway"]


def _rows(run_dir: Path) -> list[list[str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.reader(handle))


def _tracker(run_dir: Path, **kwargs: object) -> Tracker:
    options = {"tensorboard": False, "progress_bar": False, **kwargs}
    return Tracker(run_dir, TASKS, total_steps_per_task=1000, **options)


def test_log_writes_long_format_rows(tmp_path: Path) -> None:
    with _tracker(tmp_path) as tracker:
        tracker.log(100, {"task/Breakout/return": 3.5, "train/loss": 0.25})
        tracker.log(200, {"rollout/epsilon": 0.5})
    rows = _rows(tmp_path)
    assert rows[0] == ["step", "wall_time_s", "key", "value"]
    assert [(r[0], r[2], float(r[3])) for r in rows[1:]] == [
        ("100", "task/Breakout/return", 3.5),
        ("100", "train/loss", 0.25),
        ("200", "rollout/epsilon", 0.5),
    ]
    assert all(float(r[1]) >= 0.0 for r in rows[1:])


def test_log_flushes_each_call(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    tracker.log(10, {"time/sps": 1950.0})
    assert _rows(tmp_path)[-1][2:] == ["time/sps", "1950.0"]
    tracker.close()
    tracker.close()


def test_resume_appends_without_second_header(tmp_path: Path) -> None:
    with _tracker(tmp_path) as first:
        first.log(100, {"train/loss": 1.0})
    with _tracker(tmp_path, start_step=100) as second:
        second.log(200, {"train/loss": 0.5})
    rows = _rows(tmp_path)
    assert sum(row[0] == "step" for row in rows) == 1
    assert [(r[0], r[3]) for r in rows[1:]] == [("100", "1.0"), ("200", "0.5")]


def test_resume_drops_a_partial_last_line(tmp_path: Path) -> None:
    with _tracker(tmp_path) as first:
        first.log(100, {"train/loss": 1.0})
    with open(tmp_path / "metrics.csv", "a") as handle:
        handle.write("200,1.0,train/lo")
    with _tracker(tmp_path) as second:
        second.log(200, {"train/loss": 0.5})
    assert read_metrics(tmp_path) == {"train/loss": [(100, 1.0), (200, 0.5)]}


def test_non_finite_values_round_trip(tmp_path: Path) -> None:
    with _tracker(tmp_path) as tracker:
        tracker.log(5, {"train/loss": math.nan, "train/q": math.inf, "train/g": -math.inf})
    series = read_metrics(tmp_path)
    assert math.isnan(series["train/loss"][0][1])
    assert series["train/q"] == [(5, math.inf)]
    assert series["train/g"] == [(5, -math.inf)]


def test_rows_read_back_by_report(tmp_path: Path) -> None:
    with _tracker(tmp_path) as tracker:
        for step in (1000, 2000, 3000):
            tracker.log(step, {"task/Breakout/return": step / 1000 + 0.1})
    assert read_metrics(tmp_path) == {
        "task/Breakout/return": [(1000, 1.1), (2000, 2.1), (3000, 3.1)]
    }


def test_tensorboard_writes_events_file(tmp_path: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    with _tracker(tmp_path, tensorboard=True) as tracker:
        tracker.log(100, {"task/Breakout/return": 2.0, "train/loss": math.nan})
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_no_progress_bar_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with _tracker(tmp_path, progress_bar=False) as tracker:
        tracker.progress(500, 1950.0, {"Breakout": 3.1, "Freeway": 12.0})
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_shows_step_rate_and_returns(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with _tracker(tmp_path, progress_bar=True, start_step=100) as tracker:
        tracker.progress(500, 1950.0, {"Freeway": 12.0, "Breakout": 3.14})
        tracker.progress(600, 1950.0, {"Freeway": 13.0})
    err = capsys.readouterr().err
    assert "500/1000" in err and "600/1000" in err
    assert "Breakout=3.1 Freeway=12.0" in err
    assert "Breakout=- Freeway=13.0" in err


def test_postfix_format() -> None:
    assert format_postfix(1950.4, {"Breakout": 3.14, "Freeway": math.nan}) == (
        "1,950 step/s Breakout=3.1 Freeway=-"
    )
