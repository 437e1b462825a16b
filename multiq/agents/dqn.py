"""The multi-task DQN learner: networks, optimiser, acting and one update over all tasks.

It never steps an environment: the trainer hands it observations and replay samples.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from multiq.agents.losses import masked_argmax, per_task_mean, q_target, td_loss, weighted_sum
from multiq.nets import build_qnet
from multiq.replay import NStepSample
from multiq.tasks.spec import TaskSet


@dataclass
class LearnerSettings:
    """The hyperparameters the learner itself uses (names follow Stable-Baselines3)."""

    scheme: str = "shared"
    hidden_size: int = 128
    dueling: bool = False
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    double_q: bool = True
    max_grad_norm: float = 10.0


def make_adam(params, learning_rate: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam with the fused kernel where the device has one: one call updates every tensor."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=learning_rate, fused=fused)


class DQNAgent:
    """Double DQN with n-step targets, Huber loss and per-task losses combined by weights alpha."""

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
        self.online = build_qnet(settings.scheme, tasks, settings.hidden_size, settings.dueling)
        self.online.to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = make_adam(self.online.parameters(), settings.learning_rate, self.device)
        weights = task_weights if task_weights is not None else [1.0] * len(tasks)
        self.task_weights = torch.tensor(weights, dtype=torch.float32, device=self.device)
        self.num_actions = np.array([t.num_actions for t in tasks])

    def _tensors(self, arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
        return [torch.as_tensor(a, device=self.device) for a in arrays]

    def q_values(self, obs: Sequence[np.ndarray]) -> torch.Tensor:
        """[sum B_t, A_max] greedy-network Q-values; obs: one [B_t, *obs_shape_t] array per task."""
        with torch.inference_mode():
            return self.online(self._tensors(obs))

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
            detached tensors: `loss` (scalar), `task_losses` [T], `q_mean` [T].
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
            next_online = self.online(next_obs) if self.settings.double_q else None
            targets = q_target(self.target(next_obs), valid, returns, discounts, next_online)
        q = self.online(obs)
        task_losses = per_task_mean(td_loss(q, actions, targets), task_ids, len(self.tasks))
        loss = weighted_sum(task_losses, self.task_weights)

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            self.online.parameters(), self.settings.max_grad_norm, foreach=True
        )
        self.optimizer.step()
        q_taken = q.detach().gather(1, actions[:, None]).squeeze(1)
        q_mean = per_task_mean(q_taken, task_ids, len(self.tasks))
        return {"loss": loss.detach(), "task_losses": task_losses.detach(), "q_mean": q_mean}

    def sync_target(self, tau: float = 1.0) -> None:
        """Target <- tau * online + (1 - tau) * target (tau = 1: hard copy)."""
        with torch.no_grad():
            online, target = list(self.online.parameters()), list(self.target.parameters())
            if tau >= 1.0:
                torch._foreach_copy_(target, online)
            else:
                torch._foreach_lerp_(target, online, tau)

    def state_dict(self) -> dict:
        """Weights and optimiser state (tensors and plain values only)."""
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
