"""Online EWC: the Fisher, the running state, the penalty and the term, against hand numbers.

Toy net (`ToyQ`): one scalar state s, two parameters a and b, Q(s) = [a s, b] over the task's
two actions, plus a padding column 100 a s that must not count. With z = (a s - b) / tau,
pi_0 = sigmoid(z) and pi_1 = 1 - pi_0:
    d log pi_0 / da = (1 - pi_0) s / tau,   d log pi_1 / da = -pi_0 s / tau,
so sum_a pi_a (d log pi_a / da)^2 = pi_0 pi_1 s^2 / tau^2, and likewise for b with 1 for s:
    F_a = mean_s pi_0 pi_1 s^2 / tau^2,   F_b = mean_s pi_0 pi_1 / tau^2.
At a = 1, b = 0.5, tau = 2, states 1, -2, 3: z = 0.25, -1.25, 1.25 and
pi_0 pi_1 = 0.2461341, 0.1731048, 0.1731048, so
    F_a = (0.2461341 + 4 * 0.1731048 + 9 * 0.1731048) / 12 = 0.2080414,
    F_b = (0.2461341 + 2 * 0.1731048) / 12 = 0.0493620.

Penalty (`test_penalty_value_and_gradient_by_hand`): F* = {w: [2, 4], v: [3]},
theta* = {w: [1, 0], v: [0.5]}, theta = {w: [2, 1], v: [-0.5]}:
    (1/2) (2 * 1 + 4 * 1 + 3 * 1) = 4.5;  grads F* (theta - theta*) = w: [2, 4], v: [-3].
"""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from multiq import make_taskset
from multiq.agents.ewc import EwcState, EwcTerm, ewc_penalty, fisher_diagonal
from multiq.errors import TaskError
from multiq.nets import SchemeOptions, build_qnet

A, B, TAU = 1.0, 0.5, 2.0
STATES = [1.0, -2.0, 3.0]


class ToyQ(nn.Module):
    """Q(s) = [a s, b, 100 a s] for task "toy" of 2 actions (the third column is padding)."""

    def __init__(self, a: float = A, b: float = B):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([a]))
        self.b = nn.Parameter(torch.tensor([b]))
        self.specs = {"toy": SimpleNamespace(num_actions=2)}

    @property
    def device(self) -> torch.device:
        return self.a.device

    def forward(self, obs):
        s = obs["toy"]  # [B, 1]
        return torch.cat([self.a * s, self.b.expand_as(s), 100 * self.a * s], dim=1)


def toy_batches():
    return [torch.tensor([[STATES[0]], [STATES[1]]]), torch.tensor([[STATES[2]]])]


def closed_form(a: float, b: float, tau: float) -> tuple[float, float]:
    sig = [1 / (1 + math.exp(-(a * s - b) / tau)) for s in STATES]
    pp = [p * (1 - p) for p in sig]
    f_a = sum(p * s * s for p, s in zip(pp, STATES, strict=True)) / len(STATES) / tau**2
    return f_a, sum(pp) / len(STATES) / tau**2


# --- fisher_diagonal ---------------------------------------------------------------------------


def test_fisher_of_the_toy_matches_the_closed_form():
    f_a, f_b = closed_form(A, B, TAU)
    assert (f_a, f_b) == pytest.approx((0.2080414, 0.0493620), abs=1e-7)

    fisher = fisher_diagonal(ToyQ(), toy_batches(), "toy", temperature=TAU)

    assert list(fisher) == ["a", "b"]
    assert float(fisher["a"]) == pytest.approx(f_a, abs=1e-6)
    assert float(fisher["b"]) == pytest.approx(f_b, abs=1e-6)
    assert not fisher["a"].requires_grad and fisher["a"].shape == (1,)


@pytest.mark.parametrize("chunk_rows", [1, 2, 8])
def test_fisher_does_not_depend_on_chunking_or_batching(chunk_rows):
    one_batch = [torch.tensor([[s] for s in STATES])]
    f_a, f_b = closed_form(A, B, 1.0)
    fisher = fisher_diagonal(ToyQ(), one_batch, "toy", chunk_rows=chunk_rows)
    assert [float(fisher["a"]), float(fisher["b"])] == pytest.approx([f_a, f_b], abs=1e-6)


def test_fisher_covers_only_the_named_parameters_and_leaves_the_net_alone():
    net = ToyQ().train()
    net.b.requires_grad_(False)
    assert list(fisher_diagonal(net, toy_batches(), "toy")) == ["a"]  # default: trainable only

    fisher = fisher_diagonal(net, toy_batches(), "toy", temperature=TAU, params=["b"])

    assert list(fisher) == ["b"]  # a frozen parameter named explicitly is covered
    assert float(fisher["b"]) == pytest.approx(closed_form(A, B, TAU)[1], abs=1e-6)
    assert net.training and net.a.requires_grad and not net.b.requires_grad
    assert net.a.grad is None and net.b.grad is None


def test_fisher_refuses_bad_input():
    with pytest.raises(ValueError, match="no parameters named"):
        fisher_diagonal(ToyQ(), toy_batches(), "toy", params=["c"])
    with pytest.raises(ValueError, match="no states"):
        fisher_diagonal(ToyQ(), [], "toy")
    with pytest.raises(ValueError, match="temperature"):
        fisher_diagonal(ToyQ(), toy_batches(), "toy", temperature=0.0)
    with pytest.raises(TaskError, match="no task 'other'"):
        fisher_diagonal(ToyQ(), toy_batches(), "other")


def brute_force_fisher(net, x, name, num_actions, tau):
    """One state and one action at a time, by autograd: sum_a pi_a (d log pi_a / d theta)^2."""
    params = dict(net.named_parameters())
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    for row in x:
        log_pi = (net({name: row[None]})[0, :num_actions] / tau).log_softmax(0)
        for a in range(num_actions):
            grads = torch.autograd.grad(
                log_pi[a], list(params.values()), retain_graph=True, allow_unused=True
            )
            for total, g in zip(totals.values(), grads, strict=True):
                if g is not None:  # another task's head
                    total += log_pi[a].exp().detach() * g.square()
    return {n: t / len(x) for n, t in totals.items()}


@pytest.mark.parametrize("scheme", ["shared", "conditioned"])
def test_fisher_of_a_real_net_matches_a_per_state_loop(scheme):
    """Breakout has 3 actions; the conditioned head covers Seaquest's 6 (padding columns)."""
    specs = [s for s in make_taskset("minatar") if s.name in ("Breakout", "Seaquest")]
    torch.manual_seed(0)
    net = build_qnet(scheme, specs, 16, dueling=True, options=SchemeOptions()).eval()
    x = torch.rand(5, *specs[0].obs_shape, generator=torch.Generator().manual_seed(1)) < 0.3

    fisher = fisher_diagonal(net, [x[:3], x[3:]], "Breakout", temperature=0.5, chunk_rows=2)

    expected = brute_force_fisher(net, x, "Breakout", 3, 0.5)
    assert fisher.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.allclose(fisher[name], value, atol=1e-6, rtol=1e-4), name
    assert float(fisher["body.1.weight"].sum()) > 0  # the shared body is reached ...
    # ... Seaquest's head, embedding and input layer are not, nor the columns beyond Breakout's
    others = ("Seaquest", "10x10x10", "advantage.1.")
    untouched = [n for n in fisher if any(key in n for key in others)]
    assert len(untouched) == (6 if scheme == "shared" else 5)
    assert all(float(fisher[n].abs().sum()) == 0 for n in untouched)


# --- EwcState ----------------------------------------------------------------------------------


def test_consolidate_accumulates_with_decay_and_moves_the_anchors():
    state = EwcState()
    assert len(state) == 0
    first = {"w": torch.tensor([1.0, 2.0]), "v": torch.tensor([4.0])}
    state.consolidate(first, {"w": torch.tensor([0.1, 0.2]), "v": torch.tensor([0.3])}, 0.5)
    first["w"] += 100  # inputs are copied

    state.consolidate({"w": torch.tensor([3.0, 0.0])}, {"w": torch.tensor([0.4, 0.5])}, 0.5)

    # F* = 0.5 * [1, 2] + [3, 0] for w; v had no new Fisher: 0.5 * 4, and keeps its anchor
    assert state.fisher["w"].tolist() == pytest.approx([3.5, 1.0])
    assert state.fisher["v"].tolist() == pytest.approx([2.0])
    assert state.anchors["w"].tolist() == pytest.approx([0.4, 0.5])
    assert state.anchors["v"].tolist() == pytest.approx([0.3])


def test_consolidate_refuses_bad_input():
    state = EwcState()
    with pytest.raises(ValueError, match="decay"):
        state.consolidate({}, {}, 1.5)
    with pytest.raises(ValueError, match="no anchors"):
        state.consolidate({"w": torch.ones(2)}, {}, 0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        state.consolidate({"w": torch.ones(2)}, {"w": torch.ones(3)}, 0.5)


def test_state_dict_round_trips_through_a_weights_only_load():
    state = EwcState()
    state.consolidate({"net.w": torch.tensor([1.0, 2.0])}, {"net.w": torch.tensor([3.0, 4.0])}, 1)
    buffer = io.BytesIO()
    torch.save(state.state_dict(), buffer)
    buffer.seek(0)

    loaded = EwcState()
    loaded.load_state_dict(torch.load(buffer, weights_only=True))

    assert loaded.fisher["net.w"].tolist() == [1.0, 2.0]
    assert loaded.anchors["net.w"].tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="one anchor per Fisher entry"):
        loaded.load_state_dict({"fisher": {"w": torch.ones(1)}, "anchors": {}})


# --- ewc_penalty and EwcTerm -------------------------------------------------------------------


def hand_state() -> EwcState:
    state = EwcState()
    fisher = {"w": torch.tensor([2.0, 4.0]), "v": torch.tensor([3.0])}
    state.consolidate(fisher, {"w": torch.tensor([1.0, 0.0]), "v": torch.tensor([0.5])}, 1.0)
    return state


def hand_params() -> dict[str, nn.Parameter]:
    return {"w": nn.Parameter(torch.tensor([2.0, 1.0])), "v": nn.Parameter(torch.tensor([-0.5]))}


def test_penalty_value_and_gradient_by_hand():
    params = hand_params()
    penalty = ewc_penalty(params, hand_state())
    assert penalty.item() == pytest.approx(4.5)

    penalty.backward()

    assert params["w"].grad.tolist() == pytest.approx([2.0, 4.0])
    assert params["v"].grad.tolist() == pytest.approx([-3.0])


def test_penalty_of_an_empty_state_is_zero_and_a_shape_mismatch_is_refused():
    assert float(ewc_penalty(hand_params(), EwcState())) == 0.0
    with pytest.raises(ValueError, match="has shape"):
        ewc_penalty({"w": torch.zeros(3)}, hand_state())


def term_losses(term: EwcTerm, names=("x", "y", "z")) -> torch.Tensor:
    q = torch.zeros(len(names), 2)
    return term.task_losses(q, {n: torch.zeros(1, 1) for n in names}, q > -1, list(names))


def test_term_puts_the_weighted_penalty_in_every_task_entry():
    params = hand_params()
    losses = term_losses(EwcTerm(hand_state(), lambda: params, weight=0.5))
    assert losses.tolist() == pytest.approx([2.25, 2.25, 2.25])

    # a balancer's weights sum to one: the loss gains exactly weight * penalty
    alphas = torch.tensor([0.2, 0.3, 0.5])
    (alphas * losses).sum().backward()

    assert (alphas * losses).sum().item() == pytest.approx(0.5 * 4.5)
    assert params["w"].grad.tolist() == pytest.approx([1.0, 2.0])


def test_term_skips_frozen_and_absent_parameters():
    frozen = hand_params()
    frozen["v"].requires_grad_(False)
    absent = {"w": hand_params()["w"]}
    for params in (frozen, absent):  # only w's 0.5 * (2 + 4) = 3 remains
        losses = term_losses(EwcTerm(hand_state(), params, weight=0.5))
        assert losses.tolist() == pytest.approx([1.5, 1.5, 1.5])


def test_term_of_an_empty_state_adds_zeros():
    assert term_losses(EwcTerm(EwcState(), hand_params())).tolist() == [0.0, 0.0, 0.0]


def test_adam_on_the_penalty_alone_pulls_the_weights_back_to_the_anchors():
    state = hand_state()
    params = hand_params()
    start = {n: (p - state.anchors[n]).abs().detach() for n, p in params.items()}
    optimizer = torch.optim.Adam(params.values(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        ewc_penalty(params, state).backward()
        optimizer.step()
    for name, param in params.items():
        distance = (param - state.anchors[name]).abs()
        assert torch.all(distance < 0.25 * start[name]), name
    assert ewc_penalty(params, state).item() < 0.05 * 4.5
