"""Meta-learning: the outer updates by hand, the inner loop, checkpoints and resume, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_config import META_POOL, TINY_META
from wandb_files import record_with

from multiq.agents.learner import Learner, LearnerSettings
from multiq.api import MultiTaskDQN
from multiq.cli import main
from multiq.config import Config
from multiq.errors import ConfigError
from multiq.nets.base import mean_head_init
from multiq.recipes.meta import (
    ALGORITHMS,
    META_TASK,
    fomaml_step,
    iteration_tasks,
    prepare_meta,
    reptile_step,
    resume_meta,
)
from multiq.report.meta import read_meta_csv
from multiq.tasks import make_taskset
from multiq.train.inner import InnerLoop, clone_weights

POOL = META_POOL
TINY = TINY_META


def vec(*values: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(values, dtype=torch.float64)}


def test_reptile_step_moves_theta_toward_the_mean_of_the_adapted_weights():
    theta = vec(1.0, -2.0)
    adapted = [vec(3.0, 0.0), vec(1.0, 2.0)]  # mean (2, 1); mean - theta = (1, 3)
    new = reptile_step(theta, adapted, step_size=0.5)
    assert new["w"].tolist() == [1.5, -0.5]
    assert theta["w"].tolist() == [1.0, -2.0]  # a new dict; theta itself is not modified


def test_fomaml_step_on_a_quadratic_loss_by_hand():
    # L_i(phi) = 0.5 * ||phi - c_i||^2, so grad_i(phi_i) = phi_i - c_i
    theta = vec(0.0, 0.0)
    phis, centres = [vec(1.0, 1.0), vec(2.0, 0.0)], [vec(0.0, 3.0), vec(4.0, 0.0)]
    grads = [{"w": p["w"] - c["w"]} for p, c in zip(phis, centres, strict=True)]
    # grads: (1, -2) and (-2, 0); mean (-0.5, -1); theta - 0.1 * mean = (0.05, 0.1)
    new = fomaml_step(theta, grads, lr=0.1)
    assert new["w"].tolist() == pytest.approx([0.05, 0.1])
    # clipped: the mean's norm is sqrt(1.25); clipped to 0.5 it is scaled by 0.5 / sqrt(1.25)
    clipped = fomaml_step(theta, grads, lr=1.0, max_norm=0.5)
    scale = 0.5 / np.sqrt(1.25)
    assert clipped["w"].tolist() == pytest.approx([0.5 * scale, 1.0 * scale])


def test_iteration_tasks_depend_on_seed_and_iteration_only():
    first = iteration_tasks(3, 7, pool_size=10, batch=4)
    assert first == iteration_tasks(3, 7, pool_size=10, batch=4)
    assert len(set(first)) == 4 and all(0 <= i < 10 for i in first)
    assert iteration_tasks(3, 8, 10, 4) != first or iteration_tasks(4, 7, 10, 4) != first
    assert sorted(iteration_tasks(0, 0, pool_size=3, batch=5)) == [0, 1, 2]


def test_mean_head_init_gives_the_mean_of_the_held_heads_q_values():
    specs = list(make_taskset([{"id": "gym:CartPole-v1", "name": n} for n in ("a", "b")]))
    learner = Learner(specs, LearnerSettings(hidden_size=8))
    new = list(make_taskset([{"id": "gym:CartPole-v1", "name": "c"}]))[0]
    learner.add_task(new, head_init="mean")
    obs = torch.randn(5, 4)
    q = {n: learner.policy.q_values({n: obs}) for n in ("a", "b", "c")}
    groups = learner.online.param_groups()
    for i, param in enumerate(groups["head/c"]):
        expected = (groups["head/a"][i] + groups["head/b"][i]) / 2
        assert torch.allclose(param, expected)
    assert torch.allclose(q["c"], (q["a"] + q["b"]) / 2, atol=1e-6)
    # the target net starts as a copy of the online head
    target = learner.target.param_groups()["head/c"]
    assert all(torch.equal(t, o) for t, o in zip(target, groups["head/c"], strict=True))
    assert not mean_head_init(learner.online, "nothing", ["a"])


def test_the_inner_loop_leaves_the_meta_weights_untouched_and_adapts_a_copy():
    cfg = Config(**TINY)
    spec = list(make_taskset([{"id": "gym:CartPole-v1", "name": META_TASK}]))[0]
    learner = Learner([spec], LearnerSettings(hidden_size=16))
    theta = clone_weights(learner.online.state_dict())
    before = clone_weights(theta)
    loop = InnerLoop(Learner([spec], LearnerSettings(hidden_size=16)), cfg, META_TASK)
    loop.load(theta)
    result = loop.train(spec, cfg.inner_steps, seed=1, eval_at=(0, cfg.inner_steps))
    phi = loop.weights()
    assert all(torch.equal(theta[k], before[k]) for k in theta)
    assert all(torch.equal(v, before[k]) for k, v in learner.online.state_dict().items())
    assert any(not torch.equal(phi[k], theta[k]) for k in theta)
    assert result.env_steps == cfg.inner_steps and result.updates > 0
    assert set(result.evaluations) == {0, cfg.inner_steps}
    # the same seed from the same weights gives the same adapted weights
    loop.load(theta)
    loop.train(spec, cfg.inner_steps, seed=1)
    assert all(torch.equal(v, phi[k]) for k, v in loop.weights().items())


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_a_meta_run_resumed_after_its_checkpoint_ends_bit_identical(tmp_path, algo):
    cfg = Config(**{**TINY, "meta_iterations": 3, "meta_algo": algo})
    straight = prepare_meta(MultiTaskDQN, tmp_path / "straight", cfg)
    straight.run()
    first = prepare_meta(MultiTaskDQN, tmp_path / "split", cfg.replace(meta_iterations=1))
    first.run()
    resumed = resume_meta(MultiTaskDQN, tmp_path / "split", {"meta_iterations": 3})
    assert resumed.state.iteration == 1
    resumed.run()
    a = straight.model.learner.online.state_dict()
    b = resumed.model.learner.online.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_a, rows_b = read_meta_csv(tmp_path / "straight"), read_meta_csv(tmp_path / "split")
    drop = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]  # noqa: E731
    assert json.dumps(drop(rows_a)) == json.dumps(drop(rows_b))
    assert [r["iteration"] for r in rows_a] == [0, 1, 2]
    queries = cfg.meta_query_steps if algo == "fomaml" else 0
    assert rows_a[-1]["env_steps"] == 3 * 2 * (cfg.inner_steps + queries)


def test_the_meta_model_loads_and_a_new_task_starts_from_the_meta_head(tmp_path):
    run = prepare_meta(MultiTaskDQN, tmp_path / "m", Config(**{**TINY, "meta_iterations": 1}))
    run.run()
    model = MultiTaskDQN.load(tmp_path / "m")
    assert model.task_names == [META_TASK] and model.config.head_init == "mean"
    model.add_task({"id": "gym:CartPole-v1", "name": "new"})
    groups = model.learner.online.param_groups()
    assert all(torch.equal(a, b) for a, b in zip(groups["head/new"], groups[f"head/{META_TASK}"],
                                                  strict=True))  # fmt: skip


def test_resume_refuses_to_change_the_network(tmp_path):
    prepare_meta(MultiTaskDQN, tmp_path / "m", Config(**{**TINY, "meta_iterations": 1})).run()
    with pytest.raises(ConfigError, match="hidden_size"):
        resume_meta(MultiTaskDQN, tmp_path / "m", {"hidden_size": 32})


def test_a_pool_with_different_spaces_is_refused():
    with pytest.raises(Exception, match="must share spaces"):
        prepare_meta(MultiTaskDQN, None, Config(**{**TINY, "meta_tasks": "classic"}))


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_each_algorithm_runs_end_to_end_through_the_cli(tmp_path, capsys, algo):
    pool = "[gym:CartPole-v1, {id: gym:CartPole-v1, name: c2}]"
    sets = [f"{k}={v}" for k, v in TINY.items() if k not in ("meta_tasks", "meta_iterations")]
    args = ["meta", "--algo", algo, "--meta-iterations", "2", "--run-dir", str(tmp_path / "m")]
    args += [x for s in sets for x in ("--set", s)] + ["--set", f"meta_tasks={pool}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"meta ({algo}) over 2 tasks" in out
    for name in ("model.pt", "meta.csv", "meta.png", "summary.json", "checkpoint.pt"):
        assert (tmp_path / "m" / name).is_file()
    assert main(["meta", "--resume", str(tmp_path / "m"), "--meta-iterations", "3"]) == 0
    assert len(read_meta_csv(tmp_path / "m")) == 3


def test_an_unknown_algorithm_is_refused_with_a_suggestion(tmp_path, capsys):
    code = main(["meta", "--algo", "reptil", "--run-dir", str(tmp_path / "m"), "--set",
                 "meta_tasks=gym:CartPole-v1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "reptile" in err and "Traceback" not in err


def test_an_inner_batch_larger_than_the_inner_replay_is_refused():
    spec = list(make_taskset([{"id": "gym:CartPole-v1", "name": META_TASK}]))[0]
    cfg = Config(**{**TINY, "batch_size": 600})  # inner_buffer_size 500
    with pytest.raises(ConfigError, match="inner_buffer_size"):
        InnerLoop(Learner([spec], LearnerSettings(hidden_size=16)), cfg, META_TASK)


def test_transfer_finetune_from_a_meta_model_starts_the_target_from_the_meta_head(tmp_path):
    run = prepare_meta(MultiTaskDQN, tmp_path / "m", Config(**{**TINY, "meta_iterations": 1}))
    run.run()
    target = {"id": "gym:CartPole-v1", "name": "target"}
    model = MultiTaskDQN.from_pretrained(
        tmp_path / "m",
        [target],
        mode="finetune",
        run_dir=tmp_path / "t",
        total_steps_per_task=200,
        learning_starts=50,
        eval_freq=0,
    )
    groups = model.learner.online.param_groups()
    pairs = zip(groups["head/target"], groups[f"head/{META_TASK}"], strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    model.learn()
    assert (tmp_path / "t" / "model.pt").is_file()


def tensorboard_scalars(tb_dir, tag: str) -> list[tuple[int, float]]:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_tensorboard_gets_meta_csv_at_the_iterations_done_across_a_resume(tmp_path):
    cfg = Config(**{**TINY, "tensorboard": True, "meta_eval_freq": 2})
    prepare_meta(MultiTaskDQN, tmp_path / "m", cfg.replace(meta_iterations=1)).run()
    resume_meta(MultiTaskDQN, tmp_path / "m", {"meta_iterations": 3}).run()
    rows = read_meta_csv(tmp_path / "m")
    inner = tensorboard_scalars(tmp_path / "m" / "tb", "meta/inner_return")
    assert inner == [(r["iteration"] + 1, pytest.approx(r["inner_return"])) for r in rows]
    post = tensorboard_scalars(tmp_path / "m" / "tb", "meta/post_return")
    assert [step for step, _ in post] == [1, 3]  # evaluated iterations only (0 and the last)


def test_a_meta_run_without_tensorboard_in_loggers_writes_no_events(tmp_path):
    cfg = Config(**{**TINY, "tensorboard": True, "loggers": ["csv"], "meta_iterations": 1})
    prepare_meta(MultiTaskDQN, tmp_path / "m", cfg).run()
    assert not (tmp_path / "m" / "tb").exists()


def test_wandb_gets_the_meta_keys(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = Config(**{**TINY, "loggers": ["csv", "wandb"], "meta_iterations": 1})
    prepare_meta(MultiTaskDQN, tmp_path / "m", cfg).run()
    (record,) = (tmp_path / "m" / "wandb").glob("offline-run-*/run-*.wandb")
    keys = [f"meta/{key}".encode() for key in ("inner_return", "post_return")]
    data = record_with(record, keys)
    assert all(key in data for key in keys)
