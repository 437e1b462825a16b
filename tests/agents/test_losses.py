"""TD-loss helpers checked against numbers worked out by hand."""

from __future__ import annotations

import pytest
import torch

from multiq.agents.losses import (
    masked_argmax,
    masked_max,
    q_target,
    td_loss,
    weighted_sum,
)

# Row 0 belongs to a 2-action task (column 2 is padding, holding a tempting 100).
# Row 1 belongs to a 3-action task.
NEXT_Q_TARGET = torch.tensor([[1.0, 5.0, 100.0], [2.0, -1.0, 3.0]])
NEXT_Q_ONLINE = torch.tensor([[3.0, 1.0, 50.0], [0.0, 2.0, 1.0]])
VALID = torch.tensor([[True, True, False], [True, True, True]])


def test_masked_max_ignores_padding():
    # row 0: max(1, 5) = 5 (not 100); row 1: max(2, -1, 3) = 3
    assert masked_max(NEXT_Q_TARGET, VALID).tolist() == [5.0, 3.0]


def test_q_target_vanilla_takes_max_over_valid_target_values():
    returns = torch.tensor([0.5, 1.0])
    discounts = torch.tensor([0.9, 0.25])
    # row 0: 0.5 + 0.9 * max(1, 5)      = 0.5 + 4.5  = 5.0   (the masked 100 is ignored)
    # row 1: 1.0 + 0.25 * max(2, -1, 3) = 1.0 + 0.75 = 1.75
    targets = q_target(NEXT_Q_TARGET, VALID, returns, discounts)
    torch.testing.assert_close(targets, torch.tensor([5.0, 1.75]))


def test_q_target_double_dqn_selects_online_evaluates_target():
    returns = torch.tensor([0.5, 1.0])
    discounts = torch.tensor([0.9, 0.5])
    # row 0: online argmax over valid {3, 1} is column 0 (column 2's 50 is masked);
    #        target value at column 0 is 1 -> 0.5 + 0.9 * 1 = 1.4
    # row 1: online argmax over {0, 2, 1} is column 1; target there is -1 -> 1 - 0.5 = 0.5
    targets = q_target(NEXT_Q_TARGET, VALID, returns, discounts, NEXT_Q_ONLINE)
    torch.testing.assert_close(targets, torch.tensor([1.4, 0.5]))
    # the vanilla target differs (5.0, 1.0 + 0.5 * 3 = 2.5): double DQN really changed a*
    vanilla = q_target(NEXT_Q_TARGET, VALID, returns, discounts)
    torch.testing.assert_close(vanilla, torch.tensor([5.0, 2.5]))


def test_q_target_terminal_does_not_bootstrap_truncated_does():
    gamma = 0.9
    next_q = torch.tensor([[10.0, 20.0], [10.0, 20.0]])
    valid = torch.ones(2, 2, dtype=torch.bool)
    returns = torch.tensor([1.0, 1.0])
    # row 0 terminated after 2 steps: discount 0 -> target is the return alone, 1.0
    # row 1 truncated after 2 steps: discount gamma^2 = 0.81 -> 1 + 0.81 * 20 = 17.2
    discounts = torch.tensor([0.0, gamma**2])
    targets = q_target(next_q, valid, returns, discounts)
    torch.testing.assert_close(targets, torch.tensor([1.0, 17.2]))


def test_q_target_has_no_gradient():
    next_q = NEXT_Q_TARGET.clone().requires_grad_(True)
    targets = q_target(next_q, VALID, torch.zeros(2), torch.ones(2), next_q)
    assert not targets.requires_grad


def test_td_loss_huber_quadratic_and_linear_regimes():
    q = torch.tensor([[1.0, 2.0], [0.0, 3.0], [4.0, -2.0]])
    actions = torch.tensor([1, 0, 1])
    targets = torch.tensor([2.5, 3.0, -1.0])
    # row 0: Q(a=1) = 2, d = 0.5 (quadratic): 0.5 * 0.5^2 = 0.125
    # row 1: Q(a=0) = 0, d = 3   (linear):    3 - 0.5      = 2.5
    # row 2: Q(a=1) = -2, d = 1  (boundary):  0.5 * 1^2    = 0.5 = 1 - 0.5
    losses = td_loss(q, actions, targets)
    torch.testing.assert_close(losses, torch.tensor([0.125, 2.5, 0.5]))


def test_td_loss_gradient_is_clipped_to_one_in_linear_regime():
    q = torch.tensor([[0.0, 10.0], [0.0, 0.3]], requires_grad=True)
    losses = td_loss(q, torch.tensor([1, 1]), torch.tensor([0.0, 0.0]))
    losses.sum().backward()
    # d/dq of Huber: sign(d) for |d| >= 1, d for |d| < 1; untaken actions get nothing
    torch.testing.assert_close(q.grad, torch.tensor([[0.0, 1.0], [0.0, 0.3]]))


def test_weighted_sum_normalises_weights():
    losses = torch.tensor([1.0, 3.0])
    # weights (2, 6) -> (0.25, 0.75): 0.25 * 1 + 0.75 * 3 = 2.5
    torch.testing.assert_close(weighted_sum(losses, torch.tensor([2.0, 6.0])), torch.tensor(2.5))
    # scaling all weights changes nothing
    torch.testing.assert_close(weighted_sum(losses, torch.tensor([1.0, 3.0])), torch.tensor(2.5))
    # equal weights are the plain mean: (1 + 3) / 2 = 2
    torch.testing.assert_close(weighted_sum(losses, torch.tensor([5.0, 5.0])), torch.tensor(2.0))
    # a zero weight drops the task: all weight on task 0 -> 1
    torch.testing.assert_close(weighted_sum(losses, torch.tensor([1.0, 0.0])), torch.tensor(1.0))


@pytest.mark.parametrize("seed", range(5))
def test_masked_argmax_never_returns_masked_column(seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(256, 6, generator=gen)
    valid = torch.rand(256, 6, generator=gen) < 0.5
    valid[torch.arange(256), torch.randint(0, 6, (256,), generator=gen)] = True  # >= 1 valid
    q[~valid] += 1000.0  # masked columns always hold the largest values
    best = masked_argmax(q, valid)
    assert valid[torch.arange(256), best].all()
    # and it is the best valid column
    expected = torch.tensor(
        [
            max((v, a) for a, v in enumerate(row.tolist()) if ok[a])[1]
            for row, ok in zip(q, valid, strict=True)
        ]
    )
    assert torch.equal(best, expected)
