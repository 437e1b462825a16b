"""Adapt-k: initialisations, rows, resuming a folder, the CLI and its bad input; env_imports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from multiq.api import MultiTaskDQN
from multiq.cli import main
from multiq.config import Config
from multiq.errors import ConfigError, TaskError
from multiq.recipes.adapt import Init, adapt_learner, family_options, parse_ks, run_adapt
from multiq.recipes.meta import META_TASK, prepare_meta
from multiq.tasks import make_taskset

QUICK = {
    "hidden_size": 16, "batch_size": 16, "inner_learning_starts": 40, "inner_buffer_size": 500,
    "inner_target_update": 50, "eval_episodes": 2, "device": "cpu", "tensorboard": False,
    "progress_bar": False,
}  # fmt: skip
META = {**QUICK, "meta_tasks": "family:cartpole-physics:train:3", "meta_iterations": 1,
        "meta_batch_size": 2, "inner_steps": 80, "meta_eval_freq": 0}  # fmt: skip


@pytest.fixture(scope="module")
def meta_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("meta") / "run"
    prepare_meta(MultiTaskDQN, folder, Config(**META)).run()
    return folder


def test_parse_ks_sorts_and_refuses_negative_or_text():
    assert parse_ks("2000, 0,2000,10") == [0, 10, 2000]
    with pytest.raises(ConfigError, match=">= 0|in \\[0"):
        parse_ks("0,-5")
    with pytest.raises(ConfigError, match="integers"):
        parse_ks("0,many")


def test_a_held_out_task_starts_from_the_meta_head_and_trunk(meta_dir):
    model = MultiTaskDQN.load(meta_dir)
    (spec,) = make_taskset("family:cartpole-physics:held-out@0")
    cfg = Config(**QUICK, head_init="mean")
    learner = adapt_learner(Init("meta", model), spec, cfg, model.config, seed=0)
    groups, saved = learner.online.param_groups(), model.learner.online.param_groups()
    pairs = zip(groups[f"head/{spec.name}"], saved[f"head/{META_TASK}"], strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert all(torch.equal(a, b) for a, b in zip(groups["trunk"], saved["trunk"], strict=True))
    # the target net is the same weights, and the saved model itself is untouched by training
    assert all(
        torch.equal(a, b)
        for a, b in zip(learner.target.parameters(), learner.online.parameters(), strict=True)
    )


def test_run_adapt_writes_one_row_per_init_task_seed_and_k_and_continues(tmp_path, meta_dir):
    inits = [Init("meta", MultiTaskDQN.load(meta_dir)), Init("scratch", None)]
    tasks = list(make_taskset("family:cartpole-physics:held-out:2"))
    cfg = Config(**QUICK, head_init="mean")
    folder = run_adapt(inits, tasks, [0, 60], [0, 1], cfg, tmp_path / "a")
    rows = json.loads((folder / "adapt.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 2 * 2
    assert {(r["init"], r["k"]) for r in rows} == {(i, k) for i in ("meta", "scratch")
                                                   for k in (0, 60)}  # fmt: skip
    assert (folder / "adapt.md").is_file() and (folder / "adapt.png").is_file()
    # a second call keeps the finished runs: nothing is trained again, same rows
    again = run_adapt(inits, tasks, [0, 60], [0, 1], cfg, tmp_path / "a")
    assert json.loads((again / "adapt.json").read_text())["rows"] == rows
    with pytest.raises(ConfigError, match="other tasks or ks"):
        run_adapt(inits, tasks, [0, 30], [0], cfg, tmp_path / "a")


def test_family_options_come_from_the_models(meta_dir):
    options = family_options([Init("meta", MultiTaskDQN.load(meta_dir))], "cartpole-physics")
    assert options["seed"] == 0 and options["held_out"] == 16
    assert family_options([Init("scratch", None)], "cartpole-physics") == {}


def test_adapt_cli_end_to_end(tmp_path, meta_dir, capsys):
    out = tmp_path / "out"
    code = main(["adapt", f"meta={meta_dir}", "scratch", "--family", "cartpole-physics",
                 "--n-tasks", "1", "--k", "0,50", "--seeds", "0", "--out", str(out),
                 *[x for k, v in QUICK.items() for x in ("--set", f"{k}={v}")]])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| meta |" in printed and "| scratch |" in printed
    assert len(json.loads((out / "adapt.json").read_text())["rows"]) == 4
    (out / "adapt.png").unlink()
    assert main(["report", str(out)]) == 0  # rebuilds adapt.md and adapt.png
    assert "| meta |" in capsys.readouterr().out and (out / "adapt.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--family", "cartpole-physic"], "cartpole-physics"),  # did-you-mean
        (["--family", "cartpole-physics", "--k", "0,-1"], "k must"),
        (["--family", "cartpole-physics", "--family-set", "held_out=0"], "held_out"),
        (["--family", "cartpole-physics", "--split", "test"], "split"),
        (["--family", "cartpole-physics", "--family-set", "length=[0, 1]"], "length"),
    ],
)
def test_adapt_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    code = main(["adapt", "scratch", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_env_imports_registers_plugin_envs_before_tasks_build(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "tasks"))
    sys.modules.pop("plugin_env", None)
    gym.registry.pop("MultiqPluginTest-v0", None)
    model = MultiTaskDQN("gym:MultiqPluginTest-v0", env_imports=["plugin_env"], device="cpu")
    assert model.task_names == ["MultiqPluginTest"]
    with pytest.raises(TaskError, match="no_such_env_module"):
        MultiTaskDQN("gym:CartPole-v1", env_imports=["no_such_env_module"], device="cpu")


def test_env_imports_error_through_the_cli(tmp_path, capsys):
    code = main(["train", "--tasks", "gym:CartPole-v1", "--steps", "2000", "--run-dir",
                 str(tmp_path / "r"), "--set", "env_imports=[no_such_env_module]"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no_such_env_module" in err and "Traceback" not in err
