"""The env backend registry, its config keys and CLI flags, and a whole run per backend."""

from __future__ import annotations

import csv

import pytest

from multiq import make_taskset
from multiq.api import MultiTaskDQN
from multiq.cli import build_parser
from multiq.config import ENV_BACKEND_NAMES, Config
from multiq.envs.backends import ENV_BACKENDS, EnvSettings, make_task_envs
from multiq.envs.inprocess import TaskEnvs
from multiq.envs.workers import SubprocessTaskEnvs
from multiq.errors import ConfigError

TINY = {
    "tensorboard": False, "progress_bar": False, "eval_episodes": 3, "eval_freq": 200,
    "learning_starts": 100, "buffer_size": 2_000, "target_update_interval": 100,
    "log_interval": 100, "checkpoint_freq": 0, "n_envs": 3, "torch_threads": 1, "device": "cpu",
}  # fmt: skip


def test_the_config_accepts_exactly_the_registered_backends():
    assert set(ENV_BACKEND_NAMES) == set(ENV_BACKENDS)
    with pytest.raises(ConfigError, match="env_backend must be one of inprocess, subprocess"):
        Config(env_backend="threads")
    with pytest.raises(ConfigError, match="env_workers must be >= 1"):
        Config(env_workers=0)


def test_ray_collectors_and_another_backend_are_refused_together():
    with pytest.raises(ConfigError, match="set collectors 0 or env_backend inprocess"):
        Config(collectors=2, env_backend="subprocess")


def test_async_updates_take_envpool_but_not_env_worker_processes():
    assert Config(async_updates=True, env_backend="envpool").env_backend == "envpool"
    with pytest.raises(ConfigError, match="set async_updates false or auto"):
        Config(async_updates=True, env_backend="subprocess")
    assert Config(env_backend="subprocess").async_updates == "auto"  # auto: steps in process


def test_an_unknown_backend_name_gets_a_did_you_mean():
    spec = make_taskset("classic:CartPole")[0]
    with pytest.raises(ConfigError, match="did you mean 'subprocess'"):
        make_task_envs(spec, 1, settings=EnvSettings("subproces"))


def test_each_backend_builds_its_kind_of_task_envs():
    spec = make_taskset("classic:CartPole")[0]
    built = {name: make_task_envs(spec, 2, settings=EnvSettings(name, 2)) for name in ENV_BACKENDS}
    try:
        assert isinstance(built["inprocess"], TaskEnvs)
        assert isinstance(built["subprocess"], SubprocessTaskEnvs)
        assert len(built["subprocess"].workers) == 2
        assert isinstance(built["envpool"], TaskEnvs)  # no EnvPool version: in process
    finally:
        for envs in built.values():
            envs.close()


def test_the_train_flags_set_the_backend_keys():
    args = build_parser().parse_args(["train", "--env-backend", "subprocess", "--env-workers", "3"])
    from multiq.cli import _config_from_args

    cfg = _config_from_args(args)
    assert (cfg.env_backend, cfg.env_workers) == ("subprocess", 3)


def metric_rows(run_dir) -> list[tuple[str, str, str]]:
    """(step, key, value) of metrics.csv, less the wall-clock columns and rows."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["step"], r["key"], r["value"]) for r in rows if r["key"] != "time/sps"]


def test_a_run_with_subprocess_envs_gives_the_in_process_metrics_bit_for_bit(tmp_path):
    """Same seeds, same transitions, one torch thread: the learner sees the same data, so
    every logged loss, Q-value, return and evaluation is the same number."""
    tasks = "minatar:Breakout,minatar:Asterix"
    runs = {}
    for backend in ("inprocess", "subprocess"):
        run_dir = tmp_path / backend
        model = MultiTaskDQN(tasks, run_dir=run_dir, env_backend=backend, env_workers=2, **TINY)
        model.learn(600)
        runs[backend] = (metric_rows(run_dir), model.summary["tasks"])
    (rows, summary), (rows_b, summary_b) = runs["inprocess"], runs["subprocess"]
    assert any(key == "train/loss" for _, key, _ in rows)
    assert rows == rows_b
    assert summary == summary_b
