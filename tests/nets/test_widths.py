"""Encoder widths as settings (`hidden_size`, `mlp_layers`, `conv_filters`, `cnn_hidden_size`):
hand-counted parameters, the defaults' unchanged nets, and models that save, load and resume
with a non-default width."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tiny_config
import torch
from torch import nn

from multiq.api import MultiTaskDQN
from multiq.config import Config
from multiq.errors import ConfigError
from multiq.nets import SCHEMES, EncoderWidths, SchemeOptions, build_qnet
from multiq.nets.routed import RoutedLinear
from multiq.tasks.spec import TaskSpec
from multiq.train.checkpoint import MODEL_FILE


def spec(name, shape, n_actions, dtype=np.float32, high=1.0) -> TaskSpec:
    space = gym.spaces.Box(0, high, shape, dtype)
    return TaskSpec(name, f"{name}-v0", None, space, gym.spaces.Discrete(n_actions))


# two MinAtar-shaped tasks (channel counts differ: one input layer each), two vector tasks,
# two Nature-shaped tasks (one signature: one shared input layer)
MINATAR = [spec("A", (4, 10, 10), 6, np.bool_), spec("B", (7, 10, 10), 3, np.bool_)]
VECTOR = [spec("cp", (4,), 2), spec("ac", (6,), 3)]
NATURE = [spec("p", (4, 84, 84), 6, np.uint8, 255), spec("q", (4, 84, 84), 4, np.uint8, 255)]


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv(c_in: int, c_out: int, kernel: int) -> int:
    return c_in * c_out * kernel * kernel + c_out


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def random_obs(tasks, rows: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    obs = {}
    for t in tasks:
        x = torch.rand((rows, *t.obs_shape), generator=gen)
        if t.obs_dtype == np.bool_:
            obs[t.name] = x < 0.3
        elif t.obs_dtype == np.uint8:
            obs[t.name] = (x * 255).to(torch.uint8)
        else:
            obs[t.name] = x
    return obs


# --- hand-counted parameters ------------------------------------------------------------------

# MinAtar net, conv_filters=32, hidden_size=256: 3x3 conv, then 32 * 8 * 8 = 2048 features
MINATAR_INPUTS = conv(4, 32, 3) + conv(7, 32, 3)  # 1184 + 2048
MINATAR_BODY = linear(2048, 256)  # 524_544
MINATAR_HEADS = linear(256, 6) + linear(256, 3)  # 1542 + 771
# MLP, mlp_layers=3, hidden_size=32: the input layer and two shared layers
VECTOR_INPUTS = linear(4, 32) + linear(6, 32)  # 160 + 224
VECTOR_BODY = 2 * linear(32, 32)  # 2112
VECTOR_HEADS = linear(32, 2) + linear(32, 3)  # 66 + 99
# Nature CNN, cnn_hidden_size=256: 84 -> 20 -> 9 -> 7, so 64 * 7 * 7 = 3136 conv features
NATURE_INPUT = conv(4, 32, 8)  # 8224
NATURE_BODY = conv(32, 64, 4) + conv(64, 64, 3) + linear(3136, 256)  # 32_832 + 36_928 + 803_072
NATURE_HEADS = linear(256, 6) + linear(256, 4)  # 1542 + 1028


@pytest.mark.parametrize(
    ("tasks", "options", "hidden_size", "shared", "independent"),
    [
        pytest.param(
            MINATAR,
            SchemeOptions(conv_filters=32),
            256,
            (MINATAR_INPUTS + MINATAR_BODY + MINATAR_HEADS, 530_089),
            (MINATAR_INPUTS + 2 * MINATAR_BODY + MINATAR_HEADS, 1_054_633),
            id="minatar-conv_filters",
        ),
        pytest.param(
            VECTOR,
            SchemeOptions(mlp_layers=3),
            32,
            (VECTOR_INPUTS + VECTOR_BODY + VECTOR_HEADS, 2661),
            (VECTOR_INPUTS + 2 * VECTOR_BODY + VECTOR_HEADS, 4773),
            id="vector-mlp_layers",
        ),
        pytest.param(
            NATURE,
            SchemeOptions(cnn_hidden_size=256),
            128,
            (NATURE_INPUT + NATURE_BODY + NATURE_HEADS, 883_626),
            (2 * (NATURE_INPUT + NATURE_BODY) + NATURE_HEADS, 1_764_682),
            id="nature-cnn_hidden_size",
        ),
    ],
)
def test_parameter_counts_follow_the_widths(tasks, options, hidden_size, shared, independent):
    for scheme, (count, literal) in (("shared", shared), ("independent", independent)):
        assert count == literal  # the hand sums, as numbers
        net = build_qnet(scheme, tasks, hidden_size=hidden_size, options=options)
        assert n_params(net) == count, scheme
        q = net(random_obs(tasks))
        assert q.shape == (3 * len(tasks), max(t.num_actions for t in tasks))


def test_one_mlp_layer_leaves_an_empty_body_and_keeps_the_feature_size():
    net = build_qnet("shared", VECTOR, hidden_size=32, options=SchemeOptions(mlp_layers=1))
    assert len(net.body) == 0
    assert n_params(net) == VECTOR_INPUTS + VECTOR_HEADS == 549
    assert net.heads.heads["cp"].advantage.in_features == 32
    obs = random_obs(VECTOR)
    features = net.inputs(obs)
    assert torch.equal(net.encode(obs), features)  # the empty body is the identity
    assert net(obs).shape == (6, 3)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_takes_the_widths(scheme):
    options = SchemeOptions(conv_filters=8, mlp_layers=3)
    net = build_qnet(scheme, MINATAR, hidden_size=24, options=options)
    assert net.widths == EncoderWidths(24, 3, 8, 512)
    convs = [m for n, m in net.named_modules()
             if isinstance(m, nn.Conv2d) and ".laterals." not in n]  # fmt: skip
    dense = [m for m in net.modules() if isinstance(m, (nn.Linear, RoutedLinear))]
    assert convs and {m.out_channels for m in convs} == {8}
    # the dense layer after the conv takes 8 filters * 8 * 8 positions
    first = dense[0].modules_wide if isinstance(dense[0], RoutedLinear) else dense[0]
    assert first.in_features == 8 * 8 * 8
    assert net(random_obs(MINATAR)).shape == (6, 6)

    vector = build_qnet(scheme, VECTOR, hidden_size=24, options=options)
    linears = [m for m in vector.modules() if isinstance(m, nn.Linear)]
    assert {m.out_features for m in linears if m.in_features in (4, 6)} == {24}
    assert vector(random_obs(VECTOR)).shape == (6, 3)


def test_routed_routes_every_mlp_body_layer():
    options = SchemeOptions(mlp_layers=3, routing_modules=2)
    net = build_qnet("routed", VECTOR, hidden_size=16, options=options)
    routed = [m for m in net.body if isinstance(m, RoutedLinear)]
    assert [(m.modules_wide.in_features, m.modules_wide.out_features) for m in routed] == [
        (16, 32),
        (16, 32),
    ]
    assert net.routing_logits["cp"].shape == (2, 2)
    assert set(net.diagnostics()) == {"routing", "routing1"}

    wide = build_qnet("routed", NATURE[:1], options=SchemeOptions(cnn_hidden_size=64))
    (dense,) = [m for m in wide.body if isinstance(m, RoutedLinear)]
    assert (dense.modules_wide.in_features, dense.out_features) == (3136, 64)


def test_routed_without_a_dense_body_layer_is_refused():
    with pytest.raises(ConfigError, match="mlp_layers >= 2"):
        build_qnet("routed", VECTOR, options=SchemeOptions(mlp_layers=1))


@pytest.mark.parametrize("field", ["hidden_size", "mlp_layers", "conv_filters", "cnn_hidden_size"])
def test_a_width_below_one_is_refused(field):
    with pytest.raises(ConfigError, match=field):
        EncoderWidths(**{field: 0})


# --- the defaults keep the nets ---------------------------------------------------------------


def test_default_widths_are_the_declared_defaults():
    assert EncoderWidths() == EncoderWidths(128, 2, 16, 512)
    assert EncoderWidths.from_config(Config(conv_filters=32)) == EncoderWidths(128, 2, 32, 512)
    options = SchemeOptions.from_config(Config(mlp_layers=3, cnn_hidden_size=64))
    assert (options.mlp_layers, options.conv_filters, options.cnn_hidden_size) == (3, 16, 64)


def test_defaults_give_the_published_nets():
    minatar = build_qnet("shared", MINATAR)  # Young & Tian 2019: 16 filters, 128 units
    inputs, body = conv(4, 16, 3) + conv(7, 16, 3), linear(16 * 8 * 8, 128)
    assert n_params(minatar) == inputs + body + linear(128, 6) + linear(128, 3) == 133_977
    vector = build_qnet("shared", VECTOR)  # two hidden layers of 128
    inputs, body = linear(4, 128) + linear(6, 128), linear(128, 128)
    assert n_params(vector) == inputs + body + linear(128, 2) + linear(128, 3) == 18_693
    nature = build_qnet("independent", NATURE[:1])  # Mnih et al. 2015: 512 units
    convs = conv(4, 32, 8) + conv(32, 64, 4) + conv(64, 64, 3)
    assert n_params(nature) == convs + linear(3136, 512) + linear(512, 6) == 1_687_206
    # the module names a saved model holds
    assert list(minatar.state_dict()) == [
        "inputs.layers.4x10x10_bool.1.weight",
        "inputs.layers.4x10x10_bool.1.bias",
        "inputs.layers.7x10x10_bool.1.weight",
        "inputs.layers.7x10x10_bool.1.bias",
        "body.1.weight",
        "body.1.bias",
        "heads.heads.A.advantage.weight",
        "heads.heads.A.advantage.bias",
        "heads.heads.B.advantage.weight",
        "heads.heads.B.advantage.bias",
    ]
    assert [k for k in vector.state_dict() if k.startswith("body.")] == [
        "body.0.weight",
        "body.0.bias",
    ]


# --- save, load and resume with a width key ---------------------------------------------------

WIDE_RUNS = {
    "mlp": ("classic:CartPole", {"hidden_size": 24, "mlp_layers": 3}),
    "conv": ("minatar:Breakout", {"hidden_size": 16, "conv_filters": 8}),
}


@pytest.fixture(scope="module", params=sorted(WIDE_RUNS))
def wide(request, tmp_path_factory):
    """A model trained with non-default widths (its run folder holds a final checkpoint)."""
    tasks, widths = WIDE_RUNS[request.param]
    run_dir = tmp_path_factory.mktemp("widths") / "run"
    settings = tiny_config.TINY | {"scheme": "shared", "checkpoint_freq": 200, "seed": 0}
    model = MultiTaskDQN(tasks, run_dir=run_dir, **settings, **widths)
    model.learn(total_steps_per_task=300, evaluate=False)
    assert model.state.updates > 0
    return request.param, model


def assert_width(model: MultiTaskDQN, kind: str) -> None:
    """The model's net has the width its run set (not the default)."""
    net = model.learner.online
    if kind == "mlp":
        assert model.config.mlp_layers == 3
        assert net.widths.mlp_layers == 3 and len(net.body) == 4  # two (Linear, ReLU) pairs
        assert net.state_dict()["body.2.weight"].shape == (24, 24)
    else:
        assert model.config.conv_filters == 8
        (layer,) = net.inputs.layers.values()
        assert layer[1].out_channels == 8
        assert net.state_dict()["body.1.weight"].shape == (16, 8 * 8 * 8)


def assert_same_q_values(a: MultiTaskDQN, b: MultiTaskDQN) -> None:
    """Equal weights, and equal Q-values on sampled observations of every task."""
    state_a, state_b = a.learner.online.state_dict(), b.learner.online.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    for task in a.task_specs:
        space = task.observation_space
        space.seed(0)
        obs = np.stack([space.sample() for _ in range(32)])
        assert torch.equal(a.policy.q_values({task.name: obs}), b.policy.q_values({task.name: obs}))


def test_a_width_key_changes_the_saved_model(wide, tmp_path):
    kind, model = wide
    assert_width(model, kind)
    tasks, _ = WIDE_RUNS[kind]
    default = MultiTaskDQN(tasks, run_dir=tmp_path / "default", **tiny_config.TINY)
    shapes = [
        {k: tuple(v.shape) for k, v in m.learner.online.state_dict().items()}
        for m in (model, default)
    ]
    assert shapes[0] != shapes[1]


def test_save_and_load_rebuild_the_width(wide, tmp_path):
    kind, model = wide
    loaded = MultiTaskDQN.load(model.save(tmp_path / "wide.pt"))
    assert loaded.config == model.config
    assert_width(loaded, kind)
    assert_same_q_values(loaded, model)


def test_the_run_folders_model_loads_with_its_width(wide):
    kind, model = wide
    loaded = MultiTaskDQN.load(model.run_dir / MODEL_FILE)
    assert_width(loaded, kind)
    assert_same_q_values(loaded, model)


def test_resume_rebuilds_the_width(wide):
    kind, model = wide
    resumed = MultiTaskDQN.resume(model.run_dir)
    assert resumed.state.env_steps == 300
    assert_width(resumed, kind)
    assert_same_q_values(resumed, model)
