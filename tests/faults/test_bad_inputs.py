"""Bad input through the CLI: a message naming the key or file, exit code 2, no traceback."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from multiq import api
from multiq.cli import main
from multiq.runio.layout import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    REPLAY_FILE,
    RUN_RECORD_FILE,
)

TRAIN = ["train", "--tasks", "gym:CartPole-v1"]
QUICK = [
    "--set", "learning_starts=50", "--set", "eval_episodes=1", "--set", "tensorboard=false",
    "--set", "progress_bar=false", "--set", "buffer_size=500", "--set", "eval_freq=0",
]  # fmt: skip
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


def fails(argv, capsys) -> str:
    """Runs the CLI, asserts exit code 2 and no traceback; returns stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("multiq: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seed", "-1"], "seed must be >= 0"),
        (["--seed", "99999999999"], "seed must be <= 2147483647"),
        (["--set", "device=mps"], "device='mps'"),
        (["--set", "hidden_size=200000"], "hidden_size must be <= 65536"),
        (["--set", "batch_size=5e7"], "batch_size (50000000) > buffer_size"),
        (["--set", "eval_episodes=2000000"], "eval_episodes must be <= 10000"),
        (["--steps", "600", "--set", "learning_starts=1000"], "no update would ever run"),
        (["--steps", "600", "--set", "train_freq=1000"], "train_freq (1000)"),
        (["--set", "n_step=200", "--set", "buffer_size=100"], "n_step (200) >= buffer_size"),
        (["--set", "exploration_final_eps=0.9", "--set", "exploration_initial_eps=0.5"],
         "exploration_final_eps (0.9) > exploration_initial_eps"),
        (["--set", "routing_tau_end=2"], "routing_tau_end (2.0) > routing_tau_start"),
        (["--set", "on_env_error=retry"], "on_env_error must be one of stop, restart"),
    ],
)  # fmt: skip
def test_bad_train_options(tmp_path, capsys, args, expected):
    assert expected in fails([*TRAIN, "--run-dir", str(tmp_path / "run"), *args], capsys)


def test_steps_are_applied_before_the_set_values_are_checked(tmp_path, capsys, monkeypatch):
    # --set learning_starts=90000 is fine with --steps 100000 (not with the default 80000)
    seen = {}
    monkeypatch.setattr(api.MultiTaskDQN, "learn", lambda self: seen.setdefault("cfg", self.config))
    monkeypatch.setattr("multiq.cli._print_results", lambda run_dir: None)
    argv = [*TRAIN, "--steps", "100000", "--set", "learning_starts=90000"]
    assert main([*argv, "--run-dir", str(tmp_path / "run")]) == 0
    assert seen["cfg"].learning_starts == 90_000


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    assert "expands to more than" in fails(["train", str(path)], capsys)


def test_networks_that_do_not_fit_in_memory_name_hidden_size(monkeypatch, tmp_path, capsys):
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 80 GB")

    monkeypatch.setattr("multiq.agents.learner.build_qnet", no_memory)
    err = fails([*TRAIN, "--run-dir", str(tmp_path / "run"), "--set", "hidden_size=60000"], capsys)
    assert "hidden_size=60000" in err and "lower hidden_size" in err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A short run with its replay saved, to copy and break."""
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    argv = [*TRAIN, "--steps", "200", "--run-dir", str(run_dir), *QUICK]
    assert main([*argv, "--set", "save_replay=true"]) == 0
    return run_dir


def copy_run(finished_run, tmp_path, name="run"):
    return shutil.copytree(finished_run, tmp_path / name)


def test_resume_with_run_dir_is_refused(finished_run, tmp_path, capsys):
    err = fails(["train", "--resume", str(finished_run), "--run-dir", str(tmp_path)], capsys)
    assert "--run-dir cannot be combined with --resume" in err


def test_resume_refuses_an_edited_config_yaml(finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    path = run_dir / CONFIG_FILE
    # whatever the run's learning rate (CartPole's follows the vector defaults), another one
    path.write_text(re.sub(r"(?m)^learning_rate: .*$", "learning_rate: 0.123", path.read_text()))
    err = fails(["train", "--resume", str(run_dir), "--steps", "300"], capsys)
    assert "config.yaml differs from the checkpoint's config in learning_rate" in err


def test_resume_refuses_a_checkpoint_of_another_run(finished_run, tmp_path, capsys):
    run_dir, other = copy_run(finished_run, tmp_path), copy_run(finished_run, tmp_path, "other")
    record = json.loads((other / RUN_RECORD_FILE).read_text())
    record["run_id"] = "0" * 32
    (other / RUN_RECORD_FILE).write_text(json.dumps(record))
    shutil.copy(run_dir / CHECKPOINT_FILE, other / CHECKPOINT_FILE)
    err = fails(["train", "--resume", str(other), "--steps", "300"], capsys)
    assert "copied from another run folder" in err


def test_resume_refuses_a_replay_of_another_run(finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    other = tmp_path / "other"
    main([*TRAIN, "--steps", "200", "--run-dir", str(other), *QUICK, "--set", "save_replay=true"])
    capsys.readouterr()
    shutil.copy(other / REPLAY_FILE, run_dir / REPLAY_FILE)
    assert "belongs to run" in fails(["train", "--resume", str(run_dir), "--steps", "300"], capsys)


@pytest.mark.parametrize("damage", ["shape", "missing"])
def test_resume_refuses_a_checkpoint_with_bad_contents(finished_run, tmp_path, capsys, damage):
    run_dir = copy_run(finished_run, tmp_path)
    path = run_dir / CHECKPOINT_FILE
    payload = torch.load(path, weights_only=True)
    if damage == "shape":
        online = payload["learner"]["online"]
        key = next(iter(online))
        online[key] = torch.zeros(3, 3)
    else:
        del payload["learner"]
    torch.save(payload, path)
    err = fails(["train", "--resume", str(run_dir), "--steps", "300"], capsys)
    assert str(path) in err


def test_report_on_a_metrics_csv_that_is_not_utf8(finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    (run_dir / METRICS_FILE).write_bytes(b"step,wall_time_s,key,value\n\xff\xfe\x00bad\n")
    assert "UTF-8" in fails(["report", str(run_dir)], capsys)
