"""Sweeps on a local Ray: trials become run folders, a crashing trial is reported while the
other finishes, a resumed sweep keeps its finished trials; bad sweep files fail clearly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from multiq.cli import main
from multiq.collect.cluster import check_address
from multiq.errors import ConfigError, MultiqError
from multiq.scale.sweep import plan_trials, read_sweep, trial_name

TINY = {
    "tasks": "gym:CartPole-v1", "total_steps_per_task": 600, "learning_starts": 200,
    "eval_freq": 0, "eval_episodes": 2, "progress_bar": False, "tensorboard": False,
    "device": "cpu", "hidden_size": 16,
}  # fmt: skip


def write_sweep(path: Path, grid: dict, trials=None, **extra) -> Path:
    path.write_text(yaml.safe_dump({"name": "t", "config": TINY, "grid": grid,
                                    "trials": trials or [], **extra}))  # fmt: skip
    return path


def test_plan_is_the_grid_product_then_the_listed_trials(tmp_path):
    sweep = read_sweep(write_sweep(tmp_path / "s.yaml", {"scheme": ["shared", "independent"],
                                                        "seed": [0, 1]},
                                   trials=[{"balancer": "pcgrad"}]))  # fmt: skip
    trials = plan_trials(sweep, tmp_path)
    assert [t.name for t in trials] == [
        "scheme=shared,seed=0", "scheme=shared,seed=1", "scheme=independent,seed=0",
        "scheme=independent,seed=1", "balancer=pcgrad",
    ]  # fmt: skip
    assert trials[3].config.scheme == "independent" and trials[3].config.seed == 1
    assert trials[0].config.total_steps_per_task == 600
    assert trial_name({"tasks": ["a", "b"]}) == "tasks=-a-,-b-"


def test_a_sweep_of_listed_trials_alone_has_no_extra_base_trial(tmp_path):
    sweep = read_sweep(write_sweep(tmp_path / "s.yaml", {}, trials=[{"seed": 1}, {"seed": 2}]))
    assert [t.name for t in plan_trials(sweep, tmp_path)] == ["seed=1", "seed=2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"grid": {"learnig_rate": [1e-3]}}, "did you mean 'learning_rate'"),
        ({"grid": {}}, "empty grid"),
        ({"grid": {"seed": []}}, "non-empty lists"),
        ({"grid": {"seed": [-1]}}, "seed"),
        ({"grdi": {"seed": [0]}}, "did you mean 'grid'"),
    ],
)
def test_bad_sweep_files_are_refused(tmp_path, content, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ConfigError, match=message):
        plan_trials(read_sweep(path), tmp_path)


def test_an_unreachable_address_fails_within_seconds(tmp_path, capsys):
    started = time.monotonic()
    with pytest.raises(MultiqError, match="no Ray cluster answers"):
        check_address("127.0.0.1:9")  # the discard port: nothing listens
    assert time.monotonic() - started < 10
    path = write_sweep(tmp_path / "s.yaml", {"seed": [0]})
    code = main(["sweep", str(path), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "no Ray cluster answers" in err and "Traceback" not in err


def test_a_local_ray_sweep_runs_reports_a_crash_and_resumes(tmp_path, capsys):
    # seed 0 trains; the second trial names an env that cannot be built, so it fails
    path = write_sweep(tmp_path / "s.yaml", {"seed": [0]},
                       trials=[{"seed": 1, "tasks": "gym:CartPole-v1",
                                "env_imports": ["no_such_module_for_sweep"]}])  # fmt: skip
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--max-concurrent", "2"]) == 1
    printed = capsys.readouterr()
    states = json.loads((out / "sweep.json").read_text())
    good, bad = "seed=0", next(n for n in states if n != "seed=0")
    assert states[good]["state"] == "finished" and states[bad]["state"] == "failed"
    assert "no_such_module_for_sweep" in states[bad]["error"]
    assert (out / good / "model.pt").is_file() and "failed" in printed.out
    # resuming keeps the finished trial (its files are not written again) and retries the other
    stamp = (out / good / "model.pt").stat().st_mtime_ns
    assert main(["sweep", "--resume", str(out)]) == 1
    assert (out / good / "model.pt").stat().st_mtime_ns == stamp
    # the sweep folder compares as a whole
    assert main(["compare", str(out), "--group-by", "seed", "--out", str(tmp_path / "c"),
                 "--reps", "50"]) == 0  # fmt: skip
    assert (tmp_path / "c" / "compare.md").is_file()


def test_the_saved_sweep_needs_no_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**TINY, "hidden_size": 24}))
    path = write_sweep(tmp_path / "s.yaml", {"seed": [0, 1]}, base="base.yaml")
    from multiq.scale.sweep import base_config

    sweep = read_sweep(path)
    saved = {**sweep, "base": None, "config": base_config(sweep, tmp_path).given_values()}
    again = tmp_path / "elsewhere" / "sweep.yaml"
    again.parent.mkdir()
    again.write_text(yaml.safe_dump(saved))
    trials = plan_trials(read_sweep(again), again.parent)
    assert [t.config.hidden_size for t in trials] == [16, 16]  # `config` wins over the base
    assert [t.config.seed for t in trials] == [0, 1]
    # only the keys set are saved: the others still follow the trials' tasks (multiq.tasks.defaults)
    assert trials[0].config.given_keys == {*TINY, "seed"}
