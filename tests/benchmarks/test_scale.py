"""The scale benchmark: every setting holds 8 replay samples per env step; a run gives a row."""

from __future__ import annotations

import pytest
from conftest import load_benchmarks


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(speed="speed_common", scale="scale").scale


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def sets(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--set"]
    return dict(pairs)


@pytest.mark.parametrize("train_freq", [1, 4])
def test_each_setting_keeps_eight_samples_per_env_step(bench, tmp_path, train_freq):
    args = bench.parse_args(["--n-envs", "1", "16", "--train-freq", str(train_freq)])
    for setting in bench.settings(args):
        given = sets(bench.command(args, setting, tmp_path))
        samples = int(given["batch_size"]) / (int(given["train_freq"]) * int(given["n_envs"]))
        assert samples == bench.SAMPLES_PER_ENV_STEP == 8
        assert given["double_q"] == "false" and given["eval_freq"] == "0"


def test_the_modes_differ_only_in_where_the_envs_step(bench, tmp_path):
    args = bench.parse_args(["--n-envs", "4", "--workers", "2", "--device", "cpu"])
    argv = {s.mode: bench.command(args, s, tmp_path) for s in bench.settings(args)}
    assert flag(argv["async"], "--async-updates") == "true"
    assert flag(argv["inprocess"], "--async-updates") == "false"
    assert flag(argv["subprocess"], "--env-backend") == "subprocess"
    assert flag(argv["subprocess"], "--env-workers") == "2"
    assert "--env-workers" not in argv["inprocess"]
    assert {flag(a, "--device") for a in argv.values()} == {"cpu"}


def test_a_short_run_gives_its_row(bench, tmp_path):
    args = bench.parse_args(["--n-envs", "2", "--modes", "inprocess", "--steps-per-game", "1100",
                             "--device", "cpu"])  # fmt: skip
    args.device_name = bench.device_name(args.device)
    results = bench.measure(args)
    (values,) = results.values()
    assert len(values) == 1 and values[0] > 0
    text = bench.render(args, results, 1.0)
    assert f"| inprocess | 2 | 16 | {values[0]:,.0f} |" in text
