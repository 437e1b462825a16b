"""Reading a run folder: metrics.csv series and summary.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from multiq.errors import MultiqError
from multiq.report import ReportError, read_metrics, read_summary, task_names, write_report

HEADER = "step,wall_time_s,key,value\n"


def _write_csv(run_dir: Path, body: str) -> None:
    (run_dir / "metrics.csv").write_text(HEADER + body)


def test_read_metrics_groups_by_key_in_step_order(tmp_path: Path) -> None:
    _write_csv(
        tmp_path,
        "1000,1.5,task/Breakout/return,1.0\n"
        "1000,1.5,task/Breakout/return_std,0.5\n"
        "1000,1.5,train/loss,0.3\n"
        "2000,3.0,task/Breakout/return,2.5\n"
        "2000,3.0,train/loss,nan\n",
    )
    metrics = read_metrics(tmp_path)
    assert list(metrics) == ["task/Breakout/return", "task/Breakout/return_std", "train/loss"]
    assert metrics["task/Breakout/return"] == [(1000, 1.0), (2000, 2.5)]
    assert metrics["task/Breakout/return_std"] == [(1000, 0.5)]
    assert metrics["train/loss"][0] == (1000, 0.3)
    assert math.isnan(metrics["train/loss"][1][1])
    assert isinstance(metrics["train/loss"][0][0], int)


def test_read_metrics_resumed_append(tmp_path: Path) -> None:
    # The first session logged up to 3000, crashed, and resumed from its checkpoint at 2000.
    _write_csv(
        tmp_path,
        "1000,1.0,train/loss,1.0\n"
        "2000,2.0,train/loss,0.9\n"
        "3000,3.0,train/loss,0.8\n"
        "3000,0.5,train/loss,0.7\n"
        "4000,1.5,train/loss,0.6\n",
    )
    assert read_metrics(tmp_path)["train/loss"] == [
        (1000, 1.0),
        (2000, 0.9),
        (3000, 0.7),
        (4000, 0.6),
    ]


def test_read_metrics_skips_blank_lines_and_quoted_keys(tmp_path: Path) -> None:
    _write_csv(tmp_path, '10,0.1,"task/a,b/return",1.0\n\n20,0.2,"task/a,b/return",2.0\n')
    assert read_metrics(tmp_path) == {"task/a,b/return": [(10, 1.0), (20, 2.0)]}


def test_read_metrics_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no metrics.csv in .*multiq run folder") as info:
        read_metrics(tmp_path)
    assert isinstance(info.value, MultiqError)
    assert str(tmp_path) in str(info.value)


def test_read_metrics_malformed(tmp_path: Path) -> None:
    _write_csv(tmp_path, "10,0.1,train/loss,1.0\nten,0.2,train/loss,2.0\n")
    with pytest.raises(ReportError, match="line 3"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.csv").write_text("a,b\n")
    with pytest.raises(ReportError, match="header"):
        read_metrics(tmp_path)


def test_read_summary(tmp_path: Path) -> None:
    summary = {"tasks": {"Breakout": {"return_mean": 5.2}}, "env_steps_per_task": 200000}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert read_summary(tmp_path) == summary


def test_read_summary_missing_or_bad(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(ReportError, match="JSON object"):
        read_summary(tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        (HEADER + "10,0.1,train/loss,1.0\n").encode("latin-1") + b"20,0.2,caf\xe9,2.0\n",
        b"\xff\xfe" + "step,wall".encode("utf-16-le"),
        HEADER.encode() + np.random.default_rng(0).bytes(512),
    ],
    ids=["latin-1", "utf-16", "binary"],
)
def test_read_metrics_not_utf8_is_a_report_error(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "metrics.csv").write_bytes(data)
    with pytest.raises(ReportError) as info:
        read_metrics(tmp_path)
    assert str(tmp_path / "metrics.csv") in str(info.value)
    assert "is not UTF-8 text" in str(info.value)


def test_read_metrics_latin1_names_utf8(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_bytes(HEADER.encode() + b"20,0.2,caf\xe9,2.0\n")
    with pytest.raises(ReportError, match="metrics.csv is not UTF-8 text: .*damaged"):
        read_metrics(tmp_path)


def test_read_metrics_csv_error_is_a_report_error(tmp_path: Path) -> None:
    _write_csv(tmp_path, '20,0.2,"' + "x" * 200_000 + '",2.0\n')  # over csv's field limit
    with pytest.raises(ReportError, match="metrics.csv, line .*field limit"):
        read_metrics(tmp_path)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"tasks": {"caf\xe9": {}}}', "summary.json is not UTF-8 text"),
        (b"\x00\x01\x02binary", "summary.json is not valid JSON"),
        (b'{"tasks": {"A": ', "summary.json is not valid JSON"),
        (b'{"tasks": [1, 2]}', "'tasks' must map task names to objects"),
        (b'{"tasks": {"A": 3}}', "'tasks' must map task names to objects"),
        (b'{"tasks": {"A": {"return_mean": "high"}}}', "tasks.A.return_mean must be a number"),
        (b'{"wall_time_s": "8m"}', "wall_time_s must be a number, got '8m'"),
        (b'{"env_steps_per_s": true}', "env_steps_per_s must be a number"),
    ],
)
def test_read_summary_damaged_is_a_report_error(tmp_path: Path, data: bytes, fragment: str) -> None:
    (tmp_path / "summary.json").write_bytes(data)
    with pytest.raises(ReportError) as info:
        read_summary(tmp_path)
    assert fragment in str(info.value)
    assert str(tmp_path / "summary.json") in str(info.value)


def test_report_of_a_damaged_summary_is_a_report_error(tmp_path: Path) -> None:
    _write_csv(tmp_path, "10,0.1,task/A/return,1.0\n")
    (tmp_path / "summary.json").write_bytes(b'{"tasks": {"A": {"episodes": [5]}}}')
    with pytest.raises(ReportError, match="tasks.A.episodes must be a number"):
        write_report(tmp_path)


def test_task_names_from_return_keys() -> None:
    metrics = {
        "train/loss": [],
        "task/Breakout/return": [],
        "task/Breakout/return_std": [],
        "task/MinAtar/Freeway/return": [],
        "task/Freeway/random_return": [],
    }
    assert task_names(metrics) == ["Breakout", "MinAtar/Freeway"]
