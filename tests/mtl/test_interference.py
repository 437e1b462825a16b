"""The gradient-conflict map: cosines and norm shares by hand, for every balancer, and how often
a run measures it."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from tiny_config import TINY_RUN

from multiq import MultiTaskDQN
from multiq.agents.learner import Learner
from multiq.mtl import BALANCERS, build_balancer
from multiq.mtl.interference import conflict_stats, task_gradients, task_pairs

TWO_TASKS = "classic:CartPole,classic:Acrobot"


@pytest.mark.parametrize(
    ("g_a", "g_b", "cosine", "shares"),
    [
        ([1.0, 0.0], [2.0, 0.0], 1.0, [1 / 3, 2 / 3]),  # equal directions
        ([1.0, 0.0], [-2.0, 0.0], -1.0, [1 / 3, 2 / 3]),  # opposite
        ([3.0, 0.0], [0.0, 1.0], 0.0, [0.75, 0.25]),  # orthogonal
        ([3.0, 4.0], [4.0, -3.0], 0.0, [0.5, 0.5]),  # orthogonal, equal norms 5
        (
            [1.0, 1.0],
            [0.0, 2.0],
            1 / math.sqrt(2),
            [math.sqrt(2) / (2 + math.sqrt(2)), 2 / (2 + math.sqrt(2))],
        ),  # fmt: skip
    ],
)
def test_cosines_and_shares_by_hand(g_a, g_b, cosine, shares):
    cosines, got = conflict_stats(torch.tensor([g_a, g_b]))
    expected = torch.tensor([[1.0, cosine], [cosine, 1.0]])
    torch.testing.assert_close(cosines, expected)
    torch.testing.assert_close(got, torch.tensor(shares))


def test_a_zero_gradient_has_cosine_zero_and_no_share():
    cosines, shares = conflict_stats(torch.tensor([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]))
    assert cosines[0, 1] == 0 and cosines[1, 2] == 0 and cosines[0, 0] == 0
    torch.testing.assert_close(shares, torch.tensor([0.0, 1.0, 0.0]))
    _, none = conflict_stats(torch.zeros(2, 3))
    assert none.tolist() == [0.0, 0.0]


def test_pairs_in_task_order():
    assert task_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert task_pairs(1) == []


def toy_problem(u_a, u_b):
    """A toy two-task net: shared weights w [2] (w0 = (1, -1)) and a head scale per task;
    L_t = h_t * (w . u_t), so with h_t = 1 dL_t/dw = u_t."""
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    heads = [torch.nn.Parameter(torch.ones(())) for _ in range(2)]
    inputs = torch.tensor([u_a, u_b])

    def losses():
        return torch.stack([heads[t] * (w * inputs[t]).sum() for t in range(2)])

    return w, heads, losses


def toy_balancer(name: str, params: list, shared: list[bool]):
    """A balancer of tasks a and b (alpha 0.5 each) over `params`."""
    balancer = build_balancer(name)
    for task in ("a", "b"):
        balancer.add_task(task)
    balancer.set_params(params, shared)
    balancer.set_task_weights({"a": 0.5, "b": 0.5})
    return balancer


@pytest.mark.parametrize("balancer_name", sorted(BALANCERS))
@pytest.mark.parametrize(
    ("u_a", "u_b", "cosine"),
    [
        ([1.0, 2.0], [2.0, 4.0], 1.0),
        ([1.0, 2.0], [-1.0, -2.0], -1.0),
        ([2.0, 0.0], [0.0, 1.0], 0.0),
    ],
)
def test_every_balancer_hands_over_the_gradients_by_hand(balancer_name, u_a, u_b, cosine):
    w, heads, losses = toy_problem(u_a, u_b)
    balancer = toy_balancer(balancer_name, [w, *heads], [True, False, False])
    task_ids = torch.tensor([0, 1])
    loss, grads = balancer.probed_backward(losses(), task_ids, ["a", "b"])
    # each task's gradient of alpha_t L_t on w: 0.5 u_t, before any balancing
    torch.testing.assert_close(grads, 0.5 * torch.tensor([u_a, u_b]))
    cosines, shares = conflict_stats(grads)
    assert cosines[0, 1].item() == pytest.approx(cosine, abs=1e-6)
    norm_a, norm_b = math.hypot(*u_a), math.hypot(*u_b)
    assert shares[0].item() == pytest.approx(norm_a / (norm_a + norm_b))
    # the probe leaves the update's own gradient as the plain backward gives it
    probed = [p.grad.clone() for p in (w, *heads)]
    w2, heads2, losses2 = toy_problem(u_a, u_b)
    plain = toy_balancer(balancer_name, [w2, *heads2], [True, False, False])
    plain.backward(losses2(), task_ids, ["a", "b"])
    for got, want in zip(probed, [p.grad for p in (w2, *heads2)], strict=True):
        torch.testing.assert_close(got, want)


def test_no_probe_without_shared_parameters_or_with_one_task():
    w, heads, losses = toy_problem([1.0, 0.0], [0.0, 1.0])
    balancer = toy_balancer("fixed", [w, *heads], [False, False, False])
    _, grads = balancer.probed_backward(losses(), torch.tensor([0, 1]), ["a", "b"])
    assert grads is None and w.grad is not None  # the update itself still ran
    balancer.set_params([w, *heads], [True, False, False])
    _, grads = balancer.probed_backward(losses()[:1], torch.tensor([0]), ["a"])
    assert grads is None


def test_task_gradients_fill_zeros_where_a_task_does_not_reach():
    w, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    grads = task_gradients(torch.stack([(2 * w).sum(), (w * w).sum()]), [w, unused])
    torch.testing.assert_close(grads, torch.tensor([[2.0, 2, 0, 0, 0], [2.0, 2, 0, 0, 0]]))
    assert w.grad is None and unused.grad is None


def probe_flags(monkeypatch, **settings) -> tuple[list[bool], list[dict]]:
    """Trains a tiny two-task agent and returns each update's `probe` flag and its metrics."""
    flags, results = [], []
    update = Learner.update

    def spy(self, batch, probe=False):
        flags.append(probe)
        results.append(update(self, batch, probe))
        return results[-1]

    monkeypatch.setattr(Learner, "update", spy)
    model = MultiTaskDQN(TWO_TASKS, **(TINY_RUN | settings))
    model.learn(evaluate=False)
    return flags, results


def logged_keys(run_dir) -> set[str]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return {row["key"] for row in csv.DictReader(handle)}


def test_the_map_is_measured_every_interference_freq_updates_and_logged(monkeypatch, tmp_path):
    flags, results = probe_flags(monkeypatch, interference_freq=7, run_dir=str(tmp_path))
    assert len(flags) > 20
    assert flags == [i % 7 == 0 for i in range(len(flags))]
    probed = [r for r, f in zip(results, flags, strict=True) if f]
    assert all(r["grad_cos"].shape == (2, 2) and r["grad_share"].shape == (2,) for r in probed)
    assert not any("grad_cos" in r for r, f in zip(results, flags, strict=True) if not f)
    keys = logged_keys(tmp_path)
    assert "mtl/grad_cos/CartPole/Acrobot" in keys
    assert {"task/CartPole/grad_share", "task/Acrobot/grad_share"} <= keys


@pytest.mark.parametrize("settings", [{"scheme": "independent"}, {"interference_freq": 0}])
def test_no_map_without_shared_parameters_or_when_turned_off(monkeypatch, tmp_path, settings):
    flags, results = probe_flags(monkeypatch, run_dir=str(tmp_path), **settings)
    assert not any("grad_cos" in r for r in results)
    assert any(flags) == ("interference_freq" not in settings)
    assert not any("grad_cos" in k or "grad_share" in k for k in logged_keys(tmp_path))


@pytest.mark.parametrize(
    "settings",
    [
        {"scheme": "conditioned"},
        {"scheme": "shared-private"},
        {"scheme": "routed"},
        {"popart": True, "balancer": "uncertainty"},
        {"balancer": "gradnorm"},
    ],
)
def test_every_scheme_with_shared_parameters_logs_the_map(monkeypatch, tmp_path, settings):
    flags, results = probe_flags(
        monkeypatch, interference_freq=10, run_dir=str(tmp_path), **settings
    )
    probed = [r for r, f in zip(results, flags, strict=True) if f]
    assert probed and all(torch.isfinite(r["grad_cos"]).all() for r in probed)
    assert all(r["grad_share"].sum().item() == pytest.approx(1.0) for r in probed)
    assert "mtl/grad_cos/CartPole/Acrobot" in logged_keys(tmp_path)
