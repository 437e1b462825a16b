"""`multiq compare`: rliable's aggregates and the bootstrap on hand-built scores, grouping,
normalisation, mixed task sets, and the files it writes (report.html embeds every image)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from multiq.report.compare import (
    aggregate_intervals,
    compare,
    find_runs,
    improvement_probabilities,
    load_run,
    score_matrices,
)
from multiq.report.metrics import ReportError


def test_iqm_and_its_bootstrap_interval_by_hand():
    # IQM of 1..8 (one run, eight tasks): the middle half 3, 4, 5, 6 -> 4.5
    scores = {"a": np.arange(1.0, 9.0)[None, :]}
    (point, low, high) = aggregate_intervals(scores, reps=200)["a"]["IQM"]
    assert point == 4.5 and low == high == 4.5  # one run per task: resampling changes nothing
    # two runs of one task scoring 0 and 1: resampled means are 0, 0.5, 1 with probabilities
    # 1/4, 1/2, 1/4, so the 95% percentile interval is [0, 1] around the mean 0.5
    two = {"b": np.array([[0.0], [1.0]])}
    point, low, high = aggregate_intervals(two, reps=4000)["b"]["mean"]
    assert (point, low, high) == (0.5, 0.0, 1.0)
    gap = aggregate_intervals({"c": np.array([[0.5, 2.0]])}, reps=10)["c"]["optimality gap"]
    assert gap[0] == pytest.approx(0.25)  # mean of max(1 - score, 0): (0.5 + 0) / 2


def test_probability_of_improvement_by_hand():
    # x runs 2, 3 against y runs 1, 4: of the 4 pairs, x wins 2 -> 0.5
    probabilities = improvement_probabilities(
        {"x": np.array([[2.0], [3.0]]), "y": np.array([[1.0], [4.0]])}, reps=50
    )
    assert probabilities[("x", "y")][0] == pytest.approx(0.5)
    assert set(probabilities) == {("x", "y"), ("y", "x")}


def write_run(folder: Path, scheme: str, seed: int, returns: dict, random=0.0) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"scheme: {scheme}\nbalancer: fixed\nseed: {seed}\n")
    tasks = {n: {"return_mean": r, "return_std": 0.0, "episodes": 5, "random_return_mean": random}
             for n, r in returns.items()}  # fmt: skip
    summary = {"tasks": tasks, "env_steps_per_task": 10, "wall_time_s": 1.0,
               "env_steps_per_s": 10.0}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    for seed in range(3):
        write_run(tmp_path / "sweep" / f"a{seed}", "shared", seed, {"A": 10.0 + seed, "B": 4.0})
        write_run(tmp_path / "sweep" / f"b{seed}", "independent", seed, {"A": 5.0, "B": 2.0})
    return tmp_path / "sweep"


def test_runs_are_found_in_a_sweep_folder_and_grouped_by_config(sweep: Path):
    runs = [load_run(p, ("scheme", "balancer")) for p in find_runs([sweep])]
    assert len(runs) == 6 and {r.group for r in runs} == {"shared/fixed", "independent/fixed"}
    scores = score_matrices(runs, ["A", "B"], "random,independent/fixed")
    # independent's mean is 1 per task after normalising; shared scores 10/5.. and 4/2 = 2
    assert np.allclose(scores["independent/fixed"], 1.0)
    assert np.allclose(scores["shared/fixed"][:, 1], 2.0)
    assert np.allclose(scores["shared/fixed"][:, 0], [2.0, 2.2, 2.4])
    best = score_matrices(runs, ["A", "B"], "random,best")
    assert np.allclose(best["shared/fixed"].mean(axis=0), 1.0)
    with pytest.raises(ReportError, match="no group 'nope'"):
        score_matrices(runs, ["A", "B"], "random,nope")


def test_mixed_task_sets_are_refused_naming_both_runs(sweep: Path, tmp_path: Path):
    write_run(tmp_path / "other", "shared", 0, {"A": 1.0, "C": 2.0})
    with pytest.raises(ReportError, match=r"different tasks.*'C'"):
        compare([sweep, tmp_path / "other"], tmp_path / "out")


def test_compare_writes_markdown_png_and_a_self_contained_html(sweep: Path, tmp_path: Path):
    markdown = compare([sweep], tmp_path / "out", normalise="random,independent/fixed", reps=200)
    text = markdown.read_text()
    assert "| shared/fixed | 3 | 11.00 | 4.00 |" in text
    assert "IQM" in text and "P(X > Y)" in text
    page = (tmp_path / "out" / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 1 and (tmp_path / "out" / "compare.png").is_file()
    assert page.count("<table>") == 3 and "http" not in page.replace("<!DOCTYPE html>", "")


def test_compare_cli_and_its_errors(sweep: Path, tmp_path: Path, capsys):
    from multiq.cli import main

    assert main(["compare", str(sweep), "--out", str(tmp_path / "o"), "--reps", "100"]) == 0
    assert "IQM" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "neither a finished run folder" in err and "Traceback" not in err


def test_report_html_of_a_run_embeds_every_plot_and_table(tmp_path: Path, capsys):
    from multiq.cli import main

    run = tmp_path / "run"
    assert main(["train", "--tasks", "gym:CartPole-v1", "--steps", "1500", "--run-dir", str(run),
                 "--set", "learning_starts=500", "--set", "eval_freq=500", "--set",
                 "eval_episodes=2", "--set", "tensorboard=false", "--set", "progress_bar=false",
                 "--device", "cpu"]) == 0  # fmt: skip
    assert main(["report", str(run), "--html"]) == 0
    page = (run / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = [name for name in ("curves.png", "routing.png") if (run / name).is_file()]
    assert len(images) == len(pngs) == 1  # curves only: a shared net has no routing weights
    assert "<h2>Results (last evaluation)</h2>" in page and "CartPole" in page
    assert "<h2>Config</h2>" in page and "total_steps_per_task: 1500" in page
    assert page.count("<table>") == 1
