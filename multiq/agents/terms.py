"""Extra loss terms beside the per-task TD losses, as pure functions plus their term objects.

A term adds to the per-task losses L_t of the tasks it covers, before the balancer combines them:
`distill` adds `weight * KL(softmax(Q_teacher / tau) || softmax(Q_student / tau))` on the task's
rows (Rusu et al. 2016, "Policy distillation").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from multiq.agents.losses import NEG_INF
from multiq.agents.policy import Policy


def distill_kl(
    student_q: torch.Tensor, teacher_q: torch.Tensor, valid: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-row KL divergence from the teacher's softened policy to the student's.

    Args:
        student_q: [B, A] student Q-values (attached).
        teacher_q: [B, A] teacher Q-values.
        valid: [B, A] bool, True where the action exists.
        temperature: tau > 0 of softmax(Q / tau), for both.

    Returns:
        [B] `sum_a p_T(a) (log p_T(a) - log p_S(a))` over valid actions.
    """
    teacher_q = teacher_q.detach()  # the teacher is a target, as in a TD target
    log_p_student = (student_q / temperature).masked_fill(~valid, NEG_INF).log_softmax(1)
    log_p_teacher = (teacher_q / temperature).masked_fill(~valid, NEG_INF).log_softmax(1)
    # missing actions have probability 0 under both: zero their log-probabilities, so that no
    # inf - inf (NaN) enters the sum or its gradient
    log_p_student = log_p_student.masked_fill(~valid, 0.0)
    log_p_teacher = log_p_teacher.masked_fill(~valid, 0.0)
    p_teacher = log_p_teacher.exp().masked_fill(~valid, 0.0)
    return (p_teacher * (log_p_teacher - log_p_student)).sum(1)


@dataclass
class DistillTerm:
    """Distillation from frozen teachers on the rows of the tasks they know.

    Attributes:
        teachers: task name -> the teacher policy for that task.
        weight: the term's weight in each covered task's loss.
        temperature: tau of both softmaxes.
    """

    teachers: Mapping[str, Policy]
    weight: float = 1.0
    temperature: float = 1.0

    def task_losses(
        self,
        student_q: torch.Tensor,
        obs: Mapping[str, torch.Tensor],
        valid: torch.Tensor,
        names: Sequence[str],
    ) -> torch.Tensor:
        """[T_b] the term's share of each batch task's loss (0 for tasks without a teacher).

        Args:
            student_q: [B, A] the student's Q-values (unnormalised, attached), rows by task.
            obs: the batch's observations, task name -> [B_t, ...].
            valid: [B, A] bool action mask of each row.
            names: the batch's tasks, in row order.
        """
        sizes = [x.shape[0] for x in obs.values()]
        rows = student_q.split(sizes)
        masks = valid.split(sizes)
        losses = []
        for name, q, mask in zip(names, rows, masks, strict=True):
            teacher = self.teachers.get(name)
            if teacher is None or q.shape[0] == 0:
                losses.append(student_q.new_zeros(()))
                continue
            target = teacher.q_values({name: obs[name]}).clone()  # a normal tensor again
            width = target.shape[1]
            kl = distill_kl(q[:, :width], target, mask[:, :width], self.temperature)
            losses.append(kl.mean())
        return self.weight * torch.stack(losses)
