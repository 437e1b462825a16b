"""Gradient-conflict map (conflicts.png): parsing pair keys against task names, the ranking and
its hand-computed means, the summary text, the figure, and `multiq report` / `multiq compare
--conflicts` from run folders alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from multiq.cli import main
from multiq.report import (
    CONFLICTS_FILE,
    ConflictMap,
    build_conflict_figure,
    conflict_series,
    format_conflicts,
    mean_shares,
    most_conflicting,
    plot_conflict_comparison,
    plot_conflicts,
    read_metrics,
)
from multiq.report.metrics import ReportError
from multiq.runio.layout import CSV_HEADER

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
A, B, C = "Pong-v5:x", "grid:8-rooms", "a.b"
STEPS = (100, 200, 300, 400)
COSINES = {  # (a, b) -> cosine at STEPS
    (A, B): (-0.2, -0.4, -0.6, -0.8),  # mean -0.5, last half (steps 300, 400) -0.7
    (A, C): (0.5, 0.3, 0.1, -0.1),  # mean 0.2, last half 0.0
    (B, C): (0.1, -0.1, 0.1, -0.3),  # mean -0.05, last half -0.1
}
SHARES = {A: (0.5, 0.5, 0.4, 0.4), B: (0.3, 0.3, 0.4, 0.4), C: (0.2, 0.2, 0.2, 0.2)}


def write_metrics(folder: Path, rows: list[tuple[int, str, float]]) -> Path:
    """metrics.csv with `rows` of (step, key, value)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(CSV_HEADER), *(f"{step},1.0,{key},{value}" for step, key, value in rows)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder


def map_rows(cosines=COSINES, shares=SHARES) -> list[tuple[int, str, float]]:
    """The rows a trainer logs: per step, every pair's cosine and every task's share."""
    rows = []
    for index, step in enumerate(STEPS):
        rows += [
            (step, f"mtl/grad_cos/{a}/{b}", values[index]) for (a, b), values in cosines.items()
        ]
        rows += [
            (step, f"task/{task}/grad_share", values[index]) for task, values in shares.items()
        ]
    return rows


def return_rows(tasks=(A, B, C)) -> list[tuple[int, str, float]]:
    return [(step, f"task/{task}/return", 1.0) for step in (200, 400) for task in tasks]


def write_run(folder: Path, rows: list[tuple[int, str, float]], scheme: str = "shared") -> Path:
    """A finished run folder: metrics.csv, summary.json and config.yaml."""
    write_metrics(folder, rows)
    tasks = {t: {"return_mean": 1.0, "return_std": 0.0, "episodes": 2, "random_return_mean": 0.0}
             for t in (A, B, C)}  # fmt: skip
    summary = {"tasks": tasks, "env_steps_per_task": 400, "wall_time_s": 1.0,
               "env_steps_per_s": 400.0}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text(f"scheme: {scheme}\nbalancer: fixed\nseed: 0\n")
    return folder


def test_pair_keys_split_against_task_names_with_dashes_colons_and_dots(tmp_path: Path):
    conflicts = conflict_series(read_metrics(write_metrics(tmp_path, map_rows())))
    assert list(conflicts.pairs) == [(A, B), (A, C), (B, C)]
    assert conflicts.pairs[A, B] == list(zip(STEPS, COSINES[A, B], strict=True))
    assert list(conflicts.shares) == [A, B, C]
    assert conflicts.shares[C] == [(step, 0.2) for step in STEPS]


def test_a_task_name_holding_a_slash_is_split_by_the_names_the_run_logged():
    metrics = {
        "mtl/grad_cos/ALE/Pong/b": [(10, -0.3)],
        "task/ALE/Pong/grad_share": [(10, 0.6)],
        "task/b/return": [(10, 1.0)],
    }
    assert list(conflict_series(metrics).pairs) == [("ALE/Pong", "b")]
    # no known names and two ways to split: refused, not guessed
    with pytest.raises(ReportError, match="does not name one pair"):
        conflict_series({"mtl/grad_cos/x/y/z": [(10, 0.1)]})
    # unknown names with one `/`: the only split
    assert list(conflict_series({"mtl/grad_cos/x/y": [(10, 0.1)]}).pairs) == [("x", "y")]


def test_pairs_rank_by_mean_cosine_with_the_last_half_beside_it():
    metrics = {f"mtl/grad_cos/{a}/{b}": list(zip(STEPS, v, strict=True))
               for (a, b), v in COSINES.items()}  # fmt: skip
    metrics["task/x/return"] = [(100, math.nan)]
    ranking = most_conflicting(conflict_series(metrics, tasks=(A, B, C)))
    assert [entry.pair for entry in ranking] == [(A, B), (B, C), (A, C)]
    assert [entry.mean_cos for entry in ranking] == pytest.approx([-0.5, -0.05, 0.2])
    assert [entry.late_mean_cos for entry in ranking] == pytest.approx([-0.7, -0.1, 0.0])
    first = ranking[0]
    assert (first.num_logs, first.first_step, first.last_step) == (4, 100, 400)
    assert first.late_from_step == 200 and first.label == f"{A} / {B}"
    assert [entry.in_conflict for entry in ranking] == [True, True, False]


def test_non_finite_logs_are_left_out_of_the_means():
    metrics = {f"mtl/grad_cos/{A}/{B}": [(100, math.nan), (200, -0.4), (400, 0.2)],
               f"mtl/grad_cos/{A}/{C}": [(100, math.nan)]}  # fmt: skip
    ranking = most_conflicting(conflict_series(metrics, tasks=(A, B, C)))
    assert ranking[0].mean_cos == pytest.approx(-0.1) and ranking[0].num_logs == 2
    assert ranking[0].late_mean_cos == pytest.approx(0.2)  # only step 400 is > 200
    assert ranking[1].pair == (A, C) and math.isnan(ranking[1].mean_cos)  # all-nan pair last


def test_summary_lists_the_pairs_in_conflict_and_the_mean_grad_shares(tmp_path: Path):
    conflicts = conflict_series(read_metrics(write_metrics(tmp_path, map_rows())))
    shares = mean_shares(conflicts)
    assert shares == pytest.approx({A: 0.45, B: 0.35, C: 0.2})
    text = format_conflicts(most_conflicting(conflicts), shares)
    first, second = f"{A} / {B}", f"{B} / {C}"
    assert first in text and second in text and f"{A} / {C}" not in text
    assert text.index(first) < text.index(second)
    assert "-0.500" in text and "-0.700" in text and "-0.050" in text
    assert "2 of 3 pairs in conflict" in text and "after step 200" in text
    assert f"{A} 0.45, {B} 0.35, {C} 0.20" in text
    only_one = format_conflicts(most_conflicting(conflicts), shares, top=1)
    assert second not in only_one and "1 more not shown" in only_one


def test_summary_says_no_pair_in_conflict_when_every_mean_is_at_least_zero(tmp_path: Path):
    agreeing = {(A, B): (0.4, 0.2, 0.2, 0.0), (A, C): (0.9, 0.9, 0.9, 0.9)}
    conflicts = conflict_series(read_metrics(write_metrics(tmp_path, map_rows(agreeing))))
    text = format_conflicts(most_conflicting(conflicts), mean_shares(conflicts))
    assert "no pair in conflict" in text and f"lowest: {A} / {B} (mean cos +0.200" in text


def test_the_map_is_drawn_from_the_run_folder_alone(tmp_path: Path):
    run = write_metrics(tmp_path / "run", map_rows())  # no summary.json, no config.yaml
    path = plot_conflicts(run)
    assert path == run / CONFLICTS_FILE
    assert path.read_bytes().startswith(PNG_MAGIC)
    other = plot_conflicts(run, tmp_path / "elsewhere.png")
    assert other == tmp_path / "elsewhere.png" and other.is_file()


def test_no_map_no_file(tmp_path: Path):
    run = write_metrics(tmp_path / "run", [(100, f"task/{A}/return", 1.0)])
    assert plot_conflicts(run) is None
    assert not (run / CONFLICTS_FILE).exists()
    assert not conflict_series(read_metrics(run))


def test_figure_rows_are_pairs_columns_steps_and_colours_fixed_to_plus_minus_one():
    one = conflict_series({f"mtl/grad_cos/{A}/{B}": [(100, -0.5), (300, 0.25)]}, tasks=(A, B))
    two = conflict_series(
        {f"mtl/grad_cos/{A}/{C}": [(50, 0.5)], f"task/{A}/grad_share": [(50, 0.7)]},
        tasks=(A, C),
    )
    figure = build_conflict_figure({"run-one": one, "run-two": two})
    heat_one, heat_two = figure.axes[:2]  # the heat maps' row, then the shares' row
    assert [heat_one.get_title(), heat_two.get_title()] == ["run-one", "run-two"]
    assert [t.get_text() for t in heat_one.get_yticklabels()] == [f"{A} / {B}", f"{A} / {C}"]
    mesh = heat_one.collections[0]
    assert mesh.get_clim() == (-1.0, 1.0)
    cells = np.ma.getdata(mesh.get_array()).reshape(2, 2)
    mask = np.ma.getmaskarray(mesh.get_array()).reshape(2, 2)
    assert cells[0].tolist() == [-0.5, 0.25] and mask[1].all()  # run one never logged A / C
    # cell i spans (step i-1, step i]; the first is as wide as the second: 100 - 200 < 0 -> 0
    assert heat_one.get_xlim() == (0.0, 300.0)
    assert len(figure.axes) == 5  # two heat maps, two share panels, one shared colourbar


def test_comparison_draws_the_runs_with_a_map_and_names_those_without(tmp_path: Path):
    with_map = write_metrics(tmp_path / "a" / "seed0", map_rows())
    without = write_metrics(tmp_path / "b" / "seed0", return_rows())
    path, lines = plot_conflict_comparison([with_map, without], tmp_path / "c.png")
    assert path == tmp_path / "c.png" and path.read_bytes().startswith(PNG_MAGIC)
    assert list(lines) == ["a/seed0", "b/seed0"]  # same folder names: parent/name
    assert lines["a/seed0"].startswith(f"most conflict: {A} / {B} (mean cos -0.500")
    assert "no gradient-conflict map" in lines["b/seed0"]
    assert plot_conflict_comparison([without], tmp_path / "d.png")[0] is None
    assert not (tmp_path / "d.png").exists()


def test_multiq_report_writes_the_map_and_prints_the_most_conflicting_pair(tmp_path, capsys):
    run = write_run(tmp_path / "run", map_rows() + return_rows())
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert (run / CONFLICTS_FILE).read_bytes().startswith(PNG_MAGIC)
    assert out.index(f"{A} / {B}") < out.index(f"{B} / {C}")
    assert f"gradient-conflict map: {run / CONFLICTS_FILE}" in out


def test_multiq_report_without_a_map_says_nothing_of_it(tmp_path, capsys):
    run = write_run(tmp_path / "run", return_rows(), scheme="independent")
    assert main(["report", str(run)]) == 0
    assert "conflict" not in capsys.readouterr().out
    assert not (run / CONFLICTS_FILE).exists()


def test_multiq_compare_conflicts_sets_the_runs_side_by_side(tmp_path, capsys):
    shared = write_run(tmp_path / "shared", map_rows() + return_rows())
    flipped = {pair: tuple(-v for v in values) for pair, values in COSINES.items()}
    pcgrad = write_run(tmp_path / "pcgrad", map_rows(flipped) + return_rows(), scheme="routed")
    alone = write_run(tmp_path / "alone", return_rows(), scheme="independent")
    out = tmp_path / "out"
    args = ["compare", shared, pcgrad, alone, "--out", out, "--reps", "50", "--conflicts"]
    assert main([str(a) for a in args]) == 0
    stdout = capsys.readouterr().out
    assert (out / CONFLICTS_FILE).read_bytes().startswith(PNG_MAGIC)
    assert f"shared: most conflict: {A} / {B}" in stdout
    assert f"pcgrad: most conflict: {A} / {C}" in stdout  # flipped: -0.2 is now the lowest
    assert "alone: logged no gradient-conflict map" in stdout
    assert stdout.rstrip().endswith("report.html, conflicts.png")
    assert "Gradient-conflict maps" in (out / "report.html").read_text()
    # without a map in any run: no image (an old one is removed) and a clear line, no error
    assert main(["compare", str(alone), "--out", str(out), "--reps", "50", "--conflicts"]) == 0
    assert "No run logged a gradient-conflict map" in capsys.readouterr().out
    assert not (out / CONFLICTS_FILE).exists()


def test_an_empty_map_is_falsy():
    assert not ConflictMap(pairs={}, shares={})
    assert ConflictMap(pairs={(A, B): [(1, 0.0)]}, shares={})
