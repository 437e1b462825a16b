"""Parameter groups in the learner: frozen groups never move, learning-rate scales, balancers.

Tasks: CartPole and a second CartPole (same 4-float signature, so they share the input layer
`inputs/4_float32`) plus Acrobot (its own `inputs/6_float32`). Batches are random `NStepSample`s.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.agents.learner import Learner, LearnerSettings, Training
from multiq.config import Config
from multiq.errors import ConfigError
from multiq.replay.buffers import NStepSample

ROWS = 8


@pytest.fixture(scope="module")
def specs():
    return list(
        make_taskset(
            [
                "classic:CartPole",
                {"id": "classic:CartPole", "name": "CartPole2"},
                "classic:Acrobot",
            ]
        )
    )


def make_learner(specs, seed=0, **settings) -> Learner:
    torch.manual_seed(seed)
    base = dict(scheme="shared", hidden_size=16, learning_rate=1e-3)
    return Learner(specs, LearnerSettings(**{**base, **settings}), "cpu")


def sample(spec, rng: np.random.Generator, rows: int = ROWS) -> NStepSample:
    dim = spec.obs_shape[0]
    return NStepSample(
        obs=rng.standard_normal((rows, dim)).astype(np.float32),
        actions=rng.integers(0, spec.num_actions, rows).astype(np.int64),
        returns=rng.standard_normal(rows).astype(np.float32),
        next_obs=rng.standard_normal((rows, dim)).astype(np.float32),
        discounts=np.full(rows, 0.99, dtype=np.float32),
    )


def batches(specs, count: int, seed: int = 0) -> list[dict[str, NStepSample]]:
    rng = np.random.default_rng(seed)
    return [{s.name: sample(s, rng) for s in specs} for _ in range(count)]


def snapshot(learner: Learner) -> dict[str, list[torch.Tensor]]:
    return {g: [p.detach().clone() for p in ps] for g, ps in learner.online.param_groups().items()}


def equal_weights(specs) -> dict[str, float]:
    return {s.name: 1.0 / len(specs) for s in specs}


def frozen_groups(learner: Learner) -> list[str]:
    return [g for g in learner.online.param_groups() if not learner.training.trains(g)]


def check_frozen_and_moved(learner, before, frozen: set[str]) -> None:
    after = learner.online.param_groups()
    for group, params in after.items():
        for old, p in zip(before[group], params, strict=True):
            if group in frozen:
                assert torch.equal(p.detach(), old), f"frozen group {group} moved"
            else:
                assert not torch.equal(p.detach(), old), f"trainable group {group} did not move"


@pytest.mark.parametrize(
    ("patterns", "frozen"),
    [
        (("trunk",), {"trunk"}),
        (("inputs/*",), {"inputs/4_float32", "inputs/6_float32"}),
        (("trunk", "head/CartPole*"), {"trunk", "head/CartPole", "head/CartPole2"}),
    ],
    ids=["trunk", "inputs-glob", "trunk-and-heads"],
)
def test_frozen_groups_stay_bit_identical_while_the_others_move(specs, patterns, frozen):
    learner = make_learner(specs)
    learner.configure(Training(task_weights=equal_weights(specs), frozen=patterns))
    assert set(frozen_groups(learner)) == frozen
    before = snapshot(learner)

    for batch in batches(specs, 5):
        metrics = learner.update(batch)
        assert torch.isfinite(metrics["loss"])

    check_frozen_and_moved(learner, before, frozen)
    groups = learner.online.param_groups()
    for group in frozen:
        assert all(not p.requires_grad and p.grad is None for p in groups[group])
    assert set(learner.trainable_groups()) == set(groups) - frozen


def test_optimizer_holds_exactly_the_trainable_parameters(specs):
    learner = make_learner(specs)
    learner.configure(Training(task_weights=equal_weights(specs), frozen=("trunk", "inputs/*")))
    groups = learner.online.param_groups()
    frozen = ("trunk", "inputs/4_float32", "inputs/6_float32")
    frozen_ids = {id(p) for g in frozen for p in groups[g]}
    trainable_ids = {id(p) for g, ps in groups.items() for p in ps} - frozen_ids
    in_optimizer = [id(p) for group in learner.optimizer.param_groups for p in group["params"]]
    assert len(in_optimizer) == len(set(in_optimizer))
    assert set(in_optimizer) == trainable_ids  # `fixed` has no parameters of its own
    assert not frozen_ids & set(in_optimizer)
    learner.update(batches(specs, 1)[0])
    assert not frozen_ids & {id(p) for p in learner.optimizer.state}


def test_unfreezing_keeps_the_moments_of_parameters_that_trained(specs):
    learner = make_learner(specs)
    weights = equal_weights(specs)
    learner.configure(Training(task_weights=weights, frozen=("trunk",)))
    learner.update(batches(specs, 1)[0])
    head = learner.online.param_groups()["head/Acrobot"][0]
    moments = learner.optimizer.state[head]["exp_avg"].clone()

    learner.configure(Training(task_weights=weights))

    assert torch.equal(learner.optimizer.state[head]["exp_avg"], moments)
    trunk = learner.online.param_groups()["trunk"]
    assert all(p.requires_grad for p in trunk)
    in_optimizer = {id(p) for group in learner.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in trunk} <= in_optimizer


@pytest.mark.parametrize("balancer", ["pcgrad", "gradnorm"])
def test_balancers_work_with_a_frozen_trunk(specs, balancer):
    learner = make_learner(specs, balancer=balancer)
    learner.configure(Training(task_weights=equal_weights(specs), frozen=("trunk",)))
    groups = learner.online.param_groups()
    trunk_ids = {id(p) for p in groups["trunk"]}
    params = learner.balancer.params
    assert not trunk_ids & {id(p) for p in params}
    trainable = [p for g, ps in groups.items() if g != "trunk" for p in ps]
    assert [id(p) for p in params] == [id(p) for p in trainable]
    # with the trunk frozen, only the input layer of the two CartPoles is still shared
    shared = {id(p) for p, s in zip(params, learner.balancer.shared, strict=True) if s}
    assert shared == {id(p) for p in groups["inputs/4_float32"]}
    before = snapshot(learner)

    for batch in batches(specs, 4):
        metrics = learner.update(batch)
        assert torch.isfinite(metrics["loss"])

    check_frozen_and_moved(learner, before, {"trunk"})
    if balancer == "gradnorm":
        # the shared input layer gives GradNorm gradient norms to balance: weights move off 1
        weights = metrics["balance_weight"]
        assert weights.shape == (3,)
        assert not torch.equal(weights, torch.ones(3))
        assert float(weights.sum()) == pytest.approx(3.0, abs=1e-5)


def test_pcgrad_projection_skips_frozen_parameters(specs):
    """The surgery runs on the shared trainable parameters only (none of the trunk's)."""
    learner = make_learner(specs, balancer="pcgrad")
    learner.configure(Training(task_weights=equal_weights(specs), frozen=("trunk",)))
    trunk_ids = {id(p) for p in learner.online.param_groups()["trunk"]}
    surgery = {id(p) for p in learner.balancer.shared_list}
    assert surgery and not surgery & trunk_ids


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_config_rejects_lr_scales_that_are_not_positive(scale):
    with pytest.raises(ConfigError, match="lr_scales"):
        Config(lr_scales={"head/*": scale})


def test_first_match_of_lr_scales_counts(specs):
    learner = make_learner(specs)
    learner.configure(
        Training(
            task_weights=equal_weights(specs),
            lr_scales={"head/*": 10.0, "head/CartPole": 0.5, "trunk": 0.5},
        )
    )
    lr_of = {}
    for group in learner.optimizer.param_groups:
        for p in group["params"]:
            lr_of[id(p)] = group["lr"]
    expected = {"trunk": 5e-4, "inputs/4_float32": 1e-3, "inputs/6_float32": 1e-3}
    expected.update({f"head/{s.name}": 1e-2 for s in specs})
    for g, ps in learner.online.param_groups().items():
        assert [lr_of[id(p)] for p in ps] == pytest.approx([expected[g]] * len(ps)), g


def first_step_deltas(specs, lr_scales) -> dict[str, list[torch.Tensor]]:
    learner = make_learner(specs, learning_rate=1e-2)
    learner.configure(Training(task_weights=equal_weights(specs), lr_scales=lr_scales))
    before = snapshot(learner)
    learner.update(batches(specs, 1, seed=3)[0])
    after = snapshot(learner)
    return {g: [a - b for a, b in zip(after[g], before[g], strict=True)] for g in before}


def test_lr_scale_10_makes_the_first_adam_step_10_times_larger(specs):
    """Adam's first step is lr * g / (|g| + eps): +-lr per element, so the scale shows exactly."""
    plain = first_step_deltas(specs, {})
    scaled = first_step_deltas(specs, {"head/*": 10.0})
    lr = 1e-2
    for group, deltas in plain.items():
        for d1, d10 in zip(deltas, scaled[group], strict=True):
            if not group.startswith("head/"):
                assert torch.equal(d10, d1), f"{group} is not scaled but moved differently"
                continue
            moved = d1 != 0
            assert moved.any()
            assert torch.equal(moved, d10 != 0)
            ratio = d10[moved] / d1[moved]
            assert torch.allclose(ratio, torch.full_like(ratio, 10.0), rtol=0, atol=1e-4), group
            # hand check: every moved element of the head stepped by lr (|g| >> eps = 1e-8)
            assert torch.allclose(d1[moved].abs(), torch.full_like(ratio, lr), rtol=1e-4)


# --- a task joins the learner -------------------------------------------------------------------


@pytest.mark.parametrize("popart", [False, True], ids=["plain", "popart"])
def test_learner_add_task_keeps_held_outputs_and_optimizer_state(specs, popart):
    held, new = specs[:2], make_taskset("classic:MountainCar")[0]
    learner = make_learner(held, popart=popart)
    learner.configure(Training(task_weights={"CartPole": 0.25, "CartPole2": 0.75}))
    for batch in batches(held, 3):
        learner.update(batch)  # moves weights, Adam moments and PopArt statistics
    obs = {s.name: torch.randn(5, *s.obs_shape) for s in held}
    with torch.no_grad():
        online = {n: learner.policy.q_values({n: x}).clone() for n, x in obs.items()}
        target = {n: learner.target({n: x}).clone() for n, x in obs.items()}
    head = learner.online.param_groups()["head/CartPole"][0]
    moments = {k: v.clone() for k, v in learner.optimizer.state[head].items()}

    learner.add_task(new)

    with torch.no_grad():
        assert all(torch.equal(learner.policy.q_values({n: x}), online[n]) for n, x in obs.items())
        assert all(torch.equal(learner.target({n: x}), target[n]) for n, x in obs.items())
    # the new task's target modules start as copies of its online ones
    new_online = learner.online.param_groups()["head/MountainCar"]
    new_target = [p for n, p in learner.target.named_parameters() if ".MountainCar." in n]
    assert len(new_target) == len(new_online) == 2
    assert all(torch.equal(a, b) for a, b in zip(new_online, new_target, strict=True))
    assert learner.training.task_weights == {
        "CartPole": 0.25,
        "CartPole2": 0.75,
        "MountainCar": 0.5,
    }
    in_optimizer = {id(p) for group in learner.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in new_online} <= in_optimizer
    assert all(torch.equal(learner.optimizer.state[head][k], v) for k, v in moments.items())
    learner.update(batches([*held, new], 1, seed=9)[0])  # and it trains with the others
