"""Loss terms and task weights: the distillation KL by hand, weighted losses, joint transfer.

Hand numbers (temperature 2, see `test_distill_kl_matches_a_hand_computed_value`):
row 0, actions 0-1 valid: p_T = softmax([2, 0] / 2) = [0.7310586, 0.2689414],
p_S = softmax([1, 2] / 2) = [0.3775407, 0.6224593],
KL = 0.7310586 * 0.6608153 + 0.2689414 * (-0.8391847) = 0.2574032.
row 1, all three valid: p_T = softmax([1, 1, -1] / 2), p_S = softmax([0, 1, 5] / 2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multiq import make_taskset
from multiq.agents.learner import Learner, LearnerSettings, Training
from multiq.agents.policy import Policy
from multiq.agents.terms import DistillTerm, distill_kl
from multiq.api import MultiTaskDQN
from multiq.replay.buffers import NStepSample

ROWS = 8
QUIET = dict(tensorboard=False, progress_bar=False, device="cpu")


def softmax(values: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


# student rows, teacher rows, valid mask; the invalid column of row 0 holds extreme values that
# would dominate both softmaxes if they were not masked out
STUDENT = [[1.0, 2.0, 100.0], [0.0, 1.0, 5.0]]
TEACHER = [[2.0, 0.0, -100.0], [1.0, 1.0, -1.0]]
VALID = [[True, True, False], [True, True, True]]


def test_distill_kl_matches_a_hand_computed_value():
    student, teacher, valid = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(VALID)
    row0 = kl(softmax(TEACHER[0][:2], 2.0), softmax(STUDENT[0][:2], 2.0))
    row1 = kl(softmax(TEACHER[1], 2.0), softmax(STUDENT[1], 2.0))
    assert row0 == pytest.approx(0.2574032, abs=1e-7)

    out = distill_kl(student, teacher, valid, temperature=2.0)

    assert out.shape == (2,)
    assert out.tolist() == pytest.approx([row0, row1], abs=1e-6)


def test_distill_kl_temperature_changes_the_value():
    student, teacher, valid = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(VALID)
    at_1 = distill_kl(student, teacher, valid, temperature=1.0)
    expected = kl(softmax(TEACHER[1], 1.0), softmax(STUDENT[1], 1.0))
    assert float(at_1[1]) == pytest.approx(expected, abs=1e-6)
    assert float(at_1[1]) != pytest.approx(float(distill_kl(student, teacher, valid, 2.0)[1]))


def test_distill_kl_of_identical_q_values_is_exactly_zero():
    q = torch.tensor(STUDENT)
    out = distill_kl(q, q.clone(), torch.tensor(VALID), temperature=2.0)
    assert torch.equal(out, torch.zeros(2))


def kl_gradients():
    student = torch.tensor(STUDENT, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    distill_kl(student, teacher, torch.tensor(VALID), temperature=2.0).sum().backward()
    return student.grad, teacher.grad


def test_distill_kl_gradient_of_the_student_by_hand():
    student_grad, _ = kl_gradients()
    assert torch.isfinite(student_grad).all()
    assert student_grad[0, 2] == 0.0  # the invalid action gets no gradient
    # d KL / d s_a = (p_S(a) - p_T(a)) / tau on the valid actions
    for row in range(2):
        valid = [a for a in range(3) if VALID[row][a]]
        p_s = softmax([STUDENT[row][a] for a in valid], 2.0)
        p_t = softmax([TEACHER[row][a] for a in valid], 2.0)
        expected = [(s - t) / 2.0 for s, t in zip(p_s, p_t, strict=True)]
        assert student_grad[row, valid].tolist() == pytest.approx(expected, abs=1e-6)


def test_distill_kl_gradient_reaches_the_student_only():
    """The teacher is a target: like TD targets (`q_target`) it must get no gradient, never NaN.

    Fails on abb3e00: an attached teacher gets the KL's gradient, NaN on masked columns.
    """
    _, teacher_grad = kl_gradients()
    assert teacher_grad is None or torch.equal(teacher_grad, torch.zeros(2, 3)), (
        f"the teacher's Q-values received a gradient: {teacher_grad}"
    )


# --- the learner: weighted task losses and a distillation term -----------------------------------


@pytest.fixture(scope="module")
def specs():
    return list(
        make_taskset(
            [{"id": "classic:CartPole", "name": "A"}, {"id": "classic:Acrobot", "name": "B"}]
        )
    )


def make_learner(specs, seed=0, **settings) -> Learner:
    torch.manual_seed(seed)
    base = dict(scheme="shared", hidden_size=16, learning_rate=1e-3, balancer="fixed")
    return Learner(specs, LearnerSettings(**{**base, **settings}), "cpu")


def random_batch(specs, seed=0) -> dict[str, NStepSample]:
    rng = np.random.default_rng(seed)
    batch = {}
    for spec in specs:
        dim = spec.obs_shape[0]
        batch[spec.name] = NStepSample(
            obs=rng.standard_normal((ROWS, dim)).astype(np.float32),
            actions=rng.integers(0, spec.num_actions, ROWS).astype(np.int64),
            returns=rng.standard_normal(ROWS).astype(np.float32),
            next_obs=rng.standard_normal((ROWS, dim)).astype(np.float32),
            discounts=np.where(rng.random(ROWS) < 0.25, 0.0, 0.99**3).astype(np.float32),
        )
    return batch


def hand_td_loss(learner, name: str, s: NStepSample) -> float:
    """Double-DQN Huber loss of one task from its own forward passes (no library loss code)."""
    n = learner.specs[name].num_actions
    with torch.no_grad():
        q = learner.online({name: torch.as_tensor(s.obs)})[:, :n]
        next_online = learner.online({name: torch.as_tensor(s.next_obs)})[:, :n]
        next_target = learner.target({name: torch.as_tensor(s.next_obs)})[:, :n]
    best = next_online.argmax(1)
    bootstrap = next_target[torch.arange(ROWS), best]
    target = torch.as_tensor(s.returns) + torch.as_tensor(s.discounts) * bootstrap
    taken = q[torch.arange(ROWS), torch.as_tensor(s.actions)]
    diff = (taken - target).abs()
    huber = torch.where(diff < 1.0, 0.5 * diff**2, diff - 0.5)
    return float(huber.mean())


def test_weighted_loss_is_the_weighted_sum_of_the_task_losses(specs):
    learner = make_learner(specs)
    learner.configure(Training(task_weights={"A": 1.0, "B": 0.5}))
    learner.sync_target(1.0)
    with torch.no_grad():  # make the target net differ from the online net
        for p in learner.target.parameters():
            p.mul_(0.5)
    batch = random_batch(specs)
    expected = {name: hand_td_loss(learner, name, s) for name, s in batch.items()}

    out = learner.update(batch)

    l_a, l_b = out["task_losses"].tolist()
    assert [l_a, l_b] == pytest.approx([expected["A"], expected["B"]], rel=1e-5)
    assert float(out["loss"]) == pytest.approx(1.0 * l_a + 0.5 * l_b, rel=1e-6, abs=1e-7)
    assert float(out["loss"]) != pytest.approx(0.5 * (l_a + l_b), rel=1e-3)


def test_distill_term_adds_weight_times_mean_kl_and_leaves_the_teacher_alone(specs):
    student = make_learner(specs, seed=0)
    teacher_net = make_learner(specs, seed=1).online
    teacher = Policy.snapshot(teacher_net)
    teacher_before = [p.clone() for p in teacher.net.parameters()]
    term = DistillTerm({"A": teacher}, weight=0.5, temperature=2.0)
    # no TD loss: the task loss of A is the term alone, B's is 0
    student.configure(Training(task_weights={"A": 1.0, "B": 1.0}, td_tasks=(), terms=(term,)))
    batch = random_batch(specs, seed=4)
    obs_a = torch.as_tensor(batch["A"].obs)
    with torch.no_grad():
        q_s = student.online({"A": obs_a})[:, :2]
        q_t = teacher.net({"A": obs_a})[:, :2]
    expected = 0.5 * float(
        (F.softmax(q_t / 2, 1) * (F.log_softmax(q_t / 2, 1) - F.log_softmax(q_s / 2, 1)))
        .sum(1)
        .mean()
    )
    head_before = student.online.param_groups()["head/A"][0].detach().clone()

    out = student.update(batch)

    assert out["task_losses"].tolist() == pytest.approx([expected, 0.0], abs=1e-6)
    assert expected > 0
    assert all(
        torch.equal(a, b) for a, b in zip(teacher.net.parameters(), teacher_before, strict=True)
    )
    assert all(p.grad is None for p in teacher.net.parameters())
    assert not torch.equal(student.online.param_groups()["head/A"][0], head_before)


# --- joint transfer weights ----------------------------------------------------------------------


def test_joint_transfer_weights_sources_by_mean_and_target_by_lambda(tmp_path):
    tiny = dict(
        hidden_size=16,
        buffer_size=2_000,
        learning_starts=20,
        batch_size=8,
        eval_episodes=2,
        total_steps_per_task=40,
        **QUIET,
    )
    source = MultiTaskDQN(
        "classic:CartPole,classic:Acrobot,classic:MountainCar", run_dir=tmp_path / "src", **tiny
    )

    model = MultiTaskDQN.from_pretrained(
        source,
        tasks=[{"id": "gym:CartPole-v1", "name": "Pole"}],
        mode="joint",
        transfer_lambda=0.5,
        run_dir=tmp_path / "joint",
    )

    phase = model.phases[-1]
    assert phase.tasks == ("CartPole", "Acrobot", "MountainCar", "Pole")
    assert phase.task_weights == pytest.approx(
        {"CartPole": 1 / 3, "Acrobot": 1 / 3, "MountainCar": 1 / 3, "Pole": 0.5}
    )
    assert phase.eval_at_start and phase.frozen == () and phase.terms == ()
    assert model.run_info["transfer"]["source_tasks"] == ["CartPole", "Acrobot", "MountainCar"]
    assert model.run_info["transfer"]["target_tasks"] == ["Pole"]

    model.learn(evaluate=False)  # the phase's weights reach the learner as given

    assert model.learner.balancer.weights == pytest.approx(phase.task_weights)
    assert model.state.task_env_steps == {n: 40 for n in phase.tasks}
