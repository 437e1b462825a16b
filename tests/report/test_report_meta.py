"""The meta report: meta.csv reading, adapt-k tables and intervals on hand-built numbers."""

from __future__ import annotations

import pytest

from multiq.recipes.meta import write_meta_csv
from multiq.report.meta import adapt_summary, adapt_table, read_meta_csv
from multiq.report.metrics import ReportError
from multiq.runio.layout import META_KEYS


def rows(init: str, returns_by_k: dict[int, list[float]]) -> list[dict]:
    return [
        {"init": init, "task": f"t{i}", "seed": 0, "k": k, "return": value}
        for k, values in returns_by_k.items()
        for i, value in enumerate(values)
    ]


def test_adapt_summary_means_and_exact_intervals_for_equal_values():
    data = rows("a", {0: [1.0, 3.0], 100: [5.0, 5.0]})
    summary = adapt_summary(data)
    mean, low, high, n = summary["a"][0]
    assert (mean, n) == (2.0, 2) and 1.0 <= low <= 2.0 <= high <= 3.0
    assert summary["a"][100] == (5.0, 5.0, 5.0, 2)


def test_adapt_table_has_a_row_per_init_and_a_column_per_k():
    table = adapt_table({"rows": rows("meta", {0: [2.0], 10: [4.0]}) + rows("scratch", {0: [1.0]})})
    lines = table.splitlines()
    assert lines[0] == "| init | k = 0 | k = 10 |"
    assert "| meta | 2.0 [2.0, 2.0] | 4.0 [4.0, 4.0] |" in lines
    assert "| scratch | 1.0 [1.0, 1.0] | – |" in lines


def test_meta_csv_round_trips_and_a_wrong_header_is_refused(tmp_path):
    row = {"iteration": 0, "env_steps": 100, "wall_time_s": 1.5, "inner_return": 9.0,
           "pre_return": float("nan"), "post_return": 12.25}  # fmt: skip
    write_meta_csv(tmp_path / "meta.csv", [row])
    (back,) = read_meta_csv(tmp_path)
    assert back["post_return"] == 12.25 and back["env_steps"] == 100
    assert back["pre_return"] != back["pre_return"]  # NaN kept
    (tmp_path / "meta.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReportError, match="header"):
        read_meta_csv(tmp_path)
    assert META_KEYS[0] == "iteration"
