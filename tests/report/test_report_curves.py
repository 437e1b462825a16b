"""Learning curves (curves.png) and write_report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection

from multiq.report import (
    ReportError,
    build_figure,
    plot_curves,
    read_metrics,
    read_summary,
    write_report,
)
from multiq.report.curves import run_title

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUMMARY = {
    "tasks": {
        "Breakout": {"return_mean": 3.0, "return_std": 1.0, "episodes": 10},
        "Freeway": {
            "return_mean": 12.0,
            "return_std": 0.5,
            "episodes": 10,
            "random_return_mean": 0.25,
            "random_return_std": 0.1,
        },
    },
    "env_steps_per_task": 3000,
    "wall_time_s": 60.0,
    "env_steps_per_s": 100.0,
}


def _write_run(run_dir: Path, summary: bool = True) -> Path:
    rows = ["step,wall_time_s,key,value"]
    rows += [f"0,0.0,task/Breakout/random_return,{0.5}"]
    for step, mean in ((1000, 1.0), (2000, 2.0), (3000, 3.0)):
        rows += [
            f"{step},{step / 100},task/Breakout/return,{mean}",
            f"{step},{step / 100},task/Breakout/return_std,0.5",
            f"{step},{step / 100},train/loss,0.1",
        ]
    rows += ["3000,30.0,task/Freeway/return,12.0"]
    (run_dir / "metrics.csv").write_text("\n".join(rows) + "\n")
    if summary:
        (run_dir / "summary.json").write_text(json.dumps(SUMMARY))
    return run_dir


def _dashed_levels(axes: Axes) -> list[float]:
    return [line.get_ydata()[0] for line in axes.lines if line.get_linestyle() == "--"]


def test_plot_curves_writes_png(tmp_path: Path) -> None:
    path = plot_curves(_write_run(tmp_path))
    assert path == tmp_path / "curves.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_plot_curves_custom_path_and_no_summary(tmp_path: Path) -> None:
    out = tmp_path / "elsewhere.png"
    assert plot_curves(_write_run(tmp_path, summary=False), out_path=out) == out
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "curves.png").exists()


def task_axes(figure) -> list[Axes]:
    """The panels that plot a task (the legend panel has no title)."""
    return [axes for axes in figure.axes if axes.get_title()]


def test_figure_has_one_axes_per_task_and_one_legend(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    figure = build_figure(read_metrics(run_dir), read_summary(run_dir))
    assert [axes.get_title() for axes in task_axes(figure)] == ["Breakout", "Freeway"]
    for axes in task_axes(figure):
        assert axes.get_xlabel() == "env steps per task"
        assert axes.get_ylabel() == "return"
        assert axes.get_legend() is None  # no legend over the data
    # two tasks in a row of two: no free panel, so the one legend sits below the panels
    assert len(figure.legends) == 1
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["eval return (mean)", "95% interval of the mean", "random policy"]


def test_curve_band_and_random_line(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    breakout, freeway = task_axes(build_figure(read_metrics(run_dir), read_summary(run_dir)))
    assert list(breakout.lines[0].get_xdata()) == [1000, 2000, 3000]
    assert list(breakout.lines[0].get_ydata()) == [1.0, 2.0, 3.0]
    (band,) = [c for c in breakout.collections if isinstance(c, PolyCollection)]
    # no min/max logged: mean +- 1.96 * std / sqrt(10 episodes), std 0.5 -> +-0.31
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(1.0 - 1.96 * 0.5 / 10**0.5)
    assert max(ys) == pytest.approx(3.0 + 1.96 * 0.5 / 10**0.5)
    assert _dashed_levels(breakout) == [0.5]  # logged random_return wins over summary.json
    assert _dashed_levels(freeway) == [0.25]  # from summary.json
    assert freeway.lines[0].get_marker() == "o"  # a single eval point is drawn as a marker


def test_band_is_the_episode_range_and_training_returns_are_drawn(tmp_path: Path) -> None:
    rows = ["step,wall_time_s,key,value"]
    for step, lo, mean, hi in ((1000, 0.0, 1.0, 4.0), (2000, 2.0, 3.0, 5.0)):
        rows += [
            f"{step},1,task/A/return,{mean}",
            f"{step},1,task/A/return_std,9.0",
            f"{step},1,task/A/return_min,{lo}",
            f"{step},1,task/A/return_max,{hi}",
        ]
    rows += ["500,1,rollout/A/ep_return,nan", "1500,1,rollout/A/ep_return,0.5"]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    figure = build_figure(read_metrics(tmp_path))
    (axes,) = task_axes(figure)
    (band,) = [c for c in axes.collections if isinstance(c, PolyCollection)]
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == 0.0 and max(ys) == 5.0  # never below the worst episode
    training = [line for line in axes.lines if "training" in line.get_label()]
    assert [list(line.get_xdata()) for line in training] == [[1500]]  # the NaN is skipped
    # one task in a grid of one: the legend goes below; the band is labelled as a range
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "eval episodes, min to max" in labels


def test_grid_keeps_task_axes_and_puts_the_legend_in_the_free_panel() -> None:
    metrics = {f"task/T{i}/return": [(100, float(i))] for i in range(5)}
    figure = build_figure(metrics)
    assert len(task_axes(figure)) == 5 and len(figure.axes) == 6
    spare = figure.axes[5]
    assert not spare.axison and spare.get_legend() is not None
    assert all(not _dashed_levels(axes) for axes in figure.axes)


def test_title_says_what_ran(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "myrun" if (tmp_path / "myrun").mkdir() is None else tmp_path)
    (run_dir / "config.yaml").write_text(
        "scheme: shared\nbalancer: pcgrad\nseed: 3\ntotal_steps_per_task: 80000\n"
    )
    assert run_title(run_dir) == "myrun: shared, pcgrad, seed 3, 80,000 env steps per task"
    (run_dir / "config.yaml").write_text(": not yaml [")
    assert run_title(run_dir) == "myrun"


def test_no_eval_returns_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("step,wall_time_s,key,value\n10,0.1,train/loss,1.0\n")
    with pytest.raises(ReportError, match="no evaluation has run yet"):
        plot_curves(tmp_path)


def test_write_report(tmp_path: Path) -> None:
    table, path = write_report(_write_run(tmp_path))
    assert path == tmp_path / "curves.png" and path.read_bytes().startswith(PNG_MAGIC)
    assert "Breakout" in table and "3.00 ± 1.00" in table and "12.00 ± 0.50" in table


def test_write_report_needs_summary(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        write_report(_write_run(tmp_path, summary=False))


def test_plot_curves_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (run_dir / "curves.png").symlink_to(target)
    path = plot_curves(run_dir)
    assert not path.is_symlink() and path.read_bytes().startswith(PNG_MAGIC)
    assert target.read_text() == "keep me"


def test_plot_curves_format_follows_the_suffix(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    path = plot_curves(run_dir, tmp_path / "curves.svg")
    assert b"<svg" in path.read_bytes()[:1000]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
