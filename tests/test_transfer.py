"""Transfer end to end through the CLI: every mode, the report, distillation, and bad input.

A tiny CartPole run is the source and Acrobot the target; each mode trains a few hundred steps.
The last test (slow) checks that transfer helps: a CartPole source fine-tuned on a CartPole
variant starts far better than scratch.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tiny_config
import torch
from jumpstart import LEARN, greedy_episode_lengths

from multiq.api import MultiTaskDQN
from multiq.cli import main

TINY = tiny_config.TINY | {
    "hidden_size": 16,
    "buffer_size": 2000,
    "target_update_interval": 100,
    "checkpoint_freq": 0,
}
SETS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
MODES = ("scratch", "finetune", "freeze", "joint", "distill")
TARGET_STEPS = 200


def run_cli(argv: list[str]) -> int:
    """`multiq ARGV` in this process; leaves the "multiq" logger as it found it."""
    logger = logging.getLogger("multiq")
    handlers, level = list(logger.handlers), logger.level
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse errors
        return int(exit_.code or 0)
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def train(run_dir: Path, tasks: str, steps: int, *extra: str) -> Path:
    code = run_cli(
        ["train", "--tasks", tasks, "--steps", steps, "--run-dir", run_dir, *SETS, *extra]
    )
    assert code == 0
    return run_dir


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def eval_rows(run_dir: Path, task: str) -> list[tuple[int, float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [
            (int(row["step"]), float(row["value"]))
            for row in csv.DictReader(f)
            if row["key"] == f"task/{task}/return"
        ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Source runs, made once: CartPole (600 steps), Acrobot (300), CartPole independent."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "cartpole": train(root / "cartpole", "classic:CartPole", 600),
        "acrobot": train(root / "acrobot", "classic:Acrobot", 300),
        "independent": train(
            root / "independent", "classic:CartPole", 200, "--set", "scheme=independent"
        ),
        "root": root,
    }


@pytest.fixture(scope="module")
def transfer_run(runs):
    """mode -> (exit code, run folder) of `multiq transfer`, each mode run once on demand."""
    done: dict[str, tuple[int, Path]] = {}

    def run(mode: str) -> tuple[int, Path]:
        if mode not in done:
            run_dir = runs["root"] / f"transfer-{mode}"
            argv = ["transfer", runs["cartpole"], "--tasks", "classic:Acrobot", "--mode", mode]
            argv += ["--steps", TARGET_STEPS, "--run-dir", run_dir]
            done[mode] = (run_cli(argv), run_dir)
        return done[mode]

    return run


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_trains_end_to_end(transfer_run, mode):
    code, run_dir = transfer_run(mode)
    assert code == 0
    summary = summary_of(run_dir)
    transfer = summary["transfer"]
    assert transfer["mode"] == mode
    assert transfer["source_tasks"] == ["CartPole"]
    assert transfer["target_tasks"] == ["Acrobot"]
    assert summary["task_env_steps"]["Acrobot"] == TARGET_STEPS
    # the jumpstart evaluation before any target step, and the final one
    steps = [step for step, _ in eval_rows(run_dir, "Acrobot")]
    assert steps[0] == 0 and steps[-1] == TARGET_STEPS
    (phase,) = summary["phases"]
    assert phase["name"] == f"transfer-{mode}"
    assert (phase["start_step"], phase["end_step"]) == (0, TARGET_STEPS)


@pytest.mark.parametrize(
    ("mode", "tasks", "stepped"),
    [
        ("scratch", ["Acrobot"], {"Acrobot"}),
        ("finetune", ["CartPole", "Acrobot"], {"Acrobot"}),
        ("freeze", ["CartPole", "Acrobot"], {"Acrobot"}),
        ("joint", ["CartPole", "Acrobot"], {"CartPole", "Acrobot"}),
        ("distill", ["CartPole", "Acrobot"], {"CartPole", "Acrobot"}),
    ],
)
def test_which_tasks_each_mode_holds_and_steps(transfer_run, mode, tasks, stepped):
    _, run_dir = transfer_run(mode)
    summary = summary_of(run_dir)
    assert list(summary["tasks"]) == tasks
    assert set(summary["task_env_steps"]) == stepped
    assert summary["phases"][0]["tasks"] == [t for t in tasks if t in stepped]
    if mode in ("joint", "distill"):  # the source task is evaluated before and after too
        assert [s for s, _ in eval_rows(run_dir, "CartPole")] == [0, TARGET_STEPS]


def test_freeze_trains_neither_trunk_nor_source_input_layers(transfer_run):
    _, run_dir = transfer_run("freeze")
    trainable = summary_of(run_dir)["phases"][0]["trainable"]
    assert "trunk" not in trainable and "inputs/4_float32" not in trainable
    assert {"inputs/6_float32", "head/Acrobot"} <= set(trainable)


def test_distill_phase_carries_its_term(transfer_run):
    _, run_dir = transfer_run("distill")
    (term,) = summary_of(run_dir)["phases"][0]["terms"]
    assert term["kind"] == "distill" and term["teachers"] == {"CartPole": "source"}


def test_report_with_baseline_prints_the_transfer_table(transfer_run, capsys):
    _, scratch = transfer_run("scratch")
    _, finetune = transfer_run("finetune")
    capsys.readouterr()

    code = run_cli(["report", finetune, "--baseline", scratch])

    out = capsys.readouterr().out
    assert code == 0
    assert "target task (vs scratch)" in out
    for label in ("jumpstart", "transfer ratio", "steps to threshold", "Acrobot"):
        assert label in out, out
    assert f"baseline: {scratch} (mode scratch)" in out


def test_distill_two_runs_into_one_student(runs, capsys):
    run_dir = runs["root"] / "student"
    code = run_cli(
        ["distill", runs["cartpole"], runs["acrobot"], "--steps", 300, "--run-dir", run_dir]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "student vs teacher" in out
    lines = out[out.index("student vs teacher") :].splitlines()[1:]
    assert [line.split()[0] for line in lines if line.strip()] == ["CartPole", "Acrobot"]
    summary = summary_of(run_dir)
    assert summary["task_env_steps"] == {"CartPole": 300, "Acrobot": 300}
    assert summary["distill"]["teacher_of"] == {"CartPole": "teacher0", "Acrobot": "teacher1"}


# --- bad input -----------------------------------------------------------------------------------


def bad_transfer(capsys, runs, *argv) -> str:
    run_dir = runs["root"] / "never"
    code = run_cli(["transfer", *argv, "--run-dir", run_dir])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code not in (0, None), text
    assert "Traceback" not in text
    assert not run_dir.exists()  # nothing half-made
    return captured.err


def test_source_folder_without_a_model(runs, tmp_path, capsys):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    err = bad_transfer(capsys, runs, empty, "--tasks", "classic:Acrobot")
    assert f"{empty} has no model.pt" in err


def test_target_with_continuous_actions(runs, capsys):
    err = bad_transfer(capsys, runs, runs["cartpole"], "--tasks", "gym:Pendulum-v1")
    assert "'Pendulum'" in err and "Discrete" in err


def test_misspelt_mode(runs, capsys):
    err = bad_transfer(
        capsys, runs, runs["cartpole"], "--tasks", "classic:Acrobot", "--mode", "finetun"
    )
    assert "did you mean 'finetune'" in err


def test_freeze_needs_a_trunk(runs, capsys):
    err = bad_transfer(
        capsys, runs, runs["independent"], "--tasks", "classic:Acrobot", "--mode", "freeze"
    )
    assert "'freeze'" in err and "'independent'" in err


def test_negative_transfer_lambda(runs, capsys):
    err = bad_transfer(
        capsys,
        runs,
        runs["cartpole"],
        "--tasks",
        "classic:Acrobot",
        "--mode",
        "joint",
        "--set",
        "transfer_lambda=-1",
    )
    assert "transfer_lambda" in err and ">= 0" in err


# --- transfer helps ------------------------------------------------------------------------------

SOURCE_STEPS = 10_000
TARGET = [{"id": "gym:CartPole-v1", "name": "CartPole", "kwargs": {"sutton_barto_reward": True}}]


@pytest.mark.slow
def test_finetune_starts_far_better_than_scratch(tmp_path):
    """~8-10 s on one free core (a 10k-step CartPole source, two 2k-step targets): `slow`."""
    source = MultiTaskDQN(
        "classic:CartPole", run_dir=tmp_path / "src", total_steps_per_task=SOURCE_STEPS, **LEARN
    )
    source.learn(evaluate=False)
    models = {
        mode: MultiTaskDQN.from_pretrained(
            source, TARGET, mode=mode, run_dir=tmp_path / mode, total_steps_per_task=2_000
        )
        for mode in ("finetune", "scratch")
    }
    finetune = models["finetune"]
    # the target is named as the source task: it keeps that task's weights (load by name)
    assert finetune.task_names == ["CartPole"]
    assert finetune.task_specs[0].source["kwargs"] == {"sutton_barto_reward": True}
    kept = source.learner.online.state_dict()
    assert all(torch.equal(v, finetune.learner.online.state_dict()[k]) for k, v in kept.items())
    assert finetune.run_info["transfer"]["source_tasks"] == []
    assert finetune.run_info["transfer"]["target_tasks"] == ["CartPole"]

    # before any target step: the policies that the step-0 evaluation (eval_at_start) plays
    lengths = {mode: greedy_episode_lengths(model, "CartPole") for mode, model in models.items()}
    for model in models.values():
        model.learn()

    # Measured with these settings, seeds 0-2 (mean greedy episode length at step 0):
    # finetune 311.8, 292.8, 321.8; scratch 9.6, 8.8, 9.6 (a fresh net pushes one way and the
    # pole falls in ~9 steps). A 5k- or 7k-step source gave finetune 134-373: even a weakly
    # trained source clears 100 steps, so the margin below leaves room for seeds and versions.
    assert np.mean(lengths["scratch"]) < 30, lengths
    assert np.mean(lengths["finetune"]) >= np.mean(lengths["scratch"]) + 100, lengths
    first = {mode: eval_rows(model.run_dir, "CartPole")[0] for mode, model in models.items()}
    assert first["finetune"][0] == first["scratch"][0] == 0
    # Sutton-Barto reward: -1 when the pole falls, 0 for a 500-step episode; measured step-0
    # returns: finetune -0.6, -1.0, -0.8 (some episodes reach 500 steps), scratch -1.0
    assert first["finetune"][1] >= first["scratch"][1] == -1.0
