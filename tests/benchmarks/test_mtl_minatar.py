"""The MinAtar multi-task benchmark's report maths: normalised scores, games, verdicts, files."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mtl_minatar.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("mtl_minatar", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_run(bench, method, seed, returns, randoms=None):
    """A result dict like the child process writes; returns/randoms: one value per game."""
    randoms = randoms if randoms is not None else [0.0] * len(bench.GAMES)
    return {
        "method": method,
        "seed": seed,
        "config": {"train_freq": 8, "eval_episodes": 20},
        "tasks": {
            g: {"return_mean": r, "random_return_mean": z}
            for g, r, z in zip(bench.GAMES, returns, randoms, strict=True)
        },
        "env_steps_per_task": 100_000,
        "env_steps_per_s": 1000.0 + seed,
    }


def test_normalised_score_by_hand(bench):
    # baseline learns games 0-3 clearly (all seeds well above random 1.0); game 4 not at all
    base = [[11, 21, 5, 3, 1], [9, 19, 5, 3, 0], [10, 20, 5, 3, 2]]
    runs = {
        "independent": [
            make_run(bench, "independent", s, r, [1.0] * 5) for s, r in enumerate(base)
        ],
        "shared": [make_run(bench, "shared", 0, [19, 39, 9, 5, 100], [1.0] * 5)],
    }
    np.testing.assert_array_equal(bench.scored_games(runs), [True, True, True, True, False])
    scores = bench.normalised_scores(runs)
    # baseline means minus random: 9, 19, 4, 2; shared minus random: 18, 38, 8, 4 -> 2 each
    np.testing.assert_allclose(scores["shared"], [2.0])
    np.testing.assert_allclose(scores["independent"].mean(), 1.0)


def test_bootstrap_interval_brackets_the_mean_and_is_one_point_for_one_seed(bench):
    rng = np.random.default_rng(0)
    low, high = bench.bootstrap_ci(np.array([1.0, 2.0, 3.0, 4.0]), rng)
    assert 1.0 <= low < 2.5 < high <= 4.0
    assert bench.bootstrap_ci(np.array([7.0]), rng) == (7.0, 7.0)


@pytest.mark.parametrize(
    ("score", "seeds", "phrase"),
    [
        ((1.3, 1.1, 1.5), [0, 1, 2], "beat independent"),
        ((0.7, 0.5, 0.9), [0, 1, 2], "did worse than independent"),
        ((1.1, 0.9, 1.3), [0, 1, 2], "interval includes 1"),
        ((0.95, 0.8, 1.1), [0, 1, 2], "did not beat independent"),
        ((1.5, 1.5, 1.5), [0], "no verdict"),
    ],
)
def test_verdicts(bench, score, seeds, phrase):
    table = {
        "independent": {"score": (1, 1, 1), "seeds": seeds},
        "m": {"score": score, "seeds": seeds},
    }
    (line,) = bench.verdicts(table)
    assert line.startswith("- **m**") and phrase in line


def test_report_writes_table_plot_and_verdicts(bench, tmp_path):
    runs_dir = tmp_path / "mtl_minatar_runs"
    runs_dir.mkdir()
    rng = np.random.default_rng(1)
    for method, scale in (("independent", 1.0), ("shared", 2.0)):
        for seed in range(3):
            returns = list(scale * (10 + rng.random(5)))
            run = make_run(bench, method, seed, returns)
            (runs_dir / f"{method}-seed{seed}.json").write_text(json.dumps(run))
    overhead = {
        "update_ms": {"shared": 10.0},
        "alone_sps": {"shared": 2000.0, "independent": 1000.0},
    }
    (tmp_path / "mtl_minatar_update_ms.json").write_text(json.dumps(overhead))
    bench.main(["--report-only", "--out-dir", str(tmp_path)])
    text = (tmp_path / "mtl_minatar.md").read_text()
    assert "| independent | 3 |" in text and "| shared | 3 |" in text
    assert "**shared**" in text and "beat independent (the whole interval is above 1)" in text
    assert "| 1000 | 0.50x |" in text  # independent alone, relative to shared
    assert (tmp_path / "mtl_minatar.png").stat().st_size > 0
