"""The learner: online and target networks, optimiser, balancer, PopArt and loss terms.

It never steps an environment: it is handed replay samples keyed by task name. What trains is
set per phase (`configure`): which parameter groups are frozen, each group's learning-rate
scale, each task's loss weight, which tasks' TD losses count, and extra loss terms.

Regularisers (Farebrother et al. 2018; Li et al. 2018): `weight_decay` > 0 makes the optimiser
AdamW, decaying the network's weight matrices and convolution kernels (not biases, not the
balancer's own parameters; PopArt has no parameters of its own); `dropout` > 0 is on only in the
online forward of an update (`dropout_active`), never in acting, evaluation or the TD targets;
a phase's ``l2_init`` term pulls trainable weights towards anchors (`AnchorState`, kept in
`Learner.l2_init` and in checkpoints).
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from multiq.agents.ewc import EwcState
from multiq.agents.host_batch import HostBatch
from multiq.agents.losses import q_target, td_loss
from multiq.agents.policy import Policy
from multiq.agents.terms import AnchorState, L2InitTerm, Term
from multiq.config.views import declared
from multiq.errors import ConfigError, NonFiniteError, TaskError
from multiq.mtl import PopArt, build_balancer, shared_params
from multiq.mtl.interference import conflict_stats
from multiq.mtl.reduce import per_task_mean
from multiq.nets import SchemeOptions, build_qnet, dropout_active
from multiq.replay.buffers import NStepSample
from multiq.tasks.spec import TaskSpec


@dataclass
class LearnerSettings(SchemeOptions):
    """Learner hyperparameters (names follow Stable-Baselines3) plus the scheme options: a view
    of the config (`LearnerSettings.from_config(cfg)`), its defaults the keys' declarations."""

    scheme: str = declared("scheme")
    hidden_size: int = declared("hidden_size")
    dueling: bool = declared("dueling")
    learning_rate: float = declared("learning_rate")
    gamma: float = declared("gamma")
    double_q: bool = declared("double_q")
    max_grad_norm: float = declared("max_grad_norm")
    weight_decay: float = declared("weight_decay")
    balancer: str = declared("balancer")
    gradnorm_alpha: float = declared("gradnorm_alpha")
    popart: bool = declared("popart")
    popart_beta: float = declared("popart_beta")


@dataclass
class BatchTensors:
    """A batch on the learner's device: obs and next_obs task name -> [B_t, *obs_shape_t];
    actions [B] int64, returns [B] and discounts [B] float32, rows grouped by task."""

    obs: dict[str, torch.Tensor]
    next_obs: dict[str, torch.Tensor]
    actions: torch.Tensor
    returns: torch.Tensor
    discounts: torch.Tensor


@dataclass
class Training:
    """What trains in a phase.

    Attributes:
        task_weights: alpha of each task's loss, used as given by the balancer.
        td_tasks: tasks whose TD loss counts (None: all).
        frozen: glob patterns of parameter groups that do not train (e.g. ``trunk``).
        lr_scales: glob pattern -> learning-rate multiplier (the first match counts).
        terms: extra loss terms.
    """

    task_weights: Mapping[str, float] = field(default_factory=dict)
    td_tasks: Sequence[str] | None = None
    frozen: Sequence[str] = ()
    lr_scales: Mapping[str, float] = field(default_factory=dict)
    terms: Sequence[Term] = ()

    def trains(self, group: str) -> bool:
        return not any(fnmatch.fnmatchcase(group, p) for p in self.frozen)

    def lr_scale(self, group: str) -> float:
        for pattern, scale in self.lr_scales.items():
            if fnmatch.fnmatchcase(group, pattern):
                return float(scale)
        return 1.0


def make_adam(
    params, learning_rate: float, device: torch.device, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam with the fused kernel where the device has one: one call updates every tensor.

    With `weight_decay` > 0, AdamW (Loshchilov & Hutter 2019): each step first shrinks a
    parameter, `p <- p * (1 - lr * weight_decay)`, then takes Adam's step; a param group's own
    ``weight_decay`` entry overrides it (0: that group is not decayed). 0: plain Adam.
    """
    fused = device.type in ("cpu", "cuda")
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=learning_rate, fused=fused)


def decay_groups(
    params: Sequence[nn.Parameter], lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW param groups of one learning rate: tensors of >= 2 dimensions (weight matrices,
    convolution kernels, the routed scheme's [L, K] routing logits) decayed by `weight_decay`,
    vectors (biases, task embeddings) not, the usual split; weight_decay 0: one group, as
    plain Adam has always taken it."""
    if weight_decay <= 0:
        return [{"params": list(params), "lr": lr}]
    weights = [p for p in params if p.dim() >= 2]
    vectors = [p for p in params if p.dim() < 2]
    groups = [{"params": weights, "lr": lr, "weight_decay": weight_decay}]
    groups.append({"params": vectors, "lr": lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


class Learner:
    """Double DQN with n-step targets, Huber loss and per-task losses combined by a balancer.

    The balancer (`settings.balancer`, see `multiq.mtl.BALANCERS`) turns the [T_b] task losses
    into gradients; with `settings.popart` the network predicts PopArt-normalised values and the
    policy unnormalises them.

    Args:
        tasks: the first tasks; more join with `add_task`.
        settings: hyperparameters.
        device: torch device.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        settings: LearnerSettings,
        device: str | torch.device = "cpu",
    ):
        self.settings = settings
        self.device = torch.device(device)
        self._host = HostBatch(self.device)
        self.online = build_qnet(
            settings.scheme, tasks, settings.hidden_size, settings.dueling, settings
        ).to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.balancer = build_balancer(settings.balancer, settings.gradnorm_alpha)
        nets = [self.online, self.target]
        self.popart = PopArt(nets, settings.popart_beta) if settings.popart else None
        for spec in tasks:
            self._add_task_state(spec.name)
        self.training = Training(task_weights=equal_weights(self.specs))
        self.policy = Policy(self.online, self.popart)
        self.check_finite = True  # a non-finite loss or gradient raises instead of stepping
        self.ewc = EwcState()  # online EWC's Fisher and anchors (continual method ewc)
        self.l2_init = AnchorState()  # the weights an l2_init term pulls towards (transfer)
        self.configure(self.training)

    @property
    def specs(self) -> dict[str, TaskSpec]:
        """Task name -> spec of every task the learner holds."""
        return self.online.specs

    # --- tasks and groups --------------------------------------------------------------------

    def add_task(
        self, spec: TaskSpec, weight: float | None = None, head_init: str = "fresh"
    ) -> None:
        """Adds a task to both networks, the balancer and PopArt; old tasks' Q-values stay.

        The new task's target-network modules start as copies of its online ones; its loss
        weight is `weight` (default: the mean of the others'). `head_init` ``mean`` starts its
        head from the held heads (`MultiTaskQNet.inherit_head`: their mean where of the same
        shape; progressive: the head of the column the new one copies); ``fresh``: random.
        """
        before = set(self.online.state_dict())
        held = list(self.specs)
        self.online.add_task(spec)
        self.target.add_task(spec)
        if head_init == "mean":
            self.online.inherit_head(spec.name, held)
        new = {k: v for k, v in self.online.state_dict().items() if k not in before}
        self.target.load_state_dict(new, strict=False)
        self.target.requires_grad_(False)
        self._add_task_state(spec.name)
        weights = dict(self.training.task_weights)
        weights[spec.name] = (
            weight if weight is not None else float(np.mean(list(weights.values())))
        )
        self.configure(Training(**{**vars(self.training), "task_weights": weights}))

    def replace_task_env(self, spec: TaskSpec) -> None:
        """Points a held task at another env with the same spaces; its weights stay.

        Raises:
            TaskError: no task of that name, or its spaces differ.
        """
        held = self.specs.get(spec.name)
        if held is None:
            raise TaskError(f"no task named {spec.name!r} to give a new env")
        same = (held.obs_shape, held.obs_dtype, held.num_actions) == (
            spec.obs_shape, spec.obs_dtype, spec.num_actions,
        )  # fmt: skip
        if not same:
            raise TaskError(
                f"task {spec.name!r}: the new env has observations {spec.obs_shape} "
                f"{spec.obs_dtype} and {spec.num_actions} actions, the held task "
                f"{held.obs_shape} {held.obs_dtype} and {held.num_actions}; give it another name"
            )
        self.online.specs[spec.name] = spec
        self.target.specs[spec.name] = spec

    def _add_task_state(self, name: str) -> None:
        self.balancer.add_task(name)
        self.balancer.to(self.device)
        if self.popart is not None:
            self.popart.add_task(name, self.device)

    def configure(self, training: Training) -> None:
        """Applies a phase's training settings: frozen groups, learning rates, weights, terms."""
        unknown = sorted(set(training.task_weights) - set(self.specs))
        if unknown:
            raise ConfigError(f"loss weights name tasks the agent does not hold: {unknown}")
        self.training = training
        by_scale: dict[float, list[nn.Parameter]] = {}
        for group, params in self.online.param_groups().items():
            trains = training.trains(group)
            for p in params:
                p.requires_grad_(trains)
                p.grad = None
            if trains:
                by_scale.setdefault(training.lr_scale(group), []).extend(params)
        trainable = [p for params in by_scale.values() for p in params]
        shared = shared_params(self.online, list(self.specs.values()), trainable)
        self.balancer.set_params(trainable, shared, self.online)
        self.balancer.set_task_weights(training.task_weights)
        self._build_optimizer(by_scale)
        self._td_masks: dict[tuple[str, ...], torch.Tensor] = {}

    def _build_optimizer(self, by_scale: dict[float, list[nn.Parameter]]) -> None:
        """A new Adam (AdamW with `weight_decay`) over the trainable groups that keeps every
        parameter's moments. The balancer's own parameters are never decayed."""
        lr, decay = self.settings.learning_rate, self.settings.weight_decay
        groups = [g for scale, ps in by_scale.items() if ps
                  for g in decay_groups(ps, lr * scale, decay)]  # fmt: skip
        if own := list(self.balancer.parameters()):
            groups.append({"params": own, "lr": lr, **({"weight_decay": 0.0} if decay else {})})
        if not groups:
            raise ConfigError("every parameter group is frozen: nothing would train")
        optimizer = make_adam(groups, lr, self.device, decay)
        previous: torch.optim.Optimizer | None = getattr(self, "optimizer", None)  # __init__: None
        if previous is not None:
            optimizer.state.update(previous.state)
        self.optimizer = optimizer

    def trainable_groups(self) -> list[str]:
        return [g for g in self.online.param_groups() if self.training.trains(g)]

    # --- the update ----------------------------------------------------------------------------

    def _batch_tensors(self, batch: Mapping[str, NStepSample]) -> BatchTensors:
        """The batch on the learner's device, in one host-to-device copy (`HostBatch`)."""
        samples, count = list(batch.values()), len(batch)
        arrays = [s.obs for s in samples] + [s.next_obs for s in samples]
        for column in ("actions", "returns", "discounts"):
            arrays.append(np.concatenate([getattr(s, column) for s in samples]))
        tensors = self._host.to_device(arrays)
        return BatchTensors(
            obs=dict(zip(batch, tensors[:count], strict=True)),
            next_obs=dict(zip(batch, tensors[count : 2 * count], strict=True)),
            actions=tensors[-3],
            returns=tensors[-2],
            discounts=tensors[-1],
        )

    def _td_mask(self, names: Sequence[str]) -> torch.Tensor:
        key = tuple(names)
        if key not in self._td_masks:
            td = self.training.td_tasks
            values = [1.0 if td is None or n in td else 0.0 for n in names]
            self._td_masks[key] = torch.tensor(values, device=self.device)
        return self._td_masks[key]

    def update(
        self, batch: Mapping[str, NStepSample], probe: bool = False
    ) -> dict[str, torch.Tensor]:
        """One gradient step on a batch holding every given task's samples.

        Args:
            batch: task name -> its samples (each task >= 1 row); rows keep this order.
            probe: also measure the gradient-conflict map (`multiq.mtl.interference`).

        Returns:
            detached tensors: `loss` (scalar), `task_losses` [T_b], `q_mean` [T_b]
            (unnormalised under PopArt), and the balancer's and PopArt's [T_b] metrics; with
            `probe`, where two or more tasks share trainable parameters, `grad_cos` [T_b, T_b]
            and `grad_share` [T_b] too.

        Raises:
            NonFiniteError: the loss or the gradient norm is NaN or infinite (checked with one
                fused test before the optimiser step, which is then not taken).
        """
        names = list(batch)
        q, actions, task_ids, task_losses = self._losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        conflicts: dict[str, torch.Tensor] = {}
        if probe:
            loss, grads = self.balancer.probed_backward(task_losses, task_ids, names)
            if grads is not None:
                cosines, shares = conflict_stats(grads.detach())
                conflicts = {"grad_cos": cosines, "grad_share": shares}
        else:
            loss = self.balancer.backward(task_losses, task_ids, names)
        penalty = self._penalty()
        if penalty is not None:  # parameter terms: added once, after the balancer
            penalty.backward()
            loss = loss + penalty.detach()
        max_norm = self.settings.max_grad_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(self.balancer.params, max_norm, foreach=True)
        if self.check_finite and not torch.isfinite(loss.detach() + grad_norm):  # one sync
            raise NonFiniteError(nonfinite_message(loss, grad_norm, task_losses, names))
        self.optimizer.step()
        self.balancer.after_step()
        q_taken = self._unnormalise(q.detach(), names, task_ids).gather(1, actions[:, None])
        metrics = self.balancer.metrics()
        if self.popart is not None:
            metrics.update(self.popart.metrics(names))
        q_mean = per_task_mean(q_taken.squeeze(1), task_ids, len(names))
        return {
            "loss": loss, "task_losses": task_losses.detach(), "q_mean": q_mean,
            **metrics, **conflicts,
        }  # fmt: skip

    def _losses(
        self, batch: Mapping[str, NStepSample]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward pass of an update: (q [B, A], actions [B], task_ids [B], task_losses
        [T_b]: each batch task's TD loss, masked by `td_tasks`, plus the extra terms)."""
        names = list(batch)
        tensors = self._batch_tensors(batch)
        obs, actions = tensors.obs, tensors.actions
        task_ids = self.online.task_ids([len(s.actions) for s in batch.values()])
        valid = self.policy.valid_actions(names)[task_ids]
        td_mask = self._td_mask(names)
        targets = self._targets(tensors, names, task_ids, valid)
        q = self._online_forward(obs)
        task_losses = per_task_mean(td_loss(q, actions, targets), task_ids, len(names)) * td_mask
        if self.training.terms:
            q_real = self._unnormalise(q, names, task_ids)
            for term in self.training.terms:
                if not isinstance(term, L2InitTerm):
                    task_losses = task_losses + term.task_losses(q_real, obs, valid, names)
        return q, actions, task_ids, task_losses

    def _online_forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[B, A] the online net's outputs for an update: with dropout on where it has any."""
        if self.settings.dropout <= 0:
            return self.online(obs)
        with dropout_active(self.online):
            return self.online(obs)

    def _penalty(self) -> torch.Tensor | None:
        """The sum of the parameter terms' penalties (None: the phase has no such term)."""
        penalties = [t.penalty() for t in self.training.terms if isinstance(t, L2InitTerm)]
        return torch.stack(penalties).sum() if penalties else None

    def gradient(self, batch: Mapping[str, NStepSample]) -> dict[str, torch.Tensor]:
        """The gradient of the summed task losses of `batch` (plus the parameter terms'
        penalty, e.g. ``l2_init``) at the current weights, without a step (first-order MAML's
        outer gradient); the balancer and the optimiser are not used.

        Returns:
            online parameter name (as in `online.named_parameters()`) -> its gradient (zeros
            for a parameter the batch does not reach).

        Raises:
            NonFiniteError: the loss or the gradient is NaN or infinite.
        """
        params = dict(self.online.named_parameters())
        trained = {n: p for n, p in params.items() if p.requires_grad}
        task_losses = self._losses(batch)[3]
        loss = task_losses.sum()
        penalty = self._penalty()
        if penalty is not None:
            loss = loss + penalty
        grads = torch.autograd.grad(loss, list(trained.values()), allow_unused=True)
        found = {n: g for n, g in zip(trained, grads, strict=True) if g is not None}
        result = {n: found[n].detach() if n in found else torch.zeros_like(p)
                  for n, p in params.items()}  # fmt: skip
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in result.values()]))
        if not torch.isfinite(loss.detach() + norm):
            raise NonFiniteError(nonfinite_message(loss, norm, task_losses, list(batch)))
        return result

    def _targets(
        self, tensors: BatchTensors, names: list[str], task_ids: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """[B] TD targets (PopArt-normalised under PopArt, whose heads move here)."""
        next_obs, returns, discounts = tensors.next_obs, tensors.returns, tensors.discounts
        with torch.no_grad():
            # the online net picks a* (double DQN); an affine map per task leaves argmax alone
            next_online = self.online(next_obs) if self.settings.double_q else None
            next_q = self._unnormalise(self.target(next_obs), names, task_ids)
            targets = q_target(next_q, valid, returns, discounts, next_online)
            if self.popart is not None:
                # rescales both nets' heads before the online forward, which then sees them
                targets = self.popart.update(targets, names, task_ids)
        return targets

    def _unnormalise(
        self, q: torch.Tensor, names: Sequence[str], task_ids: torch.Tensor
    ) -> torch.Tensor:
        return q if self.popart is None else self.popart.unnormalise(q, names, task_ids)

    def set_progress(self, fraction: float) -> None:
        """Tells both networks how far training has come (e.g. for annealed temperatures)."""
        self.online.set_progress(fraction)
        self.target.set_progress(fraction)

    def diagnostics(self) -> dict[str, dict[str, torch.Tensor]]:
        """The online network's per-task diagnostics (e.g. routing weights), for logging."""
        return self.online.diagnostics()

    def nonfinite_parameters(self) -> list[str]:
        """Names of the online network's tensors holding a NaN or infinity (empty: all fine)."""
        with torch.no_grad():
            return [n for n, t in self.online.state_dict().items() if not t.isfinite().all()]

    def sync_target(self, tau: float = 1.0) -> None:
        """Target <- tau * online + (1 - tau) * target (tau = 1: hard copy)."""
        with torch.no_grad():
            online: list[torch.Tensor] = list(self.online.parameters())
            target: list[torch.Tensor] = list(self.target.parameters())
            if tau >= 1.0:
                torch._foreach_copy_(target, online)
            else:
                torch._foreach_lerp_(target, online, tau)

    # --- state -------------------------------------------------------------------------------

    def balance_state_dict(self) -> dict:
        """The balancer's learned values and PopArt's statistics, keyed by task name."""
        state = {"balancer": self.balancer.state_dict()}
        if self.popart is not None:
            state["popart"] = self.popart.state_dict()
        return state

    def load_balance_state_dict(self, state: Mapping) -> None:
        """Loads the entries of `balance_state_dict` for the tasks this learner holds."""
        self.balancer.load_state_dict(state.get("balancer", {}), strict=False)
        if self.popart is not None:
            self.popart.load_state_dict(state.get("popart", {}), strict=False)

    def optimizer_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Adam's moments keyed by parameter name (a task added later does not shift them)."""
        state = {}
        for name, p in self.named_parameters().items():
            if p in self.optimizer.state:
                state[name] = dict(self.optimizer.state[p])
        return state

    def load_optimizer_state(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        for name, p in self.named_parameters().items():
            if name in state:
                moments = {k: v.to(self.device) for k, v in state[name].items()}
                if moments.get("exp_avg", p).shape == p.shape:
                    self.optimizer.state[p] = moments

    def named_parameters(self) -> dict[str, nn.Parameter]:
        """Every learnable tensor by a stable name: `online.<...>` and `balancer.<...>`."""
        named = {f"online.{n}": p for n, p in self.online.named_parameters()}
        named.update({f"balancer.{n}": p for n, p in self.balancer.named_parameters()})
        return named

    def state_dict(self) -> dict:
        """Weights, balancer/PopArt state and optimiser moments, all keyed by name."""
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer_state(),
            "ewc": self.ewc.state_dict(),
            "l2_init": self.l2_init.state_dict(),
            **self.balance_state_dict(),
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.load_balance_state_dict(state)
        self.load_optimizer_state(state.get("optimizer", {}))
        ewc = state.get("ewc", {})
        self.ewc.load_state_dict(
            {part: {n: t.to(self.device) for n, t in ewc.get(part, {}).items()}
             for part in ("fisher", "anchors")}
        )  # fmt: skip
        anchors = state.get("l2_init", {}).get("anchors", {})
        self.l2_init.load_state_dict(
            {"anchors": {n: t.to(self.device) for n, t in anchors.items()}}
        )

    def anchor_groups(self, groups: Sequence[str]) -> list[str]:
        """Sets the `l2_init` anchors to the current weights of the named parameter groups
        (those the net does not hold are skipped); returns the anchored parameter names."""
        names = {id(p): n for n, p in self.online.named_parameters()}
        held = self.online.param_groups()
        anchored = [names[id(p)] for g in groups if g in held for p in held[g]]
        self.l2_init.anchor(dict(self.online.named_parameters()), anchored)
        return anchored

    def shared_parameter_names(self) -> list[str]:
        """Names (as in `online.named_parameters()`) of the parameters no single task owns:
        the groups `trunk`, `inputs/<signature>` and a shared `head`."""
        names = {id(p): n for n, p in self.online.named_parameters()}
        groups = self.online.param_groups()
        shared = [g for g in groups if "/" not in g or g.startswith("inputs/")]
        return [names[id(p)] for g in shared for p in groups[g]]


def nonfinite_message(
    loss: torch.Tensor, grad_norm: torch.Tensor, task_losses: torch.Tensor, names: Sequence[str]
) -> str:
    """Names what was non-finite in an update: the loss (and which tasks'), or the gradient."""
    losses = task_losses.detach().cpu().tolist()
    bad = [f"{n} ({v})" for n, v in zip(names, losses, strict=True) if not math.isfinite(v)]
    if bad:
        return f"non-finite loss of task(s) {', '.join(bad)} in an update; the step was not taken"
    if not math.isfinite(float(loss)):
        return f"non-finite balanced loss ({float(loss)}) of tasks {list(names)} in an update"
    return (
        f"non-finite gradient norm ({float(grad_norm)}) in an update of tasks {list(names)} "
        "(finite losses); the step was not taken"
    )


def equal_weights(names) -> dict[str, float]:
    """alpha = 1 / T for each task."""
    names = list(names)
    return {name: 1.0 / len(names) for name in names}
