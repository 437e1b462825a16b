"""The MinAtar-paper benchmark: which child each run gets, the verdicts and the report."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import load_benchmarks

from multiq.runio.layout import CSV_HEADER


@pytest.fixture(scope="module")
def loaded():
    return load_benchmarks(runs="paper_runs", paper="minatar_paper")


@pytest.fixture(scope="module")
def bench(loaded):
    return loaded.paper


@pytest.fixture(scope="module")
def runs(loaded):
    """benchmarks/paper_runs.py, what the MinAtar-paper benchmarks share."""
    return loaded.runs


def test_the_verdict_reads_the_mean_then_the_interval(bench):
    assert bench.verdict(10.0, 12.0, 9.5) == "yes"
    assert bench.verdict(8.0, 9.6, 9.5) == "within the interval"
    assert bench.verdict(8.0, 9.0, 9.5) == "no"
    assert bench.verdict(float("nan"), float("nan"), 9.5) == "not yet measured"


def finish_run(folder, returns, steps=1000):
    folder.mkdir(parents=True)
    tasks = {g: {"return_mean": r} for g, r in returns.items()}
    (folder / "summary.json").write_text(json.dumps({"tasks": tasks, "env_steps_per_task": steps}))
    (folder / "model.pt").write_bytes(b"")


def write_metrics(folder, games, points, key="task/{}/return"):
    """Adds rows to a run's metrics.csv: points = [(step, the value of every game), ...] under
    `key` (the eval return by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.csv"
    rows = [] if path.exists() else [",".join(CSV_HEADER)]
    rows += [f"{step},1.0,{key.format(g)},{value}" for step, value in points for g in games]
    with open(path, "a") as handle:
        handle.write("\n".join(rows) + "\n")


TRAINING = "rollout/{}/ep_return"


def roots(tmp_path) -> list[str]:
    """Run folders under tmp_path/runs, the report's copies under tmp_path/results."""
    return ["--run-root", str(tmp_path / "runs"), "--results-root", str(tmp_path / "results")]


def test_the_training_measure_averages_the_logged_returns_of_the_last_window(bench, tmp_path):
    points = [(100, "nan"), (700, 7.0), (800, 8.0), (900, "nan"), (1000, 12.0)]
    write_metrics(tmp_path, bench.GAMES, points, TRAINING)
    step, means = bench.training_returns(tmp_path, window=300)
    assert step == 1000 and means == dict.fromkeys(bench.GAMES, 10.0)  # (8 + 12) / 2
    assert bench.training_returns(tmp_path / "none", window=300) is None


def test_each_run_is_started_resumed_or_kept(bench, runs, tmp_path):
    args = bench.parse_args([*roots(tmp_path), "--steps-per-game", "1000"])
    assert bench.runs(args) == [("shared", 0), ("independent", 0), ("shared", 1), ("shared", 2)]
    new = bench.command(args, "independent", 0)
    assert "--seed" in new and "scheme=independent" in new and str(runs.CONFIG) in new
    assert new[new.index("--run-dir") + 1] == str(tmp_path / "runs" / "independent-seed0")
    (tmp_path / "runs" / "shared-seed1").mkdir(parents=True)
    (tmp_path / "runs" / "shared-seed1" / "checkpoint.pt").write_bytes(b"")
    resume = bench.command(args, "shared", 1)
    assert resume[resume.index("--resume") + 1] == str(tmp_path / "runs" / "shared-seed1")
    assert new[new.index("--async-updates") + 1] == resume[resume.index("--async-updates") + 1]
    sequential = bench.parse_args([*roots(tmp_path), "--async-updates", "false"])
    resume = bench.command(sequential, "shared", 1)
    assert resume[resume.index("--async-updates") + 1] == "false"
    finish_run(tmp_path / "results" / "shared-seed0", dict.fromkeys(bench.GAMES, 1.0))
    assert bench.command(args, "shared", 0) is None


def test_the_report_gives_finished_seeds_and_runs_still_going(bench, tmp_path):
    args = bench.parse_args([*roots(tmp_path), "--steps-per-game", "1000",
                             "--seeds", "0", "1", "--independent-seeds"])  # fmt: skip
    results = tmp_path / "results"
    finish_run(results / "shared-seed0", {**dict.fromkeys(bench.GAMES, 1.0), "Breakout": 10.0})
    write_metrics(results / "shared-seed0", bench.GAMES, [(1000, 50.0)], TRAINING)
    write_metrics(results / "shared-seed1", bench.GAMES, [(500, 2.5)])
    write_metrics(results / "shared-seed1", bench.GAMES, [(600, 3.0)], TRAINING)
    text = bench.report(args)
    one = "1.00 [1.00, 1.00] (n=1)"
    fifty = "50.00 [50.00, 50.00] (n=1)"
    assert f"| Breakout | 9.5 | 10.00 [10.00, 10.00] (n=1) | {fifty} | - | - | yes / yes |" in text
    assert f"| Freeway | 48 | {one} | {fifty} | - | - | no / yes |" in text
    assert f"| Seaquest | 1 | {one} | {fifty} | - | - | yes / yes |" in text
    assert "| shared seed 1 | 500 | eval | 2.50 | 2.50 | 2.50 | 2.50 | 2.50 |" in text
    assert "| shared seed 1 | 600 | training | 3.00 | 3.00 | 3.00 | 3.00 | 3.00 |" in text


def test_runs_live_under_runs_and_what_the_report_reads_in_the_repository(bench):
    args = bench.parse_args([])
    assert args.run_root == bench.RUN_ROOT and args.results_root == bench.RESULTS_ROOT
    assert args.run_root.parts[-2:] == ("runs", "minatar_paper")
    assert args.results_root.parts[-3:] == ("benchmarks", "results", "minatar_paper_runs")


def test_a_run_publishes_what_the_report_reads_and_no_run_state(runs, tmp_path):
    run, result = tmp_path / "run", tmp_path / "result"
    run.mkdir()
    for name in ("metrics.csv", "config.yaml", "checkpoint.pt", "replay.npz"):
        (run / name).write_text(name)
    result.mkdir()
    (result / "summary.json").write_text("{}")  # of an earlier run: this one has none yet
    runs.publish(run, result)
    assert sorted(p.name for p in result.iterdir()) == ["config.yaml", "metrics.csv"]
    assert (result / "metrics.csv").read_text() == "metrics.csv"


CHILD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"  # multiq: checkpoint, exit 130
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)


def test_the_deadline_stops_a_run_with_sigint(runs):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "up\n"  # its handler is in place
    started = time.monotonic()
    assert runs.wait_until(child, time.monotonic() + 0.2) == 130
    assert time.monotonic() - started < 30


def test_without_a_deadline_a_run_ends_by_itself(runs):
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert runs.wait_until(child, None) == 3


def test_no_run_starts_after_one_was_stopped_by_a_signal(bench, tmp_path, monkeypatch):
    def child(args, scheme, seed):
        marker = tmp_path / f"ran-{scheme}-{seed}"
        return [sys.executable, "-c", f"open({str(marker)!r}, 'w'); raise SystemExit(130)"]

    monkeypatch.setattr(bench, "command", child)
    args = bench.parse_args([*roots(tmp_path), "--workers", "1", "--seeds", "0", "1",
                             "--independent-seeds"])  # fmt: skip
    bench.run_all(args)
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == ["ran-shared-0"]


def test_the_figure_draws_a_line_per_run_with_an_evaluation(bench, tmp_path):
    args = bench.parse_args([*roots(tmp_path), "--steps-per-game", "1000"])
    out = tmp_path / "minatar_paper.png"
    assert not bench.plot(args, out) and not out.exists()  # no run has evaluated yet
    results = tmp_path / "results"
    write_metrics(results / "shared-seed0", bench.GAMES, [(500, 2.0), (1000, 3.0)])
    write_metrics(results / "shared-seed0", bench.GAMES, [(600, 1.5)], TRAINING)
    write_metrics(results / "independent-seed0", bench.GAMES, [(500, 1.0)])
    write_metrics(results / "shared-seed1", bench.GAMES, [(200, 0.5)], TRAINING)  # no eval yet
    assert bench.curves(args) == {
        ("shared", 0): {
            "eval": dict.fromkeys(bench.GAMES, [(500, 2.0), (1000, 3.0)]),
            "training": dict.fromkeys(bench.GAMES, [(600, 1.5)]),
        },
        ("independent", 0): {
            "eval": dict.fromkeys(bench.GAMES, [(500, 1.0)]),
            "training": dict.fromkeys(bench.GAMES, []),
        },
    }
    assert bench.plot(args, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
