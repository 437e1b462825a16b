"""Online elastic weight consolidation (EWC) for DQN: Fisher, running state, penalty and term.

Kirkpatrick et al. 2017 ("Overcoming catastrophic forgetting in neural networks") keep each
parameter near the value theta* that a finished task left it at, in proportion to how much that
task's policy depends on it: the diagonal F of the policy's Fisher information. Online EWC
(Schwarz et al. 2018, "Progress & Compress") keeps one running Fisher and one anchor instead of
one pair per task. After each task: `F* <- decay * F* + F_new` and `theta* <- theta`. Training
then adds

    lambda * (1/2) sum_i F*_i (theta_i - theta*_i)^2.

A Q-network has no policy distribution of its own. Here it is the softened greedy policy
`pi(a|s) = softmax(Q(s) / temperature)` over the task's own actions, the same policy that
distillation (`multiq.agents.terms`) matches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from multiq.errors import TaskError
from multiq.nets.base import MultiTaskQNet

GRAD_ELEMENTS = 2**25  # the most per-sample gradient entries one chunk holds (128 MiB float32)


def fisher_diagonal(
    net: MultiTaskQNet,
    batches: Iterable[torch.Tensor | np.ndarray],
    task_name: str,
    temperature: float = 1.0,
    params: Iterable[str] | None = None,
    *,
    chunk_rows: int = 8,
) -> dict[str, torch.Tensor]:
    """The diagonal Fisher of a task's softened policy, averaged over the given states.

    `F_i = E_s [sum_a pi(a|s) (d log pi(a|s) / d theta_i)^2]`, with the sum over the task's
    actions taken exactly (not sampled) and `E_s` the mean over every row of `batches`.

    How: `d log pi_a / d Q_b = (delta_ab - pi_b) / tau`, so with `J = dQ(s)/dtheta` [A, P]
    and `u_a = sqrt(pi_a) (e_a - pi) / tau`, a state's term is `sum_a (u_a^T J)^2`: the
    squares of A vector-Jacobian products. For a chunk of C states, one forward and one
    batched backward (`torch.autograd.grad(..., is_grads_batched=True)`) of the C*A cotangents
    `u_{s,a}`, each placed on its own row s, yield every per-state, per-action gradient
    exactly; their squares are summed.

    Cost per chunk: one forward of C rows and a vmapped backward of C*A cotangents through C
    rows (about C*A*C row-backwards, since the zero rows are computed too; on a CPU the wall
    time is call overhead: 2-5 ms a state for a 138k-parameter, 6-action MinAtar net). Memory: C*A*P
    gradient entries (P: the chosen parameters' total size). C is at most `chunk_rows`, at
    most `GRAD_ELEMENTS / (A P)` and at least 1.

    `torch.func.functional_call` is not used because it swaps the parameters on the modules,
    and a module that keeps its own references to its parameters (`QHead`) would ignore the
    swapped-in ones. The net runs as an eval-mode deep copy in which only the chosen
    parameters require grad. The live net's mode, flags, `.grad` and forward hooks are left
    untouched, and a routed net draws no Gumbel noise.

    Under PopArt the net outputs normalised values `(Q - mu_t) / sigma_t`. Passing
    `temperature = tau / sigma_t` gives the policy of the unnormalised Q.

    Args:
        net: the Q-network.
        batches: observation tensors (or arrays) [B, *obs_shape] of `task_name`, e.g. replay
            samples.
        task_name: the task whose policy it is; its first `num_actions` columns are its actions.
        temperature: tau > 0.
        params: names (as in `net.named_parameters()`) of the parameters to cover (default:
            every parameter that requires grad). A parameter the task does not reach gets 0.
        chunk_rows: the most states per batched backward.

    Returns:
        parameter name -> detached F with the parameter's shape.

    Raises:
        TaskError: the net holds no task `task_name`.
        ValueError: a bad temperature or chunk size, an unknown parameter name, or no states.
    """
    if temperature <= 0 or chunk_rows < 1:
        raise ValueError(
            f"need temperature > 0 and chunk_rows >= 1; got {temperature}, {chunk_rows}"
        )
    if task_name not in net.specs:
        raise TaskError(f"the network holds no task {task_name!r}; it holds {list(net.specs)}")
    live = dict(net.named_parameters())
    names = [n for n, p in live.items() if p.requires_grad] if params is None else list(params)
    unknown = sorted(set(names) - set(live))
    if unknown:
        raise ValueError(f"no parameters named {unknown} in the network")
    names = list(dict.fromkeys(names))
    if not names:
        return {}

    probe = copy.deepcopy(net).eval().requires_grad_(False)
    probe_params = dict(probe.named_parameters())
    chosen = [probe_params[n].requires_grad_(True) for n in names]
    num_actions = net.specs[task_name].num_actions
    per_row = num_actions * sum(p.numel() for p in chosen)
    rows = max(1, min(chunk_rows, GRAD_ELEMENTS // per_row))
    sums = [torch.zeros_like(p) for p in chosen]
    count = 0
    for batch in batches:
        for x in torch.as_tensor(batch, device=probe.device).split(rows):
            q = probe({task_name: x})[:, :num_actions]
            _add_squared_scores(sums, q, chosen, temperature)
            count += x.shape[0]
    if count == 0:
        raise ValueError(f"no states of task {task_name!r} to estimate the Fisher on")
    return {name: total / count for name, total in zip(names, sums, strict=True)}


def _add_squared_scores(
    sums: Sequence[torch.Tensor],
    q: torch.Tensor,
    params: Sequence[torch.Tensor],
    temperature: float,
) -> None:
    """Adds `sum_s sum_a pi(a|s) (d log pi(a|s) / d theta)^2` over q's rows to `sums`.

    Args:
        sums: per parameter, a detached running sum with its shape (added to in place).
        q: [C, A] Q-values of C states over the task's actions, attached to `params`.
        params: the parameters to differentiate.
        temperature: tau of the softmax.
    """
    rows, actions = q.shape
    pi = (q.detach() / temperature).softmax(1)  # [C, A]
    eye = torch.eye(actions, dtype=q.dtype, device=q.device)
    # u[s, a] = sqrt(pi_sa) (e_a - pi_s) / tau, the cotangent whose VJP, squared, is pi_a's term
    u = pi.sqrt()[:, :, None] * (eye - pi[:, None, :]) / temperature  # [C, A, A]
    cotangents = q.new_zeros(rows, actions, rows, actions)
    index = torch.arange(rows, device=q.device)
    cotangents[index, :, index, :] = u  # (s, a) acts on row s only: a per-state gradient
    grads = torch.autograd.grad(
        q,
        list(params),
        cotangents.view(rows * actions, rows, actions),
        is_grads_batched=True,
        allow_unused=True,
    )
    for total, grad in zip(sums, grads, strict=True):
        if grad is not None:  # None: q does not depend on the parameter (another task's head)
            total += grad.square().sum(0)


class EwcState:
    """The running Fisher F* and the anchors theta* of online EWC, keyed by parameter name.

    It starts empty. `consolidate` folds in one more task. The state goes into checkpoints as
    plain tensors (`state_dict`).
    """

    def __init__(self) -> None:
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchors: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.fisher)

    def consolidate(
        self,
        fisher: Mapping[str, torch.Tensor],
        anchors: Mapping[str, torch.Tensor],
        decay: float,
    ) -> None:
        """`F* <- decay * F* + F_new` and `theta* <- anchors`, per parameter name.

        A parameter held before but missing from `fisher` has `F_new = 0`: its F* decays, and
        it keeps its old anchor unless `anchors` gives one. Inputs are copied, detached.

        Args:
            fisher: name -> F_new (e.g. `fisher_diagonal`).
            anchors: name -> the weights to hold on to now (every name of `fisher`, at least).
            decay: gamma in [0, 1]: 1 sums the Fishers, 0 keeps only the newest.

        Raises:
            ValueError: decay out of range, an anchor missing, or mismatched shapes.
        """
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1]; got {decay}")
        missing = sorted(set(fisher) - set(anchors))
        if missing:
            raise ValueError(f"no anchors for the parameters {missing}")
        new_fisher, new_anchors = {}, {}
        for name in dict.fromkeys([*self.fisher, *fisher]):
            old, new = self.fisher.get(name), fisher.get(name)
            anchor = anchors[name] if name in anchors else self.anchors[name]
            shapes = {t.shape for t in (old, new, anchor) if t is not None}
            if len(shapes) > 1:
                raise ValueError(f"parameter {name!r}: Fisher and anchor shapes differ")
            if old is not None and new is not None:
                new_fisher[name] = decay * old + new.detach()
            elif old is not None:
                new_fisher[name] = decay * old
            elif new is not None:
                new_fisher[name] = new.detach().clone()
            new_anchors[name] = anchor.detach().clone()
        self.fisher, self.anchors = new_fisher, new_anchors

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"fisher": {name: F*}, "anchors": {name: theta*}}``, plain tensors."""
        return {"fisher": dict(self.fisher), "anchors": dict(self.anchors)}

    def load_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Restores a `state_dict` (e.g. read with `torch.load(weights_only=True)`).

        Raises:
            ValueError: the two parts do not name the same parameters with the same shapes.
        """
        fisher, anchors = dict(state["fisher"]), dict(state["anchors"])
        if fisher.keys() != anchors.keys():
            raise ValueError("an EWC state needs one anchor per Fisher entry")
        for name, value in fisher.items():
            if anchors[name].shape != value.shape:
                raise ValueError(f"parameter {name!r}: Fisher and anchor shapes differ")
        self.fisher = {n: t.detach() for n, t in fisher.items()}
        self.anchors = {n: t.detach() for n, t in anchors.items()}


def ewc_penalty(named_params: Mapping[str, torch.Tensor], state: EwcState) -> torch.Tensor:
    """`(1/2) sum_i F*_i (theta_i - theta*_i)^2` over the state's parameters.

    Args:
        named_params: name -> the current parameter (attached). A name of the state that is
            missing here is skipped.
        state: F* and theta*, on the parameters' device.

    Returns:
        a scalar, attached to the parameters (0 when nothing is covered).

    Raises:
        ValueError: a parameter's shape differs from its stored Fisher's.
    """
    terms = []
    for name, fisher in state.fisher.items():
        param = named_params.get(name)
        if param is None:
            continue
        if param.shape != fisher.shape:
            raise ValueError(
                f"parameter {name!r} has shape {tuple(param.shape)}, its EWC Fisher "
                f"{tuple(fisher.shape)}"
            )
        terms.append((fisher * (param - state.anchors[name]).square()).sum())
    if not terms:
        device = next(iter(named_params.values())).device if named_params else None
        return torch.zeros((), device=device)
    return 0.5 * torch.stack(terms).sum()


@dataclass
class EwcTerm:
    """Online EWC as a loss term: `weight * ewc_penalty` in every batch task's loss.

    The same value goes into each of the T_b entries. The balancer combines them as
    `sum_t alpha_t L_t` with `sum_t alpha_t = 1`, so the loss gains exactly
    `weight * penalty`: each task loss carries the whole penalty, and the weights average it
    back to one copy. With weights that sum to s != 1, the loss gains `s * weight * penalty`.
    Balancers that do not take a convex combination of the task losses, such as uncertainty
    weighting, scale the term by their own factors. Gradient surgery (PCGrad) sees the
    penalty's gradient inside every task's gradient.

    Frozen parameters (`requires_grad` False) are skipped: they cannot move, and their constant
    share would only shift the logged loss. Parameters the state does not cover add nothing.

    Attributes:
        state: F* and theta*.
        params: the current named parameters, as a mapping or as a callable that returns one
            on each call (e.g. `lambda: dict(net.named_parameters())`, which stays right when
            the net's parameter objects are replaced).
        weight: lambda.
    """

    state: EwcState
    params: Mapping[str, torch.Tensor] | Callable[[], Mapping[str, torch.Tensor]]
    weight: float = 1.0

    def task_losses(
        self,
        student_q: torch.Tensor,
        obs: Mapping[str, torch.Tensor],
        valid: torch.Tensor,
        names: Sequence[str],
    ) -> torch.Tensor:
        """[T_b] `weight * penalty` in every entry (attached; zeros while the state is empty).

        Args:
            student_q: [B, A] the online Q-values (used only for the device).
            obs: the batch's observations, task name -> [B_t, ...] (unused).
            valid: [B, A] bool action mask (unused).
            names: the batch's tasks, in row order.
        """
        if not len(self.state):
            return student_q.new_zeros(len(names))
        named = self.params() if callable(self.params) else self.params
        trainable = {n: p for n, p in named.items() if p.requires_grad}
        penalty = ewc_penalty(trainable, self.state).to(student_q.device)
        return (self.weight * penalty).repeat(len(names))
