"""Stable-Baselines3 DQN on one MinAtar game with the MinAtar paper's network.

This is the SB3 half of ``benchmarks/throughput.py``: vanilla DQN (no double Q, 1-step
targets) with the same hyper-parameters multiq uses in the throughput benchmark.
"""

from __future__ import annotations

import time

import gymnasium as gym
import minatar.gym
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

minatar.gym.register_envs()


class MinAtarCNN(BaseFeaturesExtractor):
    """MinAtar paper body: 3x3 conv (16 filters, stride 1, no padding), ReLU, Linear to 128, ReLU.

    MinAtar gym observations are (10, 10, C) boolean HWC arrays; they are permuted to NCHW floats.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        height, width, channels = observation_space.shape
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * (height - 2) * (width - 2), features_dim),
            nn.ReLU(),
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Map a batch of (N, H, W, C) observations to (N, features_dim) features."""
        return self.net(observations.float().permute(0, 3, 1, 2))


def make_model(game: str, train_freq: int, seed: int) -> DQN:
    """Build an SB3 DQN for ``MinAtar/<game>-v1`` with the benchmark's settings."""
    env = gym.make(f"MinAtar/{game}-v1")
    return DQN(
        "MlpPolicy",
        env,
        policy_kwargs=dict(features_extractor_class=MinAtarCNN, net_arch=[]),
        buffer_size=100_000,
        learning_starts=1000,
        target_update_interval=1000,
        learning_rate=2.5e-4,
        batch_size=32,
        train_freq=train_freq,
        gradient_steps=1,
        gamma=0.99,
        max_grad_norm=10,
        exploration_fraction=0.1,
        exploration_final_eps=0.01,
        device="cpu",
        seed=seed,
        verbose=0,
    )


def run_sb3(game: str, steps: int, train_freq: int, seed: int) -> float:
    """Train SB3 DQN on one game for ``steps`` env steps; return the wall seconds of ``learn``."""
    model = make_model(game, train_freq, seed)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    model.get_env().close()
    return seconds
