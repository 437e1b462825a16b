"""`multiq` command line smoke runs, as subprocesses: train, resume, eval, tasks, report,
config, help, errors."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from multiq.cli import EXAMPLES, build_parser, main
from multiq.config import Config
from multiq.mtl import BALANCERS
from multiq.nets import SCHEMES

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


# The family-default keys TINY_SETS and --steps set, in the table's order.
KEPT = "total_steps_per_task, batch_size, buffer_size, learning_starts, eval_freq"


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
    # the defaults of the tasks' observation family, first, without the keys the command sets
    first = result.stdout.splitlines()[0]
    assert first.startswith("defaults for vector tasks: learning_rate=0.001, "), first
    assert first.endswith("(set any of them to override; kept as set: " + KEPT + ")"), first
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
    assert "learning_rate: 0.001" in config  # the vector family's
    # tensorboard=false: no tb folder, and no line that points at one
    assert not (run_dir / "tb").exists()
    assert "tensorboard --logdir" not in result.stdout


def test_train_resume(run_copy):
    result = multiq("train", "--resume", run_copy, "--steps", 500)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    assert "at 300 env steps per task" in result.stdout
    assert "defaults for" not in result.stdout  # the run keeps its saved config
    assert "env steps per task: 500" in result.stdout
    assert summary_of(run_copy)["env_steps_per_task"] == 500


def test_train_keys_of_the_file_and_of_set_win_over_the_family_defaults(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("tasks: classic:CartPole\nn_step: 1\n")
    run_dir = tmp_path / "run"
    code, stdout, _ = in_process(
        capsys, "train", path, "--steps", 300, *TINY_SETS, "--set", "learning_rate=5e-4",
        "--run-dir", run_dir,
    )  # fmt: skip
    assert code == 0
    first = stdout.splitlines()[0]
    assert first.startswith("defaults for vector tasks: ")
    assert "target_update_interval=500" in first
    assert "learning_rate=" not in first and "n_step=" not in first
    saved = Config.from_yaml(run_dir / "config.yaml")
    assert (saved.learning_rate, saved.n_step, saved.target_update_interval) == (5e-4, 1, 500)


def test_train_resume_refuses_a_new_config(run_copy, capsys):
    code, _, stderr = in_process(capsys, "train", "--resume", run_copy, "--set", "seed=1")
    assert code == 2
    assert "--resume" in stderr
    assert summary_of(run_copy)["env_steps_per_task"] == 300


def eval_rows(stdout: str) -> dict[str, list[str]]:
    """The `multiq eval` table: header, then task -> its cells (split on runs of 2+ spaces)."""
    lines = stdout.strip().splitlines()
    header = re.split(r"\s{2,}", lines[0])
    assert header == ["task", "eval return (mean ± std)", "episodes", "random return"]
    assert set(lines[1]) == {"-", " "}
    rows = [re.split(r"\s{2,}", line) for line in lines[2:] if line and "epsilon" not in line]
    return {row[0]: row[1:] for row in rows}


def test_eval_prints_a_table_with_the_random_return_of_the_run(trained):
    run_dir, _ = trained
    result = multiq("eval", run_dir, "--episodes", 2)
    assert result.returncode == 0, result.stderr
    rows = eval_rows(result.stdout)
    assert list(rows) == ["CartPole"]
    eval_return, episodes, random_return = rows["CartPole"]
    assert " ± " in eval_return
    assert episodes == "2"
    random = summary_of(run_dir)["tasks"]["CartPole"]
    assert (
        random_return == f"{random['random_return_mean']:.2f} ± {random['random_return_std']:.2f}"
    )
    assert "random return (a uniformly random policy): from summary.json" in result.stdout
    assert "{" not in result.stdout  # no JSON line without --json


def test_eval_json_prints_one_json_line(trained, capsys):
    run_dir, _ = trained
    code, stdout, _ = in_process(capsys, "eval", run_dir, "--episodes", 2, "--json")
    assert code == 0
    assert len(stdout.strip().splitlines()) == 1
    results = json.loads(stdout)
    assert results["CartPole"]["episodes"] == 2
    assert {"return_mean", "return_std"} <= set(results["CartPole"])


def test_eval_of_a_bare_model_file_measures_the_random_return(trained, tmp_path, capsys):
    model = Path(shutil.copy(trained[0] / "model.pt", tmp_path / "model.pt"))
    code, stdout, _ = in_process(capsys, "eval", model, "--episodes", 1, "--epsilon", 1.0)
    assert code == 0
    eval_return, episodes, random_return = eval_rows(stdout)["CartPole"]
    assert episodes == "1"
    assert float(random_return.split(" ± ")[0]) > 0  # CartPole pays 1 per step
    assert (
        "eval epsilon 1; random return (a uniformly random policy): measured now for CartPole"
        in stdout
    )


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


# --- config, --version, help -----------------------------------------------------------------


def config_blocks(stdout: str) -> dict[str, list[str]]:
    """`multiq config` output: key -> [its `key = default` line, its indented lines]."""
    blocks = {}
    for block in stdout.strip().split("\n\n"):
        if block.startswith("# "):  # a section's title
            continue
        first, *rest = block.splitlines()
        assert all(line.startswith("    ") for line in rest), block
        blocks[first.split(" = ")[0]] = [first, *rest]
    return blocks


def test_config_lists_every_key_with_its_default(capsys):
    code, stdout, _ = in_process(capsys, "config")
    assert code == 0
    blocks = config_blocks(stdout)
    assert list(blocks) == list(Config.keys())
    assert len(blocks) == len(Config.keys())
    assert blocks["seed"][0] == "seed = 0"
    assert blocks["tasks"][0] == "tasks = minatar"
    assert blocks["task_weights"][0] == "task_weights = null"
    assert all(len(lines) >= 3 for lines in blocks.values())  # type + allowed, meaning


def test_config_of_one_key(capsys):
    code, stdout, _ = in_process(capsys, "config", "learning_rate")
    assert code == 0
    assert stdout.splitlines() == [
        "learning_rate = 0.00025",
        "    type: float; allowed: > 0",
        "    Adam learning rate.",
        "    by observation family: minatar 0.00025, vector 0.001, atari 0.0001, minigrid 0.001 "
        "(unless",
        "    set)",
    ]


def test_config_allowed_values_of_registry_keys(capsys):
    code, stdout, _ = in_process(capsys, "config", "balancer", "scheme")
    assert code == 0
    blocks = config_blocks(stdout)
    assert list(blocks) == ["balancer", "scheme"]
    for key, registry in (("balancer", BALANCERS), ("scheme", SCHEMES)):
        text = " ".join(line.strip() for line in blocks[key][1:])  # wrapped at 100 columns
        allowed = "type: str; allowed: one of " + ", ".join(sorted(registry))
        assert text.startswith(allowed + " "), text
    assert "pcgrad" in blocks["balancer"][1]


def test_config_of_an_unknown_key():
    stderr = assert_clean_error(multiq("config", "learnig_rate"))
    assert "did you mean 'learning_rate'?" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_config_yaml_reads_back_as_the_defaults(tmp_path, capsys):
    code, stdout, _ = in_process(capsys, "config", "--yaml")
    assert code == 0
    path = tmp_path / "config.yaml"
    path.write_text(stdout)
    assert Config.from_yaml(path).to_dict() == Config().to_dict()
    args = build_parser().parse_args(["train", str(path)])  # what `multiq train FILE` loads
    assert args.config == str(path)


def test_version():
    result = multiq("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"multiq {version('multiq')}\n"


def subcommands() -> list[str]:
    """The subcommands `multiq --help` lists."""
    usage = build_parser().format_help()
    return re.search(r"\{([a-z,-]+)\}", usage).group(1).split(",")


def help_of(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_every_subcommand_has_examples():
    assert subcommands() == list(EXAMPLES)


@pytest.mark.parametrize("command", subcommands())
def test_help_examples_parse(command, capsys):
    text = help_of(command, capsys)
    assert "\nexamples:\n" in text
    examples = [line.strip() for line in text.splitlines() if line.startswith("  multiq ")]
    assert 1 <= len(examples) <= 3
    for example in examples:
        words = shlex.split(example.split(" > ")[0])  # without a shell redirection
        args = build_parser().parse_args(words[1:])
        assert args.command == command, example


def test_train_help_names_config_keys_schemes_and_balancers(capsys):
    text = help_of("train", capsys)
    assert "multiq config" in text
    schemes = next(line for line in text.splitlines() if "scheme=NAME" in line)
    balancers = next(line for line in text.splitlines() if "balancer=NAME" in line)
    assert all(name in schemes for name in SCHEMES)
    assert all(name in balancers for name in BALANCERS)


def test_parsing_imports_no_torch():
    """The train help lists registries only when shown: `multiq report` stays torch-free."""
    code = (
        "import sys; from multiq.cli import build_parser; "
        "build_parser().parse_args(['report', 'x']); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


# --- flags -> config changes (`config_overrides`, one place for every command) -----------------

FLAG_CASES = [
    (["--steps", "500"], {"total_steps_per_task": 500}),
    (["--seed", "3"], {"seed": 3}),
    (["--device", "cuda"], {"device": "cuda"}),
    (["--torch-threads", "2"], {"torch_threads": 2}),
    (["--env-backend", "subprocess"], {"env_backend": "subprocess"}),
    (["--env-workers", "4"], {"env_workers": 4}),
    (["--async-updates", "false"], {"async_updates": False}),
    (["--async-updates", "true"], {"async_updates": True}),
    (["--async-updates", "auto"], {"async_updates": "auto"}),
]


@pytest.mark.parametrize("command", ["train", "continual", "transfer", "distill", "meta"])
@pytest.mark.parametrize(("flags", "changes"), FLAG_CASES)
def test_each_flag_maps_to_its_config_key(command, flags, changes):
    from multiq.cli import config_overrides

    required = {"transfer": ["runs/x", "--tasks", "classic:Acrobot"], "distill": ["runs/x"]}
    args = build_parser().parse_args([command, *required.get(command, []), *flags])
    overrides = config_overrides(args)
    assert overrides.flags == changes and overrides.sets == []
    assert overrides.as_dict() == changes


def test_set_items_and_flags_apply_in_one_place():
    from multiq.cli import config_overrides

    args = build_parser().parse_args(
        ["train", "--set", "task_weights.A=2", "--set", "seed=1", "--seed", "5", "--steps", "9000"]
    )
    overrides = config_overrides(args)
    assert overrides.sets == ["task_weights.A=2", "seed=1"]
    expected = {"task_weights": {"A": 2.0}, "seed": 5, "total_steps_per_task": 9000}
    assert overrides.as_dict() == expected
    base = Config(task_weights={"A": 1.0, "B": 3.0})
    cfg = overrides.apply(base)  # a dotted key changes one entry of the file's mapping
    assert cfg.task_weights == {"A": 2.0, "B": 3.0}
    assert (cfg.seed, cfg.total_steps_per_task) == (5, 9000)  # flags win over --set


def test_commands_without_a_flag_leave_its_key_alone():
    from multiq.cli import config_overrides

    adapt = build_parser().parse_args(["adapt", "scratch", "--family", "f", "--torch-threads", "2"])
    assert config_overrides(adapt).flags == {"torch_threads": 2}  # adapt has no --steps
    evaluate = build_parser().parse_args(["eval", "runs/x", "--device", "cpu"])
    assert config_overrides(evaluate).flags == {"device": "cpu"}
