"""The MinAtar multi-task benchmark: report maths, verdicts, files, and when a run is reused."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "mtl_minatar.py"
COMMITTED = REPO / "benchmarks" / "results"


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
        **bench.run_spec(method, seed, bench.parse_args([])),
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


# --- which finished runs are reused, and where a configuration's files go -------------------


def flags_args(bench, out_dir, *flags):
    """The parsed command line `--out-dir OUT_DIR FLAGS...`."""
    return bench.parse_args(["--out-dir", str(out_dir), *flags])


def write_run(bench, args, method, seed, value=10.0):
    """A finished run of `args`'s configuration, written as the child writes it; its path."""
    summary = {
        "tasks": {g: {"return_mean": value, "random_return_mean": 0.0} for g in bench.GAMES},
        "env_steps_per_task": args.steps_per_game,
        "env_steps_per_s": 1000.0,
    }
    bench.write_result(method, seed, args, summary)
    return bench.run_file(args, method, seed)


def test_a_run_of_this_configuration_is_reused(bench, tmp_path, capsys):
    args = flags_args(bench, tmp_path, "--seeds", "0", "--methods", "shared", "independent")
    for method in ("shared", "independent"):
        write_run(bench, args, method, 0)
    assert bench.plan(args) == ([("shared", 0), ("independent", 0)], [])
    assert list(bench.load_runs(args)) == ["independent", "shared"]
    bench.run_all(args)  # nothing to launch
    assert "reusing 2 finished runs with this configuration, running 0" in capsys.readouterr().out


def other_steps(run):
    run["steps_per_game"] = 1000


def other_train_freq(run):
    run["config"]["train_freq"] = 4


def other_method_keys(run):
    run["config"].pop("balancer")


def other_games(run):
    run["games"] = run["games"][:4]


def legacy_other_steps(run):
    """A JSON written before the spec was stored whole, trained for 1000 steps per game."""
    del run["steps_per_game"], run["games"]
    run["env_steps_per_task"] = 1000


@pytest.mark.parametrize(
    "change", [other_steps, other_train_freq, other_method_keys, other_games, legacy_other_steps]
)
def test_a_run_of_another_configuration_is_not_reused(bench, tmp_path, change):
    args = flags_args(bench, tmp_path, "--seeds", "0", "--methods", "shared+pcgrad")
    path = write_run(bench, args, "shared+pcgrad", 0)
    assert bench.plan(args)[0] == [("shared+pcgrad", 0)]
    run = json.loads(path.read_text())
    change(run)
    path.write_text(json.dumps(run))
    assert bench.plan(args) == ([], [("shared+pcgrad", 0)])
    assert bench.load_runs(args) == {}


def test_the_issue_command_reuses_no_default_run_and_writes_elsewhere(bench, tmp_path):
    """`--steps-per-game 1000 --seeds 0 --methods shared independent` beside 100k-step runs."""
    default = flags_args(bench, tmp_path)
    for method in bench.METHODS:
        write_run(bench, default, method, 0)
    flags = ("--steps-per-game", "1000", "--seeds", "0", "--methods", "shared", "independent")
    short = flags_args(bench, tmp_path, *flags)
    assert bench.plan(short) == ([], [("shared", 0), ("independent", 0)])
    # a 100k-step JSON copied to where the 1000-step run goes is still not reused
    target = bench.run_file(short, "shared", 0)
    assert target != bench.run_file(default, "shared", 0)
    target.parent.mkdir(parents=True)
    shutil.copy(bench.run_file(default, "shared", 0), target)
    assert bench.plan(short)[0] == []
    write_run(bench, short, "independent", 0, value=3.0)
    bench.main(["--report-only", "--out-dir", str(tmp_path), *flags])
    text = bench.output_file(short, ".md").read_text()
    assert "| independent | 1 |" in text and "| shared |" not in text
    assert "1,000 env steps per game" in text
    assert not (tmp_path / "mtl_minatar.md").exists()


def test_the_committed_runs_are_reused_by_the_default_plan(bench):
    args = bench.parse_args(["--out-dir", str(COMMITTED)])
    reused, todo = bench.plan(args)
    assert len(reused) == 30 and todo == []
    assert bench.output_file(args, ".md") == COMMITTED / "mtl_minatar.md"
    assert bench.run_file(args, "shared", 0) == COMMITTED / "mtl_minatar_runs" / "shared-seed0.json"


@pytest.mark.parametrize(
    "flags",
    [
        ("--steps-per-game", "1000", "--seeds", "0", "--methods", "shared", "independent"),
        ("--methods", "shared", "independent"),
        ("--seeds", "0"),
        ("--train-freq", "4"),
        ("--eval-episodes", "5"),
    ],
)
def test_a_non_default_report_never_lands_on_the_committed_one(bench, tmp_path, flags):
    args = flags_args(bench, tmp_path, *flags)
    for suffix in (".md", ".png", "_update_ms.json"):
        assert bench.output_file(args, suffix) != tmp_path / f"mtl_minatar{suffix}"


def test_the_default_report_path_ignores_the_order_of_methods_and_seeds(bench, tmp_path):
    args = flags_args(bench, tmp_path, "--seeds", "2", "1", "0", "--methods", *bench.METHODS)
    assert bench.output_file(args, ".md") == tmp_path / "mtl_minatar.md"


def test_the_configuration_hash_is_stable_across_processes_and_dict_orders(bench):
    assert bench.short_hash({"a": 1, "b": {"c": 2, "d": 3}}) == bench.short_hash(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    flags = ["--steps-per-game", "1000", "--methods", "shared", "independent"]
    args = bench.parse_args(flags)
    here = f"{bench.settings_tag(args)} {bench.report_stem(args)}"
    code = (
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        f"args = m.parse_args({flags!r})\n"
        "print(m.settings_tag(args), m.report_stem(args))\n"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == here, out.stderr


def test_the_runs_to_do_are_trials_of_one_valid_sweep(bench, tmp_path):
    from multiq.config import Config
    from multiq.scale.sweep import plan_trials, read_sweep, trial_name

    args = flags_args(bench, tmp_path, "--steps-per-game", "5000")
    todo = [("routed-gumbel", 1), ("shared+popart", 0)]
    path = tmp_path / "s.yaml"
    # as run_all writes it
    path.write_text(yaml.safe_dump(bench.sweep_file(args, todo), sort_keys=False))
    trials = plan_trials(read_sweep(path))
    assert (
        [t.name for t in trials]
        == [trial_name(bench.trial_overrides(m, s)) for m, s in todo]
        == ["scheme=routed,routing=gumbel,seed=1", "scheme=shared,popart=True,seed=0"]
    )
    config = trials[0].config
    assert (config.total_steps_per_task, config.train_freq, config.eval_freq) == (5000, 8, 0)
    expected = Config(**bench.run_config("routed-gumbel", 1, args), total_steps_per_task=5000)
    assert config == expected
