"""Policy: epsilon-greedy acting within each task's actions, keyed by task name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.agents.policy import Policy
from multiq.nets import build_qnet
from multiq.tasks.spec import TaskSet

HIDDEN = 32


@pytest.fixture(scope="module")
def minatar() -> TaskSet:
    return make_taskset("minatar")


def make_policy(tasks) -> Policy:
    torch.manual_seed(0)
    return Policy(build_qnet("shared", tasks, hidden_size=HIDDEN))


def make_padding_tempting(policy: Policy) -> None:
    """Pushes every real Q-value far below 0, the value of the zero padding columns.

    Each head has exactly its task's A_t outputs and a mixed batch is padded with zeros to the
    widest task's width, so the padding columns then beat every real action: only the action
    mask keeps them out (before, the padding columns had their own head weights, set to 1e3).
    """
    with torch.no_grad():
        for head in policy.net.heads.heads.values():
            head.advantage.bias.fill_(-1e3)


def random_obs(tasks, sizes, rng) -> dict[str, np.ndarray]:
    """Task name -> [n, *obs_shape]; rows go in the tasks' order."""
    return {t.name: rng.random((n, *t.obs_shape)) < 0.3 for t, n in zip(tasks, sizes, strict=True)}


@pytest.mark.parametrize("epsilon", [0.0, 1.0])
def test_actions_stay_within_each_tasks_action_count(minatar, epsilon):
    policy = make_policy(minatar)
    make_padding_tempting(policy)
    rng = np.random.default_rng(0)
    obs = random_obs(minatar, [16] * 5, rng)
    assert policy.q_values(obs).shape == (80, 6)  # padded to Seaquest's 6 actions
    seen = {t.name: set() for t in minatar}
    for _ in range(20):
        actions = policy.act(random_obs(minatar, [16] * 5, rng), epsilon, rng)
        assert list(actions) == minatar.names
        assert [a.shape for a in actions.values()] == [(16,)] * 5
        for task in minatar:
            a = actions[task.name]
            assert a.dtype == np.int64
            assert a.min() >= 0 and a.max() < task.num_actions
            seen[task.name] |= set(a.tolist())
    if epsilon == 1.0:  # uniform exploration reaches every real action
        assert [len(seen[t.name]) for t in minatar] == [t.num_actions for t in minatar]


def test_greedy_actions_are_argmax_over_valid_columns(minatar):
    policy = make_policy(minatar)
    make_padding_tempting(policy)
    rng = np.random.default_rng(1)
    sizes = [4, 1, 3, 2, 5]
    obs = random_obs(minatar, sizes, rng)
    actions = policy.act(obs, 0.0, rng)
    q = policy.q_values(obs).numpy()
    assert q.shape == (sum(sizes), 6)
    start = 0
    for task, n in zip(minatar, sizes, strict=True):
        rows = q[start : start + n]
        assert (rows[:, task.num_actions :] == 0).all()  # the padding, the rows' largest values
        np.testing.assert_array_equal(actions[task.name], rows[:, : task.num_actions].argmax(1))
        start += n
    # greedy acting is deterministic
    again = policy.act(obs, 0.0, rng)
    for name, a in actions.items():
        np.testing.assert_array_equal(a, again[name])


def test_act_with_empty_task_batch(minatar):
    policy = make_policy(minatar)
    rng = np.random.default_rng(0)
    obs = random_obs(minatar, [2, 0, 1, 0, 3], rng)
    actions = policy.act(obs, 0.0, rng)
    assert [len(actions[t.name]) for t in minatar] == [2, 0, 1, 0, 3]
