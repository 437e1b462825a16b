"""Regularisers for transfer: AdamW weight decay, trunk dropout, and the l2_init (L2-SP) term.

Hand numbers:
- AdamW, one step from p = [1, -2], g = [0.5, -4], lr 0.1, weight decay 0.5: the decay gives
  p * (1 - 0.1 * 0.5) = [0.95, -1.9]; Adam's first step is lr * m_hat / (sqrt(v_hat) + eps)
  = lr * g / (|g| + eps) = [0.1, -0.1]; so p' = [0.85, -1.8].
- L2-SP with beta 0.4, p = {a: [1, 2], b: [[0.5]]}, anchors {a: [0, 0], b: [[1.5]]}:
  0.4 / 2 * (1 + 4 + 1) = 1.2; gradient beta * (p - anchor) = {a: [0.4, 0.8], b: [[-0.4]]}.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tiny_config
import torch
from torch import nn

from multiq import make_taskset
from multiq.agents.learner import Learner, LearnerSettings, Training, make_adam
from multiq.agents.policy import Policy
from multiq.agents.terms import TERMS, AnchorState, L2InitTerm, l2_sp
from multiq.api import MultiTaskDQN
from multiq.errors import ConfigError
from multiq.nets import SchemeOptions, build_qnet, dropout_active
from multiq.nets.encoders import ENCODERS, EncoderWidths, ReLUDropout
from multiq.phases.phase import TERM_KINDS
from multiq.replay.buffers import NStepSample
from multiq.train.callbacks import Callback

ROWS = 8


@pytest.fixture(scope="module")
def specs():
    return list(
        make_taskset(
            [{"id": "classic:CartPole", "name": "A"}, {"id": "classic:Acrobot", "name": "B"}]
        )
    )


def make_learner(specs, seed=0, **settings) -> Learner:
    torch.manual_seed(seed)
    base = dict(
        scheme="shared", hidden_size=16, learning_rate=1e-3, balancer="fixed", max_grad_norm=1e6
    )
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
            discounts=np.full(ROWS, 0.97, dtype=np.float32),
        )
    return batch


def obs_of(batch) -> dict[str, torch.Tensor]:
    return {name: torch.as_tensor(s.obs) for name, s in batch.items()}


# --- weight decay --------------------------------------------------------------------------------


def test_one_adamw_step_matches_the_formula():
    p = nn.Parameter(torch.tensor([[1.0, -2.0]]))
    optimizer = make_adam([p], 0.1, torch.device("cpu"), weight_decay=0.5)
    p.grad = torch.tensor([[0.5, -4.0]])

    optimizer.step()

    assert isinstance(optimizer, torch.optim.AdamW)
    assert p.detach()[0].tolist() == pytest.approx([0.85, -1.8], abs=1e-6)


def test_weight_decay_zero_is_plain_adam():
    p = nn.Parameter(torch.tensor([[1.0, -2.0]]))
    optimizer = make_adam([p], 0.1, torch.device("cpu"))
    p.grad = torch.tensor([[0.5, -4.0]])

    optimizer.step()

    assert type(optimizer) is torch.optim.Adam
    assert p.detach()[0].tolist() == pytest.approx([0.9, -1.9], abs=1e-6)


def test_learner_with_weight_decay_zero_updates_bit_identically_to_plain_adam(specs):
    """The default learner against one whose optimiser is built as before this option."""
    batch = random_batch(specs)
    ours = make_learner(specs, weight_decay=0.0)
    before = make_learner(specs)
    lr = before.settings.learning_rate
    groups = [{"params": [p for p in before.online.parameters() if p.requires_grad], "lr": lr}]
    before.optimizer = torch.optim.Adam(groups, lr=lr, fused=True)

    for _ in range(3):
        ours.update(batch)
        before.update(batch)

    assert type(ours.optimizer) is torch.optim.Adam
    assert all(g.get("weight_decay", 0) == 0 for g in ours.optimizer.param_groups)
    for a, b in zip(ours.online.parameters(), before.online.parameters(), strict=True):
        assert torch.equal(a, b)


def test_learner_decays_weights_by_lr_times_decay_and_leaves_biases(specs):
    """First step, same gradients: AdamW's result minus Adam's is -lr * wd * p0 on weights."""
    batch = random_batch(specs, seed=1)
    lr, decay = 1e-3, 0.1
    adam = make_learner(specs, learning_rate=lr)
    adamw = make_learner(specs, learning_rate=lr, weight_decay=decay)
    start = [p.detach().clone() for p in adamw.online.parameters()]

    adam.update(batch)
    adamw.update(batch)

    assert isinstance(adamw.optimizer, torch.optim.AdamW)
    decays = {g["weight_decay"] for g in adamw.optimizer.param_groups}
    assert decays == {0.0, decay}
    pairs = zip(adam.online.parameters(), adamw.online.parameters(), start, strict=True)
    for plain, decayed, p0 in pairs:
        expected = -lr * decay * p0 if p0.dim() >= 2 else torch.zeros_like(p0)
        torch.testing.assert_close(decayed - plain, expected, atol=2e-8, rtol=1e-3)


def test_weight_decay_keeps_optimizer_state_across_reconfigure_and_reload(specs):
    learner = make_learner(specs, weight_decay=0.1)
    learner.update(random_batch(specs))
    state = learner.state_dict()
    learner.configure(Training(task_weights={"A": 0.5, "B": 0.5}, frozen=("head/B",)))
    assert isinstance(learner.optimizer, torch.optim.AdamW)
    trunk = learner.online.param_groups()["trunk"][0]
    assert trunk in learner.optimizer.state

    fresh = make_learner(specs, seed=5, weight_decay=0.1)
    fresh.load_state_dict(state)

    moments = fresh.optimizer_state()
    for name, saved in state["optimizer"].items():
        assert torch.equal(moments[name]["exp_avg"], saved["exp_avg"])


# --- dropout -------------------------------------------------------------------------------------


def test_dropout_zero_builds_the_modules_of_before_and_dropout_keeps_their_keys(specs):
    plain = build_qnet("shared", specs, 16, options=SchemeOptions())
    zero = build_qnet("shared", specs, 16, options=SchemeOptions(dropout=0.0))
    dropped = build_qnet("shared", specs, 16, options=SchemeOptions(dropout=0.3))

    assert repr(zero) == repr(plain)
    assert not any(isinstance(m, ReLUDropout) for m in zero.modules())
    assert list(dropped.state_dict()) == list(plain.state_dict())
    assert sum(isinstance(m, ReLUDropout) for m in dropped.modules()) == 1  # mlp_layers 2
    dropped.load_state_dict(plain.state_dict())  # a dropout source loads without, and back


@pytest.mark.parametrize(
    ("family", "shape"), [("mlp", (6,)), ("minatar", (4, 10, 10)), ("nature", (4, 84, 84))]
)
def test_every_family_body_drops_after_its_hidden_layers(family, shape):
    space = gym.spaces.Box(0, 1, shape, np.float32)
    widths = EncoderWidths(hidden_size=8, mlp_layers=3, cnn_hidden_size=8, dropout=0.5)
    body, _ = ENCODERS[family].body(space, widths)
    plain, _ = ENCODERS[family].body(space, EncoderWidths(8, 3, 16, 8))

    hidden = 2 if family == "mlp" else 1
    assert sum(isinstance(m, ReLUDropout) for m in body.modules()) == hidden
    assert [type(m) for m in plain.modules()].count(nn.ReLU) >= hidden


def test_bad_dropout_is_refused():
    with pytest.raises(ConfigError, match="dropout"):
        EncoderWidths(dropout=1.0)


def test_dropout_is_on_only_in_the_learners_update_forward(specs):
    learner = make_learner(specs, dropout=0.5)
    batch = random_batch(specs)
    obs = obs_of(batch)

    first, second = learner._online_forward(obs), learner._online_forward(obs)
    assert not torch.equal(first, second)  # learning forwards drop units
    acting = [learner.policy.q_values(obs) for _ in range(2)]
    plain = [learner.online(obs).detach() for _ in range(2)]
    assert torch.equal(acting[0], acting[1]) and torch.equal(plain[0], plain[1])
    assert torch.equal(acting[0], plain[0])
    assert torch.equal(learner.target(obs), learner.target(obs))
    tensors = learner._batch_tensors(batch)
    task_ids = learner.online.task_ids([ROWS, ROWS])
    valid = learner.policy.valid_actions(list(batch))[task_ids]
    targets = [learner._targets(tensors, list(batch), task_ids, valid) for _ in range(2)]
    assert torch.equal(targets[0], targets[1])  # target net and double-Q argmax: no dropout

    learner.update(batch)

    modules = [m for m in learner.online.modules() if isinstance(m, ReLUDropout)]
    assert modules and not any(m.active for m in modules)
    snapshot = Policy.snapshot(learner.online)  # what a child collector acts with
    assert torch.equal(snapshot.q_values(obs), snapshot.q_values(obs))
    assert torch.equal(snapshot.q_values(obs), learner.policy.q_values(obs))


def test_dropout_active_switches_off_again_after_an_error(specs):
    net = build_qnet("shared", specs, 16, options=SchemeOptions(dropout=0.5))
    with pytest.raises(RuntimeError), dropout_active(net):
        raise RuntimeError("in the forward")
    assert not any(m.active for m in net.modules() if isinstance(m, ReLUDropout))


# --- l2_init (L2-SP) -----------------------------------------------------------------------------


def test_l2_sp_value_and_gradient_by_hand():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([[0.5]], requires_grad=True)
    anchors = {"a": torch.zeros(2), "b": torch.tensor([[1.5]]), "gone": torch.ones(3)}

    value = l2_sp({"a": a, "b": b, "free": torch.ones(2)}, anchors, beta=0.4)
    value.backward()

    assert float(value.detach()) == pytest.approx(1.2, abs=1e-6)
    assert a.grad.tolist() == pytest.approx([0.4, 0.8], abs=1e-6)
    assert b.grad.item() == pytest.approx(-0.4, abs=1e-6)


def test_l2_sp_refuses_a_shape_mismatch_and_is_zero_without_anchors():
    with pytest.raises(ValueError, match="shape"):
        l2_sp({"a": torch.ones(2)}, {"a": torch.ones(3)})
    assert float(l2_sp({"a": torch.ones(2)}, {})) == 0.0


def test_the_terms_registry_names_every_phase_term_kind():
    assert set(TERMS) == set(TERM_KINDS) == {"distill", "ewc", "l2_init"}


@pytest.mark.parametrize("weights", [{"A": 0.5, "B": 0.5}, {"A": 0.3, "B": 0.2}])
def test_l2_init_term_adds_exactly_its_penalty_and_gradient_to_an_update(specs, weights):
    """Whatever the task weights: loss + beta/2 ||d||^2 and grad + beta * d on anchored
    tensors, nothing elsewhere (d: the trunk's distance from its anchor)."""
    beta = 0.7
    batch = random_batch(specs, seed=2)
    with_term, without = make_learner(specs), make_learner(specs)
    with_term.anchor_groups(["trunk"])
    with torch.no_grad():  # move both trunks off the anchors, by the same known amount
        for net in (with_term.online, without.online):
            for i, p in enumerate(net.param_groups()["trunk"]):
                p.add_(0.01 * (i + 1))
    term = TERMS["l2_init"]({"kind": "l2_init", "weight": beta}, {}, with_term)
    assert isinstance(term, L2InitTerm)
    with_term.configure(Training(task_weights=weights, terms=(term,)))
    without.configure(Training(task_weights=weights))
    anchored = dict(with_term.l2_init.anchors)
    named = dict(with_term.online.named_parameters())
    penalty = sum(
        0.5 * beta * float((named[n] - a).square().sum().detach()) for n, a in anchored.items()
    )
    before = {n: p.detach().clone() for n, p in named.items()}

    out_with, out_without = with_term.update(batch), without.update(batch)

    assert float(out_with["loss"]) == pytest.approx(float(out_without["loss"]) + penalty, rel=1e-6)
    assert torch.equal(out_with["task_losses"], out_without["task_losses"])
    plain_grads = dict(without.online.named_parameters())
    for name, p in with_term.online.named_parameters():
        extra = p.grad - plain_grads[name].grad
        if name in anchored:
            expected = beta * (before[name] - anchored[name])
            torch.testing.assert_close(extra, expected, atol=1e-6, rtol=1e-5)
        else:
            assert torch.equal(extra, torch.zeros_like(extra))


def test_gradient_includes_the_l2_init_penalty(specs):
    beta = 0.5
    batch = random_batch(specs, seed=3)
    learner = make_learner(specs)
    learner.anchor_groups(["trunk"])
    trunk = learner.online.param_groups()["trunk"]
    with torch.no_grad():
        trunk[0].add_(0.1)
    plain = learner.gradient(batch)
    term = L2InitTerm(learner.l2_init, lambda: dict(learner.online.named_parameters()), beta)
    learner.configure(Training(task_weights=learner.training.task_weights, terms=(term,)))

    with_term = learner.gradient(batch)

    name = next(n for n, p in learner.online.named_parameters() if p is trunk[0])
    torch.testing.assert_close(with_term[name] - plain[name], torch.full_like(trunk[0], 0.05))


def test_anchor_state_round_trips_and_anchors_copies():
    p = torch.ones(2, requires_grad=True)
    state = AnchorState()
    state.anchor({"p": p}, ["p"])
    with torch.no_grad():
        p.add_(1.0)
    other = AnchorState()
    other.load_state_dict(state.state_dict())
    assert other.anchors["p"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="no parameters named"):
        state.anchor({"p": p}, ["q"])


# --- transfer with l2_init, resumed --------------------------------------------------------------


class StopAt(Callback):
    def __init__(self, env_steps: int):
        self.env_steps = env_steps

    def on_step(self, trainer) -> bool:
        return trainer.state.env_steps < self.env_steps


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("source") / "run"
    model = MultiTaskDQN("classic:CartPole", run_dir=run_dir, **tiny_config.TINY_RUN)
    return model.learn(200, evaluate=False)


def test_finetune_with_l2_init_anchors_the_source_and_resumes_with_the_same_anchors(
    source, tmp_path
):
    run_dir = tmp_path / "target"
    settings = {**tiny_config.TINY_RUN, "checkpoint_freq": 50, "l2_init": 0.5}
    model = MultiTaskDQN.from_pretrained(
        source, "classic:Acrobot", "finetune", run_dir=run_dir, **settings
    )
    assert model.phases[-1].terms == ({"kind": "l2_init", "weight": 0.5},)
    source_weights = dict(source.learner.online.named_parameters())
    anchors = {n: t.clone() for n, t in model.learner.l2_init.anchors.items()}
    trunk_names = [n for n in anchors if ".body." in n or n.startswith("body.")]
    assert trunk_names and any(n.startswith("inputs.") for n in anchors)
    assert all(torch.equal(anchors[n], source_weights[n]) for n in anchors)

    model.learn(200, callbacks=StopAt(150), evaluate=False)
    assert model.state.env_steps == 150
    resumed = MultiTaskDQN.resume(run_dir)
    assert resumed.state.env_steps == 150

    kept = resumed.learner.l2_init.anchors
    assert kept.keys() == anchors.keys()
    assert all(torch.equal(kept[n], anchors[n]) for n in anchors)
    resumed.learn(evaluate=False)
    assert resumed.state.env_steps == 200
    assert all(torch.equal(resumed.learner.l2_init.anchors[n], anchors[n]) for n in anchors)
    now = dict(resumed.learner.online.named_parameters())
    assert any(not torch.equal(now[n], anchors[n]) for n in trunk_names)  # the trunk trained


def test_joint_with_l2_init_carries_the_term_and_zero_adds_none(source, tmp_path):
    joint = MultiTaskDQN.from_pretrained(
        source, "classic:Acrobot", "joint", run_dir=tmp_path / "j", **tiny_config.TINY_RUN,
        l2_init=0.2,
    )  # fmt: skip
    plain = MultiTaskDQN.from_pretrained(
        source, "classic:Acrobot", "finetune", run_dir=tmp_path / "f", **tiny_config.TINY_RUN
    )
    assert joint.phases[-1].terms == ({"kind": "l2_init", "weight": 0.2},)
    assert plain.phases[-1].terms == () and not len(plain.learner.l2_init)


def test_l2_init_needs_a_trunk(tmp_path):
    settings = {**tiny_config.TINY_RUN, "scheme": "independent"}
    source = MultiTaskDQN("classic:CartPole", run_dir=tmp_path / "s", **settings)
    with pytest.raises(ConfigError, match="l2_init"):
        MultiTaskDQN.from_pretrained(
            source, "classic:Acrobot", "finetune", run_dir=tmp_path / "t", l2_init=0.1
        )
