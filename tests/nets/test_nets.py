"""Q-network schemes: shapes, parameter sharing, dueling, encoder choice and errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.agents.policy import Policy
from multiq.errors import ConfigError, TaskError
from multiq.nets import build_qnet
from multiq.nets.encoders import ToFloat, encoder_for
from multiq.tasks.spec import TaskSet, TaskSpec

MINATAR_CHANNELS = [4, 4, 7, 10, 6]
MINATAR_ACTIONS = [5, 3, 3, 6, 4]
HIDDEN = 32


@pytest.fixture(scope="module")
def minatar() -> TaskSet:
    return make_taskset("minatar")


def spec(name, shape, n_actions, dtype=np.float32, low=-1.0, high=1.0) -> TaskSpec:
    space = gym.spaces.Box(low, high, shape, dtype)
    return TaskSpec(name, f"{name}-v0", None, space, gym.spaces.Discrete(n_actions))


def random_obs(tasks, sizes, seed=0) -> dict[str, torch.Tensor]:
    """Task name -> [n, *obs_shape]; the dict's order (the tasks' order) is the row order."""
    gen = torch.Generator().manual_seed(seed)
    obs = {}
    for t, n in zip(tasks, sizes, strict=True):
        x = torch.rand((n, *t.obs_shape), generator=gen)
        obs[t.name] = x < 0.3 if t.obs_dtype == np.bool_ else x
    return obs


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def input_layer(net, name: str) -> torch.nn.Module:
    """The input layer task `name` uses (input layers are keyed by observation signature)."""
    return net.inputs.layers[net.inputs.task_signature[name]]


def test_minatar_suite_spaces(minatar):
    assert [t.obs_shape[0] for t in minatar] == MINATAR_CHANNELS
    assert [t.num_actions for t in minatar] == MINATAR_ACTIONS


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_output_shape_with_uneven_and_empty_batches(minatar, scheme):
    net = build_qnet(scheme, minatar, hidden_size=HIDDEN)
    sizes = [3, 0, 2, 1, 4]
    q = net(random_obs(minatar, sizes))
    assert q.shape == (10, 6)
    assert net.num_actions == dict(zip(minatar.names, MINATAR_ACTIONS, strict=True))
    valid = Policy(net).valid_actions(minatar.names)
    assert valid.tolist() == [[a < n for a in range(6)] for n in MINATAR_ACTIONS]
    assert torch.isfinite(q).all()


def test_shared_has_input_layers_per_signature_one_body_one_head_per_task(minatar):
    net = build_qnet("shared", minatar, hidden_size=HIDDEN)
    # input layers are keyed by observation signature: Asterix and Breakout (both 4x10x10 bool)
    # share one, so 5 games have 4 input layers (one per task before the name-keyed refactor)
    assert len(net.inputs.layers) == 4
    assert input_layer(net, "Asterix") is input_layer(net, "Breakout")
    assert net.inputs.task_signature["Asterix"] == "4x10x10_bool"
    convs = [input_layer(net, name)[1] for name in minatar.names]
    assert [c.in_channels for c in convs] == MINATAR_CHANNELS
    assert all(c.out_channels == 16 for c in convs)
    # one body: Flatten -> Linear(16 * 8 * 8, hidden)
    linears = [m for m in net.body.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16 * 8 * 8, HIDDEN)]
    # one head per task with exactly A_t outputs (no longer one wide 5 x 6 layer)
    assert list(net.heads.heads) == minatar.names
    heads = [net.heads.heads[name] for name in minatar.names]
    assert all(h.advantage.in_features == HIDDEN for h in heads)
    assert [h.advantage.out_features for h in heads] == MINATAR_ACTIONS
    assert all(h.value is None for h in heads)
    total = n_params(net.inputs) + n_params(net.body) + n_params(net.heads)
    assert n_params(net) == total


def test_shared_body_gets_gradient_from_each_task_but_inputs_only_from_their_own(minatar):
    net = build_qnet("shared", minatar, hidden_size=HIDDEN)
    q = net(random_obs(minatar, [2, 2, 2, 2, 2]))
    q[0:2, :5].sum().backward()  # task 0's (Asterix's) rows only
    assert net.body[1].weight.grad.abs().sum() > 0
    own = net.inputs.task_signature["Asterix"]
    assert net.inputs.layers[own][1].weight.grad.abs().sum() > 0
    # the other signatures' layers (Breakout shares Asterix's layer, so it is not among them)
    others = [layer for key, layer in net.inputs.layers.items() if key != own]
    assert len(others) == 3
    for layer in others:
        assert layer[1].weight.grad is None or layer[1].weight.grad.abs().sum() == 0
    # only task 0's head is used
    grads = [net.heads.heads[name].advantage.weight.grad for name in minatar.names]
    assert grads[0].abs().sum() > 0
    assert all(g is None or g.abs().sum() == 0 for g in grads[1:])


def test_identical_spaces_share_the_input_layer():
    tasks = TaskSet([spec("a", (4, 10, 10), 5, bool, 0, 1), spec("b", (4, 10, 10), 3, bool, 0, 1)])
    net = build_qnet("shared", tasks, hidden_size=HIDDEN)
    assert len(net.inputs.layers) == 1
    assert net(random_obs(tasks, [3, 2])).shape == (5, 5)


def test_independent_shares_nothing(minatar):
    net = build_qnet("independent", minatar, hidden_size=HIDDEN)
    singles = [build_qnet("independent", TaskSet([t]), hidden_size=HIDDEN) for t in minatar]
    assert n_params(net) == sum(n_params(s) for s in singles)
    assert len({id(p) for p in net.parameters()}) == len(list(net.parameters()))
    shared = build_qnet("shared", minatar, hidden_size=HIDDEN)
    assert n_params(shared) < n_params(net)


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_one_tasks_obs_does_not_change_another_tasks_q(minatar, scheme):
    torch.manual_seed(0)
    net = build_qnet(scheme, minatar, hidden_size=HIDDEN).eval()
    obs = random_obs(minatar, [2] * 5, seed=1)
    with torch.no_grad():
        before = net(obs)
        obs["Asterix"] = ~obs["Asterix"]  # task 0's rows
        after = net(obs)
    assert not torch.allclose(before[0:2], after[0:2])
    torch.testing.assert_close(before[2:], after[2:])


def test_independent_task_gradient_stays_in_its_own_net(minatar):
    net = build_qnet("independent", minatar, hidden_size=HIDDEN)
    q = net(random_obs(minatar, [2] * 5))
    q[2:4, :3].sum().backward()  # task 1 (Breakout) only
    groups = net.param_groups()
    # each task's net: its private encoder and its head
    assert set(groups) == {f"{kind}/{n}" for kind in ("private", "head") for n in minatar.names}
    for group, params in groups.items():
        used = any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        assert used == group.endswith("/Breakout"), group


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_dueling_q_is_value_plus_centred_advantage_over_valid_actions(scheme):
    torch.manual_seed(0)
    tasks = TaskSet([spec("five", (4,), 5), spec("two", (3,), 2)])
    net = build_qnet(scheme, tasks, hidden_size=HIDDEN, dueling=True)
    obs = random_obs(tasks, [3, 4])
    with torch.no_grad():
        q = net(obs)
        if scheme == "shared":
            features = dict(zip(obs, net.encode(obs).split([3, 4]), strict=True))
        else:
            features = {name: net.private[name](x) for name, x in obs.items()}
        parts_adv, parts_val = [], []
        for name, n in zip(obs, [5, 2], strict=True):
            head = net.heads.heads[name]
            a = head.advantage(features[name])
            parts_adv.append(torch.nn.functional.pad(a, (0, 5 - n)))
            parts_val.append(head.value(features[name])[:, 0])
        adv, value = torch.cat(parts_adv), torch.cat(parts_val)
    counts = torch.tensor([5] * 3 + [2] * 4)
    for row in range(7):
        n = counts[row]
        expected = value[row] + adv[row, :n] - adv[row, :n].mean()
        torch.testing.assert_close(q[row, :n], expected)
        # identifiability: the mean of Q over the valid actions is V
        torch.testing.assert_close(q[row, :n].mean(), value[row])
    # padding columns cannot enter the mean of "two": its head has only its own 2 actions
    # (before the per-task heads, the wide head layer computed 5 columns for it)
    assert [net.heads.heads[n].advantage.out_features for n in obs] == [5, 2]


def test_shared_mixed_vector_dims():
    tasks = make_taskset("classic")
    assert [t.obs_shape for t in tasks] == [(4,), (6,), (2,)]
    net = build_qnet("shared", tasks, hidden_size=HIDDEN)
    assert [input_layer(net, name)[1].in_features for name in tasks.names] == [4, 6, 2]
    q = net(random_obs(tasks, [2, 3, 1]))
    assert q.shape == (6, 3)


def test_shared_refuses_vector_and_image_mix_but_independent_accepts():
    tasks = TaskSet([spec("vec", (4,), 2), spec("img", (4, 10, 10), 3, bool, 0, 1)])
    with pytest.raises(TaskError, match="'independent'") as info:
        build_qnet("shared", tasks)
    # tasks join the trunk one at a time: the error names the task that does not fit ("img")
    # and the observations the trunk takes, which the first task ("vec", shape (4,)) fixed
    assert "'img'" in str(info.value) and "task 'vec''s (4,)" in str(info.value)
    net = build_qnet("independent", tasks, hidden_size=HIDDEN)
    assert net(random_obs(tasks, [2, 3])).shape == (5, 3)


def test_shared_refuses_images_of_different_sizes():
    tasks = TaskSet([spec("a", (4, 10, 10), 3, bool, 0, 1), spec("b", (4, 8, 8), 3, bool, 0, 1)])
    with pytest.raises(TaskError, match="independent"):
        build_qnet("shared", tasks)


def test_unknown_scheme_suggests_close_name(minatar):
    with pytest.raises(ConfigError, match="did you mean 'shared'"):
        build_qnet("shard", minatar)
    with pytest.raises(ConfigError, match="available schemes") as info:
        build_qnet("zzz", minatar)
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    "shape",
    [(5, 5), (3, 34, 34), (3, 2, 10), (2, 2, 2, 2)],
    ids=["2d", "between-minatar-and-nature", "too-small", "4d"],
)
@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_unsupported_obs_space_names_the_task(shape, scheme):
    tasks = TaskSet([spec("weird_task", shape, 2)])
    with pytest.raises(TaskError, match="'weird_task'.*no encoder handles"):
        build_qnet(scheme, tasks)


def test_encoder_choice_by_shape():
    assert encoder_for(gym.spaces.Box(0, 1, (7,)), "t").name == "mlp"
    assert encoder_for(gym.spaces.Box(0, 1, (4, 10, 10)), "t").name == "minatar"
    assert encoder_for(gym.spaces.Box(0, 1, (4, 32, 32)), "t").name == "minatar"
    assert encoder_for(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), "t").name == "nature"
    with pytest.raises(TaskError):
        encoder_for(gym.spaces.Discrete(3), "t")


def test_nature_cnn_forward_shape():
    tasks = TaskSet([spec("pong", (4, 84, 84), 6, np.uint8, 0, 255)])
    net = build_qnet("shared", tasks, hidden_size=HIDDEN)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert net({"pong": obs}).shape == (2, 6)


def test_to_float_scales_uint8():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    torch.testing.assert_close(ToFloat(1 / 255)(x), torch.tensor([0.0, 0.2, 1.0]))
    b = torch.tensor([True, False])
    out = ToFloat(1.0)(b)
    assert out.dtype == torch.float32 and out.tolist() == [1.0, 0.0]


def test_uint8_image_input_is_divided_by_255_bool_is_not(minatar):
    pixels = TaskSet([spec("pix", (2, 10, 10), 3, np.uint8, 0, 255)])
    layer = input_layer(build_qnet("shared", pixels, hidden_size=HIDDEN), "pix")
    assert isinstance(layer[0], ToFloat) and layer[0].scale == pytest.approx(1 / 255)
    obs = torch.randint(0, 256, (3, 2, 10, 10), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(layer(obs), layer[1:](obs.float() / 255))
    # bool MinAtar grids and uint8 planes with high <= 1 are not rescaled
    assert input_layer(build_qnet("shared", minatar), "Asterix")[0].scale == 1.0
    planes = TaskSet([spec("planes", (2, 10, 10), 3, np.uint8, 0, 1)])
    assert input_layer(build_qnet("shared", planes), "planes")[0].scale == 1.0
