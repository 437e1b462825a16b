"""Tracker: metrics.csv in long format (resume-safe), TensorBoard events, the progress bar."""

from __future__ import annotations

import csv
import errno
import math
import os
import stat
import sys
from pathlib import Path

import pytest
from wandb_files import record_with

from multiq.errors import RunDirError
from multiq.report import read_metrics
from multiq.runio.tracking import Tracker, format_postfix

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


def test_wall_time_continues_after_a_resume(tmp_path: Path) -> None:
    with _tracker(tmp_path) as first:
        first.log(100, {"train/loss": 1.0})
    with _tracker(tmp_path, start_step=100, start_wall_s=3600.0) as second:
        second.log(200, {"train/loss": 0.5})
        assert second.wall_time_s >= 3600.0
    walls = [float(row[1]) for row in _rows(tmp_path)[1:]]
    assert walls[0] < 60.0
    assert 3600.0 <= walls[1] < 3660.0


def test_metrics_csv_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.csv"
    target.write_text("precious\n")
    (tmp_path / "metrics.csv").symlink_to(target)
    with pytest.raises(RunDirError, match="metrics.csv is a symbolic link.*remove it"):
        _tracker(tmp_path)
    assert target.read_text() == "precious\n"


def test_full_disk_on_a_row_is_a_run_dir_error(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    tracker.log(100, {"train/loss": 1.0})

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    tracker._csv_file.flush = full  # type: ignore[method-assign]
    with pytest.raises(RunDirError, match="metrics.csv: No space left.*free space"):
        tracker.log(200, {"train/loss": 0.5})
    tracker._csv_file.flush = lambda: None  # type: ignore[method-assign]
    tracker.close()


def test_metrics_csv_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _tracker(tmp_path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.csv").stat().st_mode) == 0o644


def _tensorboard_steps(tb_dir: Path, tag: str) -> list[int]:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def test_tensorboard_resume_keeps_the_events_at_the_checkpoint_step(tmp_path: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    key = "task/Breakout/return"
    with _tracker(tmp_path, tensorboard=True) as first:
        for step in (100, 200, 300):  # checkpoint at 200, killed after logging 300
            first.log(step, {key: step / 100})
    with _tracker(tmp_path, tensorboard=True, start_step=200) as second:
        second.log(400, {key: 4.0})
    assert _tensorboard_steps(tmp_path / "tb", key) == [100, 200, 400]


def _train_with_wandb(run_dir, monkeypatch, steps=600):
    from multiq.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    args = ["train", "--tasks", "gym:CartPole-v1", "--steps", str(steps), "--run-dir",
            str(run_dir), "--device", "cpu"]  # fmt: skip
    sets = ["learning_starts=200", "eval_freq=300", "eval_episodes=2", "log_interval=100",
            "progress_bar=false", "loggers=[csv, wandb]", "wandb_group=tests"]  # fmt: skip
    return main(args + [x for s in sets for x in ("--set", s)])


def test_wandb_offline_run_files_hold_the_logged_keys(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    assert _train_with_wandb(run_dir, monkeypatch) == 0
    from multiq.runio.folder import run_id

    (record,) = (run_dir / "wandb").glob(f"offline-run-*-{run_id(run_dir)}/run-*.wandb")
    with open(run_dir / "metrics.csv") as handle:
        keys = {row.split(",")[2] for row in list(handle)[1:]}
    data = record_with(record, [key.encode() for key in keys])
    assert "task/CartPole/return" in keys and "train/loss" in keys
    assert all(key.encode() in data for key in keys)  # the same keys as metrics.csv
    assert b"tests" in data  # the group
    assert not (run_dir / "tb").exists()  # tensorboard was not listed


def test_a_missing_wandb_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    assert _train_with_wandb(tmp_path / "run", monkeypatch) == 2
    err = capsys.readouterr().err
    assert "pip install wandb" in err and "Traceback" not in err
