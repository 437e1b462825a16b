"""The multi-task DQN learner: networks, optimiser, acting and one update over all tasks.

It never steps an environment: the trainer hands it observations and replay samples.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from multiq.agents.losses import masked_argmax, per_task_mean, q_target, td_loss
from multiq.mtl import PopArt, build_balancer, shared_params
from multiq.nets import SchemeOptions, build_qnet
from multiq.replay import NStepSample
from multiq.tasks.spec import TaskSet


@dataclass
class LearnerSettings(SchemeOptions):
    """Learner hyperparameters (names follow Stable-Baselines3) plus the scheme options."""

    scheme: str = "shared"
    hidden_size: int = 128
    dueling: bool = False
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    double_q: bool = True
    max_grad_norm: float = 10.0
    balancer: str = "fixed"
    gradnorm_alpha: float = 1.5
    popart: bool = False
    popart_beta: float = 3e-4


def make_adam(params, learning_rate: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam with the fused kernel where the device has one: one call updates every tensor."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=learning_rate, fused=fused)


class DQNAgent:
    """Double DQN with n-step targets, Huber loss and per-task losses combined by a balancer.

    The balancer (`settings.balancer`, see `multiq.mtl.BALANCERS`) turns the [T] task losses
    into gradients; with `settings.popart` the network predicts PopArt-normalised values and
    `q_values` returns the unnormalised ones.
    """

    def __init__(
        self,
        tasks: TaskSet,
        settings: LearnerSettings,
        task_weights: Sequence[float] | None = None,
        device: str | torch.device = "cpu",
    ):
        self.tasks = tasks
        self.settings = settings
        self.device = torch.device(device)
        self.online = build_qnet(
            settings.scheme, tasks, settings.hidden_size, settings.dueling, settings
        )
        self.online.to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        weights = task_weights if task_weights is not None else [1.0] * len(tasks)
        self.task_weights = torch.tensor(weights, dtype=torch.float32, device=self.device)
        params = list(self.online.parameters())
        self.balancer = build_balancer(
            settings.balancer,
            params,
            shared_params(self.online, tasks),
            self.task_weights,
            settings.gradnorm_alpha,
            net=self.online,
        ).to(self.device)
        groups = [{"params": params}]
        if own := list(self.balancer.parameters()):
            groups.append({"params": own})
        self.optimizer = make_adam(groups, settings.learning_rate, self.device)
        self.popart = (
            PopArt([self.online, self.target], len(tasks), settings.popart_beta)
            if settings.popart
            else None
        )
        self.num_actions = np.array([t.num_actions for t in tasks])

    def _tensors(self, arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
        return [torch.as_tensor(a, device=self.device) for a in arrays]

    def q_values(self, obs: Sequence[np.ndarray]) -> torch.Tensor:
        """[sum B_t, A_max] greedy-network Q-values; obs: one [B_t, *obs_shape_t] array per task."""
        with torch.inference_mode():
            q = self.online(self._tensors(obs))
            if self.popart is not None:
                q = self.popart.unnormalise(q, self.online.task_ids([len(o) for o in obs]))
            return q

    def act(
        self, obs: Sequence[np.ndarray], epsilon: float, rng: np.random.Generator
    ) -> list[np.ndarray]:
        """Epsilon-greedy actions for every env of every task, from one batched forward pass.

        Args:
            obs: one [n_t, *obs_shape_t] array per task.
            epsilon: probability of a uniformly random action.
            rng: source of the exploration noise.

        Returns:
            one [n_t] int64 array of actions per task.
        """
        sizes = [len(o) for o in obs]
        per_row_actions = np.repeat(self.num_actions, sizes)
        actions = (rng.random(len(per_row_actions)) * per_row_actions).astype(np.int64)
        explore = rng.random(len(actions)) < epsilon
        if not explore.all():
            q = self.q_values(obs)
            valid = self.online.action_mask[self.online.task_ids(sizes)]
            greedy = masked_argmax(q, valid).cpu().numpy()
            actions = np.where(explore, actions, greedy)
        return np.split(actions, np.cumsum(sizes)[:-1])

    def update(self, samples: Sequence[NStepSample]) -> dict[str, torch.Tensor]:
        """One gradient step on a batch holding every task's samples.

        Returns:
            detached tensors: `loss` (scalar), `task_losses` [T], `q_mean` [T] (unnormalised
            under PopArt), and the balancer's and PopArt's [T] metrics.
        """
        obs = self._tensors([s.obs for s in samples])
        next_obs = self._tensors([s.next_obs for s in samples])
        actions = torch.as_tensor(np.concatenate([s.actions for s in samples]), device=self.device)
        returns = torch.as_tensor(np.concatenate([s.returns for s in samples]), device=self.device)
        discounts = torch.as_tensor(
            np.concatenate([s.discounts for s in samples]), device=self.device
        )
        task_ids = self.online.task_ids([len(s.actions) for s in samples])
        valid = self.online.action_mask[task_ids]

        with torch.no_grad():
            # the online net picks a* (double DQN); an affine map per task leaves argmax alone
            next_online = self.online(next_obs) if self.settings.double_q else None
            next_q = self.target(next_obs)
            if self.popart is not None:
                next_q = self.popart.unnormalise(next_q, task_ids)
            targets = q_target(next_q, valid, returns, discounts, next_online)
            if self.popart is not None:
                # rescales both nets' heads before the forward below, which then sees them
                targets = self.popart.update(targets, task_ids)
        q = self.online(obs)
        task_losses = per_task_mean(td_loss(q, actions, targets), task_ids, len(self.tasks))

        self.optimizer.zero_grad(set_to_none=True)
        loss = self.balancer.backward(task_losses, task_ids)
        torch.nn.utils.clip_grad_norm_(
            self.online.parameters(), self.settings.max_grad_norm, foreach=True
        )
        self.optimizer.step()
        self.balancer.after_step()
        q_taken = q.detach().gather(1, actions[:, None]).squeeze(1)
        metrics = self.balancer.metrics()
        if self.popart is not None:
            q_taken = self.popart.unnormalise(q_taken[:, None], task_ids).squeeze(1)
            metrics.update(self.popart.metrics())
        q_mean = per_task_mean(q_taken, task_ids, len(self.tasks))
        return {"loss": loss, "task_losses": task_losses.detach(), "q_mean": q_mean, **metrics}

    def set_progress(self, fraction: float) -> None:
        """Tells both networks how far training has come (e.g. for annealed temperatures)."""
        self.online.set_progress(fraction)
        self.target.set_progress(fraction)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """The online network's [T, K] diagnostics (e.g. routing weights), for logging."""
        return self.online.diagnostics()

    def sync_target(self, tau: float = 1.0) -> None:
        """Target <- tau * online + (1 - tau) * target (tau = 1: hard copy)."""
        with torch.no_grad():
            online, target = list(self.online.parameters()), list(self.target.parameters())
            if tau >= 1.0:
                torch._foreach_copy_(target, online)
            else:
                torch._foreach_lerp_(target, online, tau)

    def balance_state_dict(self) -> dict:
        """The balancer's learned values and PopArt's statistics (part of the model)."""
        state = {"balancer": self.balancer.state_dict()}
        if self.popart is not None:
            state["popart"] = self.popart.state_dict()
        return state

    def load_balance_state_dict(self, state: dict) -> None:
        """Loads `balance_state_dict` entries; an empty default fits only a stateless balancer."""
        self.balancer.load_state_dict(state.get("balancer", {}))
        if self.popart is not None:
            self.popart.load_state_dict(state.get("popart", {}))

    def state_dict(self) -> dict:
        """Weights, balancer/PopArt state and optimiser state (tensors and plain values only)."""
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self.balance_state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.load_balance_state_dict(state)
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
