"""FOMAML's outer step: Adam on the outer gradient by hand, its state across iterations, and
Q at the meta-weights bounded on a short CartPole meta run (issue 27)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from tiny_config import TINY_META

from multiq.api import MultiTaskDQN
from multiq.config import Config
from multiq.config.keys import KEYS
from multiq.recipes.meta import (
    ALGORITHMS,
    META_CHECKPOINT_KIND,
    META_TASK,
    OUTER_OPTIMIZERS,
    AdamMoments,
    adam_step,
    prepare_meta,
    resume_meta,
)
from multiq.runio.layout import CHECKPOINT_FILE
from multiq.train import checkpoint as ckpt

TINY = TINY_META | {"meta_eval_freq": 0, "eval_episodes": 1, "meta_algo": "fomaml"}
# CartPole pays +1 per step; with gamma 0.99 no discounted return exceeds sum_t 0.99^t = 100
# (the SGD outer step of the issue drifted to 710-832)
CARTPOLE_MAX_RETURN = 1 / (1 - 0.99)
HEADER = ("format", "version", "kind", "meta_json")  # `ckpt.save_tensors`' own entries


def vec(*values: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(values, dtype=torch.float64)}


def test_the_outer_optimisers_are_the_keys_choices_and_adam_is_the_default():
    assert set(OUTER_OPTIMIZERS) == set(KEYS["meta_outer_optimizer"].choices)
    assert Config().meta_outer_optimizer == "adam"


def test_adam_step_by_hand_over_two_steps():
    # step 1, g = 2: m = 0.2, v = 0.004; m_hat = 2, v_hat = 4: theta = 1 - 0.1 * 2 / 2 = 0.9
    theta, moments = adam_step(vec(1.0), vec(2.0), AdamMoments(), lr=0.1)
    assert moments.step == 1
    assert theta["w"].item() == pytest.approx(0.9, abs=1e-9)
    assert moments.first["w"].item() == pytest.approx(0.2)
    assert moments.second["w"].item() == pytest.approx(0.004)
    # step 2, g = -1: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996;
    # m_hat = 0.08 / 0.19, v_hat = 0.004996 / 0.001999
    theta, moments = adam_step(theta, vec(-1.0), moments, lr=0.1)
    expected = 0.9 - 0.1 * (0.08 / 0.19) / (np.sqrt(0.004996 / 0.001999) + 1e-8)
    assert theta["w"].item() == pytest.approx(expected, abs=1e-9)  # 0.873366...
    assert moments.step == 2


def test_adam_step_matches_torch_adam():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, generator=gen)
    grads = [torch.randn(3, 4, generator=gen) * scale for scale in (1.0, 100.0, 0.01)]
    param = torch.nn.Parameter(start.clone())
    optimiser = torch.optim.Adam([param], lr=0.01)
    theta, moments = {"p": start.clone()}, AdamMoments()
    for g in grads:
        param.grad = g.clone()
        optimiser.step()
        theta, moments = adam_step(theta, {"p": g}, moments, lr=0.01)
    assert torch.allclose(theta["p"], param.detach(), atol=1e-6)


def test_fomamls_outer_step_on_a_toy_q_by_hand():
    # a two-parameter Q with the TD loss 0.5 * (q_j - y_j)^2: the gradient at the adapted
    # weights phi_i is phi_i - y_i
    theta = vec(0.0, 0.0)
    phis, targets = [vec(1.0, 0.5), vec(3.0, 0.1)], [vec(0.0, 0.6), vec(-2.0, 0.2)]
    grads = [{"w": p["w"] - y["w"]} for p, y in zip(phis, targets, strict=True)]
    # mean gradient (3, -0.1); max_grad_norm 100 leaves it unclipped
    cfg = Config(meta_lr=0.01, max_grad_norm=100.0)
    combine = ALGORITHMS["fomaml"].combine
    adam, state = combine(theta, grads, cfg, {})
    # Adam's first step is lr * g / |g| per entry: each moves by exactly meta_lr
    assert adam["w"].tolist() == pytest.approx([-0.01, 0.01], abs=1e-9)
    assert state["step"] == 1
    assert state["first"]["w"].tolist() == pytest.approx([0.3, -0.01])
    sgd, kept = combine(theta, grads, cfg.replace(meta_outer_optimizer="sgd"), {})
    assert sgd["w"].tolist() == pytest.approx([-0.03, 0.001])  # theta - 0.01 * (3, -0.1)
    assert kept == {}
    # the clip comes first: a 100x gradient gives the same Adam step, and an SGD step of norm
    # meta_lr * max_grad_norm
    big = [{"w": 100 * g["w"]} for g in grads]
    clipped = cfg.replace(max_grad_norm=1.5)
    assert combine(theta, big, clipped, {})[0]["w"].tolist() == pytest.approx([-0.01, 0.01])
    step = combine(theta, big, clipped.replace(meta_outer_optimizer="sgd"), {})[0]["w"]
    assert float(step.norm()) == pytest.approx(0.01 * 1.5)
    assert theta["w"].tolist() == [0.0, 0.0]  # theta itself is not modified


def test_reptile_ignores_and_keeps_the_outer_state():
    theta, adapted = vec(1.0), [vec(3.0)]
    state = {"anything": 1}
    new, kept = ALGORITHMS["reptile"].combine(theta, adapted, Config(meta_step_size=0.5), state)
    assert new["w"].tolist() == [2.0] and kept is state


def _probe_states(n: int = 256) -> torch.Tensor:
    """[n, 4] CartPole states: resets and a random policy's steps."""
    env, rng, states = gym.make("CartPole-v1"), np.random.default_rng(0), []
    obs, _ = env.reset(seed=0)
    while len(states) < n:
        states.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            obs, _ = env.reset(seed=len(states))
    env.close()
    return torch.as_tensor(np.array(states), dtype=torch.float32)


def _theta(run) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in run.model.learner.online.named_parameters()}


def test_q_at_the_meta_weights_stays_bounded_on_a_short_cartpole_run(tmp_path):
    cfg = Config(**{**TINY, "meta_iterations": 4})
    run = prepare_meta(MultiTaskDQN, tmp_path / "m", cfg)
    states, thetas = _probe_states(), [_theta(run)]
    for done in range(1, cfg.meta_iterations + 1):
        run.model.config = run.cfg = cfg.replace(meta_iterations=done)
        run.run()
        thetas.append(_theta(run))
        q = run.model.learner.policy.q_values({META_TASK: states})
        assert bool(torch.isfinite(q).all())
        assert float(q.abs().max()) < CARTPOLE_MAX_RETURN
    assert run.outer["step"] == cfg.meta_iterations
    # Adam bounds each iteration's move of every parameter: by Cauchy-Schwarz on the
    # bias-corrected moments, |step t| <= lr (1-b1)/(1-b1^t) sqrt((1-b2^t)/(1-b2)
    # sum_k<t (b1^2/b2)^k), which is 1.0068 lr at t = 4
    bound = 1.007 * cfg.meta_lr
    for before, after in zip(thetas, thetas[1:], strict=False):
        moves = [float((after[n] - before[n]).abs().max()) for n in before]
        assert 0 < max(moves) <= bound


def test_a_checkpoint_from_before_the_outer_optimiser_key_resumes_with_sgd(tmp_path):
    cfg = Config(**{**TINY, "meta_iterations": 1, "meta_outer_optimizer": "sgd", "meta_lr": 0.05})
    prepare_meta(MultiTaskDQN, tmp_path / "m", cfg).run()
    path = tmp_path / "m" / CHECKPOINT_FILE
    meta, payload = ckpt.load_tensors(path, META_CHECKPOINT_KIND)
    del meta["config"]["meta_outer_optimizer"]  # as written before issue 27
    old = {k: v for k, v in payload.items() if k not in {*HEADER, "meta_outer"}}
    ckpt.save_tensors(path, META_CHECKPOINT_KIND, meta, old)
    resumed = resume_meta(MultiTaskDQN, tmp_path / "m", {"meta_iterations": 2})
    assert resumed.cfg.meta_outer_optimizer == "sgd" and resumed.cfg.meta_lr == 0.05
    assert resumed.outer == {}
    resumed.run()
    assert resumed.outer == {} and resumed.state.iteration == 2
