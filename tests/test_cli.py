"""`multiq` command line smoke runs, as subprocesses: train, resume, eval, tasks, report, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from multiq.cli import main

TINY_SETS = [
    "--set", "learning_starts=100",
    "--set", "eval_episodes=2",
    "--set", "tensorboard=false",
    "--set", "progress_bar=false",
    "--set", "batch_size=16",
    "--set", "buffer_size=5000",
    "--set", "log_interval=100",
    "--set", "eval_freq=0",
    "--set", "device=cpu",
]  # fmt: skip


def multiq(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "multiq.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def in_process(capsys, *args) -> tuple[int, str, str]:
    """Runs `multiq.cli.main` in this process (for cheap checks): (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_error(result: subprocess.CompletedProcess) -> str:
    """Exit status 2, a one-line `multiq: error:` message and no traceback; returns stderr."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "multiq: error:" in result.stderr
    return result.stderr


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`multiq train` of CartPole for 300 steps: (run folder, completed process)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = multiq(
        "train", "--tasks", "classic:CartPole", "--steps", 300, *TINY_SETS, "--run-dir", run_dir
    )
    assert result.returncode == 0, result.stderr
    return run_dir, result


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A private copy of the trained run folder (for commands that change it)."""
    return Path(shutil.copytree(trained[0], tmp_path / "run"))


def test_train(trained):
    run_dir, result = trained
    for name in ("summary.json", "curves.png", "model.pt", "checkpoint.pt", "metrics.csv"):
        assert (run_dir / name).is_file(), name
    assert f"run folder: {run_dir}" in result.stdout
    # the results table
    assert "random return" in result.stdout
    assert "final return" in result.stdout
    table_rows = [line for line in result.stdout.splitlines() if line.startswith("CartPole")]
    assert len(table_rows) == 1
    assert "env steps per task: 300" in result.stdout
    summary = summary_of(run_dir)
    assert summary["env_steps_per_task"] == 300
    assert list(summary["tasks"]) == ["CartPole"]
    assert "Traceback" not in result.stderr
    config = (run_dir / "config.yaml").read_text()
    assert "learning_starts: 100" in config
    assert "tensorboard: false" in config


def test_train_resume(run_copy):
    result = multiq("train", "--resume", run_copy, "--steps", 500)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    assert "at 300 env steps per task" in result.stdout
    assert "env steps per task: 500" in result.stdout
    assert summary_of(run_copy)["env_steps_per_task"] == 500


def test_train_resume_refuses_a_new_config(run_copy, capsys):
    code, _, stderr = in_process(capsys, "train", "--resume", run_copy, "--set", "seed=1")
    assert code == 2
    assert "--resume" in stderr
    assert summary_of(run_copy)["env_steps_per_task"] == 300


def test_eval(trained):
    run_dir, _ = trained
    result = multiq("eval", run_dir, "--episodes", 2)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("CartPole")
    assert "(2 ep)" in lines[0]
    results = json.loads(lines[-1])
    assert results["CartPole"]["episodes"] == 2


def test_eval_of_a_model_file(trained, capsys):
    run_dir, _ = trained
    code, stdout, _ = in_process(
        capsys, "eval", run_dir / "model.pt", "--episodes", 1, "--epsilon", 1.0
    )
    assert code == 0
    assert json.loads(stdout.strip().splitlines()[-1])["CartPole"]["episodes"] == 1


def test_eval_of_a_corrupt_model(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x00garbage, not a torch file")
    stderr = assert_clean_error(multiq("eval", tmp_path, "--episodes", 1))
    assert str(tmp_path / "model.pt") in stderr
    assert "corrupt" in stderr


def test_eval_of_a_missing_model(tmp_path, capsys):
    code, _, stderr = in_process(capsys, "eval", tmp_path)
    assert code == 2
    assert str(tmp_path / "model.pt") in stderr


def test_tasks():
    result = multiq("tasks")
    assert result.returncode == 0, result.stderr
    for word in ("minatar", "classic", "atari", "Breakout", "CartPole", "gym:"):
        assert word in result.stdout


def test_report_rebuilds_curves(run_copy):
    curves = run_copy / "curves.png"
    curves.unlink()
    result = multiq("report", run_copy)
    assert result.returncode == 0, result.stderr
    assert curves.is_file()
    assert curves.read_bytes().startswith(b"\x89PNG")
    assert "CartPole" in result.stdout
    assert str(curves) in result.stdout


def test_report_of_an_empty_folder(tmp_path, capsys):
    code, _, stderr = in_process(capsys, "report", tmp_path)
    assert code == 2
    assert "summary.json" in stderr


def test_config_file_with_an_unknown_key(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("tasks: classic:CartPole\nlearning_rat: 0.001\n")
    stderr = assert_clean_error(multiq("train", config, "--run-dir", tmp_path / "run"))
    assert "learning_rat" in stderr
    assert "learning_rate" in stderr
    assert str(config) in stderr
    assert not (tmp_path / "run").exists()


def test_unknown_gym_id(tmp_path):
    stderr = assert_clean_error(
        multiq("train", "--tasks", "gym:NoSuchEnv-v0", "--run-dir", tmp_path / "run")
    )
    assert "NoSuchEnv-v0" in stderr
    assert "unknown" in stderr.lower()
    assert not (tmp_path / "run").exists()


def test_set_without_equals_sign(tmp_path):
    stderr = assert_clean_error(
        multiq(
            "train", "--tasks", "classic:CartPole", "--set", "learning_rate", "--run-dir", tmp_path
        )
    )
    assert "learning_rate" in stderr
    assert "key=value" in stderr


@pytest.mark.parametrize("override", ["=3", "learning_rat=1e-3", "learning_rate=fast"])
def test_bad_set_override_in_process(tmp_path, capsys, override):
    code, _, stderr = in_process(
        capsys, "train", "--tasks", "classic:CartPole", "--set", override, "--run-dir", tmp_path
    )
    assert code == 2
    assert stderr.startswith("multiq: error:")
    assert "key=value" in stderr if override == "=3" else "learning_rate" in stderr


def test_usage_error_exits_2():
    result = multiq("train", "--steps", "many")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--steps" in result.stderr
