"""Results tables from summary.json."""

from __future__ import annotations

import math

from multiq.report import format_markdown_table, format_table
from multiq.report.table import aligned_table, format_duration

SUMMARY = {
    "tasks": {
        "Breakout": {
            "return_mean": 5.2,
            "return_std": 1.1,
            "episodes": 10,
            "random_return_mean": 0.5,
            "random_return_std": 0.6,
        },
        "SpaceInvaders": {
            "return_mean": 41.25,
            "return_std": 7.0,
            "episodes": 12,
            "random_return_mean": 3.0,
            "random_return_std": 1.25,
        },
    },
    "env_steps_per_task": 200000,
    "wall_time_s": 512.3,
    "env_steps_per_s": 1950.0,
}


def test_format_table_rows_and_footer() -> None:
    lines = format_table(SUMMARY).splitlines()
    assert lines[0].split()[:3] == ["task", "random", "return"]
    assert "final return (mean ± std)" in lines[0]
    assert set(lines[1]) <= {"-", " "}
    breakout = lines[2]
    assert breakout.startswith("Breakout ")
    assert "0.50 ± 0.60" in breakout and "5.20 ± 1.10" in breakout
    assert breakout.endswith("10")
    assert "41.25 ± 7.00" in lines[3] and lines[3].endswith("12")
    assert lines[-1] == "env steps per task: 200,000 | wall time: 8m 32s | env steps/s: 1,950"


def test_format_table_columns_are_aligned() -> None:
    lines = format_table(SUMMARY).splitlines()[:4]
    assert len({len(line) for line in lines}) == 1
    header, _, breakout, _ = lines
    end = header.index("random return") + len("random return")
    assert breakout[:end].endswith("0.50 ± 0.60")


def test_format_table_missing_and_non_finite_values() -> None:
    summary = {"tasks": {"Pong": {"return_mean": math.nan, "episodes": 0}}}
    text = format_table(summary)
    row = text.splitlines()[2]
    assert row.split() == ["Pong", "-", "nan", "0"]
    assert text.splitlines()[-1] == "env steps per task: - | wall time: -"


def test_format_markdown_table() -> None:
    lines = format_markdown_table(SUMMARY).splitlines()
    assert lines[0] == "| task | random return | final return (mean ± std) | episodes |"
    assert lines[1] == "| :--- | ---: | ---: | ---: |"
    assert lines[2] == "| Breakout | 0.50 ± 0.60 | 5.20 ± 1.10 | 10 |"
    assert lines[3] == "| SpaceInvaders | 3.00 ± 1.25 | 41.25 ± 7.00 | 12 |"
    assert lines[4] == ""
    assert "200,000" in lines[5]


def test_format_duration() -> None:
    assert format_duration(45.21) == "45.2s"
    assert format_duration(512.3) == "8m 32s"
    assert format_duration(3723) == "1h 02m 03s"
    assert format_duration(None) == "-"


def test_aligned_table_underlines_the_header_and_aligns_labels_left_numbers_right():
    text = aligned_table([("task", "return"), ("Breakout", "3.10"), ("Freeway", "12.00")])
    assert text.splitlines() == [
        "task      return",
        "--------  ------",
        "Breakout    3.10",
        "Freeway    12.00",
    ]
