"""The `progressive` scheme (Rusu et al. 2016): a column per task, adapter shapes for every
observation family, earlier columns bit-identical while a later one trains (its adapters and the
input layers it owns for earlier columns get gradients), a later column starting as a copy of
the newest one, and columns built from a trained shared / independent net."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from multiq.errors import TaskError
from multiq.nets import SchemeOptions, build_qnet
from multiq.nets.progressive import ALPHA_INIT, ProgressiveQNet, column_groups
from multiq.tasks.spec import TaskSpec

HIDDEN = 16


def spec(name: str, shape, dtype, actions: int, high: float = 1.0) -> TaskSpec:
    space = gym.spaces.Box(0, high, shape, dtype)
    return TaskSpec(name, f"{name}-v0", None, space, gym.spaces.Discrete(actions))


def obs_of(task: TaskSpec, rows: int = 5, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    high = float(np.max(task.observation_space.high))
    values = rng.uniform(0, high, size=(rows, *task.obs_shape))
    if task.obs_dtype == np.bool_:
        return torch.as_tensor(values > 0.5)
    return torch.as_tensor(values.astype(task.obs_dtype))


def build(tasks, scheme="progressive", seed=0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return build_qnet(scheme, tasks, HIDDEN, False, SchemeOptions(**options)).eval()


# (family, the two tasks' (shape, dtype, high), options, hand-computed adapter shapes of
# column "b" from column "a": one (V weight, U weight) per layer after the first, then the head's)
FAMILIES = [
    (
        "mlp",
        [((4,), np.float32, 1.0), ((6,), np.float32, 1.0)],
        {"mlp_layers": 2},
        [((8, 16), (16, 8)), ((8, 16), (16, 8))],
    ),
    (
        "minatar",  # 16 3x3 filters on 10x10 -> 16x8x8; V: 1x1 conv to 8 channels
        [((4, 10, 10), np.bool_, 1.0), ((7, 10, 10), np.bool_, 1.0)],
        {},
        [((8, 16, 1, 1), (16, 8 * 8 * 8)), ((8, 16), (16, 8))],
    ),
    (
        "minigrid",  # 7x7x3 index grids (uint8 up to 10): the MinAtar conv -> 16x5x5
        [((3, 7, 7), np.uint8, 10.0), ((3, 7, 7), np.uint8, 10.0)],
        {},
        [((8, 16, 1, 1), (16, 8 * 5 * 5)), ((8, 16), (16, 8))],
    ),
    (
        "nature",  # 84x84 -> 32x20x20 -> 64x9x9 -> 64x7x7 -> 32 (cnn_hidden_size)
        [((4, 84, 84), np.uint8, 255.0), ((2, 84, 84), np.uint8, 255.0)],
        {"cnn_hidden_size": 32},
        [
            ((16, 32, 1, 1), (64, 16, 4, 4)),  # U: conv2's shape (4x4, stride 2)
            ((32, 64, 1, 1), (64, 32, 3, 3)),
            ((32, 64, 1, 1), (32, 32 * 7 * 7)),
            ((16, 32), (32, 16)),
        ],
    ),
]


@pytest.mark.parametrize(("family", "shapes", "options", "adapters"), FAMILIES, ids=lambda v: v)
def test_adapter_shapes_for_every_observation_family(family, shapes, options, adapters):
    a, b = (
        spec(n, shape, dtype, 3, high) for n, (shape, dtype, high) in zip("ab", shapes, strict=True)
    )
    net = build([a], **options)
    net.add_task(b)
    laterals = net.columns["b"].laterals
    assert list(laterals) == ["a"] and list(net.columns["a"].laterals) == []
    got = [
        (tuple(adapter.V.weight.shape), tuple(_u_linear(adapter.U).weight.shape))
        for adapter in laterals["a"]
    ]
    assert got == adapters
    assert all(adapter.alpha.item() == pytest.approx(ALPHA_INIT) for adapter in laterals["a"])
    # observations of another signature: column a gets an input layer owned by column b
    assert list(net.columns["b"].foreign) == (["a"] if shapes[0] != shapes[1] else [])
    q = net({"a": obs_of(a), "b": obs_of(b)})
    assert q.shape == (10, 3) and torch.isfinite(q).all()


def _u_linear(module: nn.Module) -> nn.Module:
    return module[-1] if isinstance(module, nn.Sequential) else module


def test_a_column_per_task_and_each_parameter_in_one_group():
    tasks = [spec(n, (4,), np.float32, 2) for n in "abc"]
    net = build(tasks, mlp_layers=1)  # one hidden layer: the only adapter is the head's
    assert list(net.columns) == ["a", "b", "c"]
    assert [list(net.columns[n].laterals) for n in "abc"] == [[], ["a"], ["a", "b"]]
    groups = net.param_groups()
    assert sorted(groups) == sorted(column_groups("abc"))
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    counts = net.column_parameters()
    assert sum(counts.values()) == sum(p.numel() for p in net.parameters())
    # column a: 4*16+16 input, 2*16+2 head; b adds a head adapter 16*8+8 + 8*16+16 + alpha
    assert counts["a"] == 4 * 16 + 16 + 16 * 2 + 2
    assert counts["b"] == counts["a"] + (16 * 8 + 8) + (8 * 16 + 16) + 1
    net.add_task(spec("d", (4,), np.float32, 2))
    assert list(net.columns) == ["a", "b", "c", "d"]


def test_joining_task_that_needs_another_encoder_is_refused():
    net = build([spec("a", (4,), np.float32, 2)])
    with pytest.raises(TaskError, match="progressive"):
        net.add_task(spec("img", (4, 10, 10), np.bool_, 3))


@pytest.mark.parametrize("b_shape", [(4, 10, 10), (6, 10, 10)], ids=["same-obs", "other-obs"])
def test_earlier_column_is_bit_identical_while_a_later_one_trains(b_shape):
    a = spec("a", (4, 10, 10), np.bool_, 3)
    b = spec("b", b_shape, np.bool_, 5)
    net = build([a]).train()
    net.add_task(b)
    x_a, x_b = obs_of(a, seed=1), obs_of(b, seed=2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        q_a = net({"a": x_a})
    groups = net.param_groups()
    for name in column_groups(["a"]):  # as the learner freezes a phase's frozen groups
        for p in groups[name]:
            p.requires_grad_(False)
    trainable = [p for g in column_groups(["b"]) for p in groups[g]]
    optimizer = torch.optim.Adam(trainable, lr=1e-3)
    for _ in range(5):
        optimizer.zero_grad()
        (net({"b": x_b}) - 1).pow(2).mean().backward()  # towards Q = 1
        optimizer.step()
    after = net.state_dict()
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("columns.b.", "heads.heads.b.")) for k in moved)
    assert torch.equal(net({"a": x_a}), q_a)
    laterals = [p for p in net.columns["b"].laterals.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in laterals)
    foreign = list(net.columns["b"].foreign.parameters())
    assert bool(foreign) == (b_shape != a.obs_shape)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in foreign)


def test_a_task_added_later_starts_as_a_copy_of_the_newest_column():
    tasks = [spec(n, (4, 10, 10), np.bool_, 3) for n in "ab"]
    net = build(tasks)  # constructor columns are fresh
    c = spec("c", (4, 10, 10), np.bool_, 3)
    x = obs_of(c)
    assert not torch.equal(net({"a": x}), net({"b": x}))
    net.add_task(c)
    assert torch.equal(net.columns["c"].body[1].weight, net.columns["b"].body[1].weight)
    assert not torch.equal(net({"c": x}), net({"b": x}))  # its head starts random
    assert not net.inherit_head("a", ["b"])  # the first column copied none
    assert net.inherit_head("c", ["a", "b"])  # head_init mean: the head of the column it copies
    assert torch.equal(net({"c": x}), net({"b": x}))  # the adapter from b starts at 0
    adapters = net.columns["c"].laterals["b"]
    assert all(torch.count_nonzero(_u_linear(a.U).weight) == 0 for a in adapters)
    # other actions: no head to inherit, the body still the copy
    net.add_task(spec("d", (4, 10, 10), np.bool_, 6))
    assert not net.inherit_head("d", ["a", "b", "c"])
    assert torch.equal(net.columns["d"].body[1].weight, net.columns["c"].body[1].weight)
    assert net({"d": x}).shape == (5, 6)


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_columns_take_a_trained_shared_or_independent_net(scheme):
    tasks = [spec("a", (4, 10, 10), np.bool_, 3), spec("b", (7, 10, 10), np.bool_, 5)]
    source = build(tasks, scheme=scheme, seed=1)
    net = build(tasks, seed=2)
    assert isinstance(net, ProgressiveQNet)
    net.load_source(scheme, source.state_dict())
    for task in tasks:
        x = {task.name: obs_of(task)}
        torch.testing.assert_close(net(x), source(x), rtol=0, atol=1e-6)


def test_columns_refuse_the_weights_of_other_schemes():
    tasks = [spec("a", (4,), np.float32, 2)]
    net = build(tasks)
    with pytest.raises(TaskError, match="shared / independent / progressive"):
        net.load_source("routed", build(tasks, scheme="routed").state_dict())
