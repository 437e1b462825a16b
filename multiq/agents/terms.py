"""Extra loss terms beside the per-task TD losses, as pure functions plus their term objects.

Two kinds of term (`TERMS` builds each by the name a phase gives it, ``{"kind": ...}``):
- *task terms* (`task_losses`) add to the per-task losses L_t of the tasks they cover, before
  the balancer combines them: `distill` adds `weight * KL(softmax(Q_teacher / tau) ||
  softmax(Q_student / tau))` on the task's rows (Rusu et al. 2016, "Policy distillation");
  `ewc` adds online EWC's penalty (`multiq.agents.ewc`).
- *parameter terms* (`penalty`) add a scalar to the combined loss after the balancer, so that
  the loss gains exactly that scalar whatever the task weights alpha and the balancer:
  `l2_init` adds L2-SP's `beta / 2 * sum_i ||theta_i - theta_i^0||^2` (Li et al. 2018,
  "Explicit inductive bias for transfer learning with convolutional networks"), which pulls
  fine-tuned weights towards the source's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from multiq.agents.ewc import EwcTerm
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


def l2_sp(
    params: Mapping[str, torch.Tensor], anchors: Mapping[str, torch.Tensor], beta: float = 1.0
) -> torch.Tensor:
    """L2-SP: `beta / 2 * sum_i ||params_i - anchors_i||^2` over the anchored names.

    Its gradient is `beta * (params_i - anchors_i)`.

    Args:
        params: name -> the current parameter (attached). An anchored name missing here adds
            nothing; a parameter without an anchor adds nothing.
        anchors: name -> the weights to pull towards (detached), on the parameters' device.
        beta: the weight, >= 0.

    Returns:
        a scalar attached to the parameters (0 when nothing is covered).

    Raises:
        ValueError: a parameter's shape differs from its anchor's.
    """
    terms = []
    for name, anchor in anchors.items():
        param = params.get(name)
        if param is None:
            continue
        if param.shape != anchor.shape:
            raise ValueError(
                f"parameter {name!r} has shape {tuple(param.shape)}, its L2-SP anchor "
                f"{tuple(anchor.shape)}"
            )
        terms.append((param - anchor).square().sum())
    if not terms:
        device = next(iter(params.values())).device if params else None
        return torch.zeros((), device=device)
    return 0.5 * beta * torch.stack(terms).sum()


class AnchorState:
    """The weights `l2_init` pulls towards, keyed by parameter name (as in
    `online.named_parameters()`); empty until `anchor` is called. It goes into the learner's
    checkpoints as plain tensors (`state_dict`), so a resumed run keeps the same anchors."""

    def __init__(self) -> None:
        self.anchors: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.anchors)

    def anchor(self, params: Mapping[str, torch.Tensor], names: Iterable[str]) -> None:
        """Replaces the anchors by detached copies of the named parameters as they are now.

        Raises:
            ValueError: a name that `params` does not hold.
        """
        names = list(dict.fromkeys(names))
        unknown = sorted(set(names) - set(params))
        if unknown:
            raise ValueError(f"no parameters named {unknown} to anchor")
        self.anchors = {n: params[n].detach().clone() for n in names}

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"anchors": {name: theta^0}}``."""
        return {"anchors": dict(self.anchors)}

    def load_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        self.anchors = {n: t.detach() for n, t in state.get("anchors", {}).items()}


@dataclass
class L2InitTerm:
    """L2-SP as a parameter term: the loss gains `penalty()` = `l2_sp(trainable, anchors,
    weight)` once per update, added after the balancer (so neither the task weights alpha nor
    a balancer such as uncertainty weighting or PCGrad rescales or projects it), and its
    gradient `weight * (theta - theta^0)` joins the balanced gradient before clipping.

    Frozen parameters (`requires_grad` False) are skipped: they cannot move.

    Attributes:
        state: the anchors theta^0.
        params: the current named parameters, or a callable returning them on each call.
        weight: beta.
    """

    state: AnchorState
    params: Mapping[str, torch.Tensor] | Callable[[], Mapping[str, torch.Tensor]]
    weight: float = 1.0

    def penalty(self) -> torch.Tensor:
        """The scalar `beta / 2 * sum ||theta - theta^0||^2` over anchored trainable tensors."""
        named = self.params() if callable(self.params) else self.params
        trainable = {n: p for n, p in named.items() if p.requires_grad}
        return l2_sp(trainable, self.state.anchors, self.weight)


Term = DistillTerm | EwcTerm | L2InitTerm


def _distill(spec: Mapping[str, Any], teachers: Mapping[str, Policy], learner: Any) -> Term:
    by_task = {task: teachers[teacher] for task, teacher in spec["teachers"].items()}
    return DistillTerm(by_task, spec.get("weight", 1.0), spec.get("temperature", 1.0))


def _ewc(spec: Mapping[str, Any], teachers: Mapping[str, Policy], learner: Any) -> Term:
    return EwcTerm(
        learner.ewc, lambda: dict(learner.online.named_parameters()), spec.get("weight", 1.0)
    )


def _l2_init(spec: Mapping[str, Any], teachers: Mapping[str, Policy], learner: Any) -> Term:
    return L2InitTerm(
        learner.l2_init, lambda: dict(learner.online.named_parameters()), spec.get("weight", 1.0)
    )


TermBuilder = Callable[[Mapping[str, Any], Mapping[str, Policy], Any], Term]
# a phase's term ``{"kind": name, ...}`` -> (spec, teachers by id, learner) -> the term object
TERMS: dict[str, TermBuilder] = {"distill": _distill, "ewc": _ewc, "l2_init": _l2_init}
