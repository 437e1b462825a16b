"""TD losses as small pure functions of tensors (rlax style), testable by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEG_INF = float("-inf")


def masked_max(q: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max over real actions only.

    Args:
        q: [B, A] Q-values.
        valid: [B, A] bool, True where the action exists.

    Returns:
        [B] the largest valid Q-value of each row.
    """
    return q.masked_fill(~valid, NEG_INF).max(dim=1).values


def masked_argmax(q: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[B] long: index of the largest valid Q-value of each row (q: [B, A], valid: [B, A])."""
    return q.masked_fill(~valid, NEG_INF).argmax(dim=1)


def q_target(
    next_q_target: torch.Tensor,
    valid: torch.Tensor,
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """n-step (double) Q-learning target `G + discount * Q_target(s', a*)`.

    Args:
        next_q_target: [B, A] target-network Q-values at the bootstrap state s_{t+k}.
        valid: [B, A] bool action mask of each row's task.
        returns: [B] discounted sum of the k <= n rewards, `sum_j gamma^j r_{t+j}`.
        discounts: [B] `gamma^k`, or 0 when the episode terminated within the k steps. A
            truncated episode keeps `gamma^k`: time limits are not terminal, so it bootstraps.
        next_q_online: [B, A] online-network Q-values at s_{t+k}; when given, a* is chosen by
            the online net (double DQN, van Hasselt et al. 2016), else by the target net.

    Returns:
        [B] targets, with no gradient.
    """
    with torch.no_grad():
        if next_q_online is None:
            bootstrap = masked_max(next_q_target, valid)
        else:
            best = masked_argmax(next_q_online, valid)
            bootstrap = next_q_target.gather(1, best[:, None]).squeeze(1)
        return returns + discounts * bootstrap


def td_loss(q: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample Huber loss between Q(s, a) and the targets.

    Args:
        q: [B, A] online Q-values at s_t.
        actions: [B] long actions taken.
        targets: [B] TD targets.

    Returns:
        [B] Huber (smooth L1, delta 1) losses.
    """
    q_taken = q.gather(1, actions[:, None]).squeeze(1)
    return F.smooth_l1_loss(q_taken, targets, reduction="none")


def weighted_sum(task_losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scalar `sum_t w_t L_t` with weights normalised to sum to one (task_losses, weights: [T])."""
    return (task_losses * (weights / weights.sum())).sum()
