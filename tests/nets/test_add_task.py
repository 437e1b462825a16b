"""`add_task` on every sharing scheme: held tasks' Q-values stay bit-identical, groups grow exactly.

Nets are built on the MinAtar games minus one; the left-out game joins with `add_task`. Channels
(and so input-layer signatures) are Asterix 4, Breakout 4, Freeway 7, Seaquest 10,
SpaceInvaders 6; actions 5, 3, 3, 6, 4. Seaquest joins with more actions than any held game and
a new signature; Breakout joins after Asterix with a signature that already has an input layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.errors import TaskError
from multiq.nets import SchemeOptions, build_qnet
from multiq.nets.inputs import signature

HIDDEN = 16
GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")

# (id, scheme, options)
VARIANTS = [
    ("shared", "shared", {}),
    ("independent", "independent", {}),
    ("conditioned-onehot", "conditioned", {"task_embedding": "onehot"}),
    ("conditioned-learned", "conditioned", {"task_embedding": "learned", "task_embedding_dim": 8}),
    ("shared-private-sum", "shared-private", {"private_merge": "sum"}),
    ("shared-private-concat", "shared-private", {"private_merge": "concat"}),
    ("routed-softmax", "routed", {"routing": "softmax", "routing_modules": 3}),
    ("routed-gumbel", "routed", {"routing": "gumbel", "routing_modules": 3}),
    (
        "routed-gumbel-hard",
        "routed",
        {"routing": "gumbel", "routing_modules": 3, "routing_hard": True},
    ),
]
VARIANT_IDS = [v[0] for v in VARIANTS]
TRUNK_SCHEMES = ("shared", "conditioned", "shared-private", "routed")


@pytest.fixture(scope="module")
def minatar():
    return make_taskset("minatar")


@pytest.fixture(scope="module")
def cartpole():
    return make_taskset("classic:CartPole")[0]


def build(scheme, options, specs, dueling, seed=0):
    torch.manual_seed(seed)
    net = build_qnet(scheme, specs, HIDDEN, dueling, SchemeOptions(**options))
    return net.eval()


def obs_batch(specs, rows=5, seed=1) -> dict[str, torch.Tensor]:
    """A fixed random batch per task (bool grids for MinAtar, floats otherwise)."""
    gen = torch.Generator().manual_seed(seed)
    batch = {}
    for spec in specs:
        x = torch.rand((rows, *spec.obs_shape), generator=gen)
        batch[spec.name] = x < 0.3 if spec.obs_dtype == np.bool_ else x
    return batch


def q_values(net, specs) -> dict[str, torch.Tensor]:
    """Q-values of the held tasks: one batch of all of them, and each task alone."""
    obs = obs_batch(specs)
    with torch.no_grad():
        out = {"all": net(obs).clone()}
        for name, x in obs.items():
            out[name] = net({name: x}).clone()
    return out


def group_ids(net) -> dict[str, list[int]]:
    return {g: [id(p) for p in ps] for g, ps in net.param_groups().items()}


def expected_new_groups(scheme, new, held) -> set[str]:
    """The groups a task adds: its own, plus an input layer only for a new signature."""
    own = {
        "shared": {f"head/{new.name}"},
        "independent": {f"head/{new.name}", f"private/{new.name}"},
        "conditioned": {f"embedding/{new.name}"},
        "shared-private": {f"head/{new.name}", f"private/{new.name}"},
        "routed": {f"head/{new.name}", f"routing/{new.name}"},
    }[scheme]
    if scheme != "independent" and signature(new) not in {signature(s) for s in held}:
        own.add(f"inputs/{signature(new)}")
    return own


def assert_partition(net) -> None:
    """Every parameter in exactly one group."""
    grouped = [id(p) for ps in net.param_groups().values() for p in ps]
    params = [id(p) for p in net.parameters()]
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert sorted(grouped) == sorted(params)


# --- held tasks' Q-values ----------------------------------------------------------------------


@pytest.mark.parametrize("dueling", [False, True], ids=["plain", "dueling"])
@pytest.mark.parametrize("left_out", GAMES)
@pytest.mark.parametrize(("variant", "scheme", "options"), VARIANTS, ids=VARIANT_IDS)
def test_add_task_keeps_held_q_values_bit_identical(
    minatar, variant, scheme, options, left_out, dueling
):
    held = [s for s in minatar if s.name != left_out]
    new = minatar[left_out]
    net = build(scheme, options, held, dueling)
    before = q_values(net, held)

    net.add_task(new)

    after = q_values(net, held)
    for key, q in before.items():
        assert after[key].shape == q.shape, key
        assert torch.equal(after[key], q), f"{variant}: {key} changed after adding {left_out}"
    # the new task answers with its own action count (padding only beyond the batch's widest)
    with torch.no_grad():
        q_new = net(obs_batch([new]))
    assert q_new.shape == (5, new.num_actions)
    assert torch.isfinite(q_new).all()
    assert list(net.specs) == [*[s.name for s in held], left_out]


@pytest.mark.parametrize(("variant", "scheme", "options"), VARIANTS, ids=VARIANT_IDS)
def test_seaquest_joins_with_more_actions_than_any_held_task(minatar, variant, scheme, options):
    held = [s for s in minatar if s.name != "Seaquest"]
    assert max(s.num_actions for s in held) == 5 and minatar["Seaquest"].num_actions == 6
    net = build(scheme, options, held, dueling=False)
    obs = obs_batch(held)
    with torch.no_grad():
        before = net(obs).clone()
    assert before.shape == (5 * len(held), 5)

    net.add_task(minatar["Seaquest"])

    with torch.no_grad():
        mixed = net({**obs, **obs_batch([minatar["Seaquest"]], seed=7)})
        after = net(obs)
    assert mixed.shape == (5 * 5, 6)  # the batch widens to Seaquest's 6 actions
    assert torch.equal(after, before)  # a held-only batch keeps its width and values


@pytest.mark.parametrize(("variant", "scheme", "options"), VARIANTS, ids=VARIANT_IDS)
def test_breakout_after_asterix_reuses_the_input_layer(minatar, variant, scheme, options):
    asterix, breakout = minatar["Asterix"], minatar["Breakout"]
    assert signature(asterix) == signature(breakout) == "4x10x10_bool"
    net = build(scheme, options, [asterix, minatar["Freeway"]], dueling=False)
    before_groups = set(net.param_groups())
    before = q_values(net, [asterix, minatar["Freeway"]])

    net.add_task(breakout)

    added = set(net.param_groups()) - before_groups
    assert not any(g.startswith("inputs/") for g in added), added
    assert added == expected_new_groups(scheme, breakout, [asterix, minatar["Freeway"]])
    after = q_values(net, [asterix, minatar["Freeway"]])
    assert all(torch.equal(after[k], before[k]) for k in before)
    if scheme != "independent":
        layers = net.inputs.layers
        assert list(layers) == ["4x10x10_bool", "7x10x10_bool"]
        assert net.inputs.task_signature["Breakout"] == "4x10x10_bool"


# --- parameter groups --------------------------------------------------------------------------


@pytest.mark.parametrize("dueling", [False, True], ids=["plain", "dueling"])
@pytest.mark.parametrize(("variant", "scheme", "options"), VARIANTS, ids=VARIANT_IDS)
def test_param_groups_cover_every_parameter_exactly_once(
    minatar, variant, scheme, options, dueling
):
    net = build(scheme, options, list(minatar)[:3], dueling)
    assert_partition(net)
    for spec in list(minatar)[3:]:
        net.add_task(spec)
        assert_partition(net)


@pytest.mark.parametrize("left_out", ["Seaquest", "Breakout", "SpaceInvaders"])
@pytest.mark.parametrize(("variant", "scheme", "options"), VARIANTS, ids=VARIANT_IDS)
def test_new_task_adds_exactly_its_own_groups(minatar, variant, scheme, options, left_out):
    held = [s for s in minatar if s.name != left_out]
    new = minatar[left_out]
    net = build(scheme, options, held, dueling=True)
    before = group_ids(net)

    net.add_task(new)

    after = group_ids(net)
    assert set(after) - set(before) == expected_new_groups(scheme, new, held)
    assert set(before) <= set(after)  # nothing removed or renamed
    for group, ids in before.items():
        if scheme == "conditioned" and group == "head":
            # the shared head gains an output chunk (weight, bias) only for more actions
            extra = 2 if new.num_actions > max(s.num_actions for s in held) else 0
            assert set(ids) <= set(after[group])
            assert len(after[group]) == len(ids) + extra
        else:
            assert after[group] == ids, f"group {group} changed"
    for group in set(after) - set(before):
        assert after[group], f"new group {group} is empty"


def test_group_names_for_a_shared_net(minatar):
    held = [minatar["Asterix"], minatar["Freeway"]]
    net = build("shared", {}, held, dueling=False)
    assert set(net.param_groups()) == {
        "trunk",
        "inputs/4x10x10_bool",
        "inputs/7x10x10_bool",
        "head/Asterix",
        "head/Freeway",
    }
    # a plain head is one Linear of A_t outputs: weight [A_t, F] and bias [A_t]
    head = net.param_groups()["head/Freeway"]
    assert [tuple(p.shape) for p in head] == [(3, HIDDEN), (3,)]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "scheme", "options"),
    [v for v in VARIANTS if v[1] in TRUNK_SCHEMES],
    ids=[v[0] for v in VARIANTS if v[1] in TRUNK_SCHEMES],
)
def test_task_that_cannot_share_the_trunk_raises_and_leaves_the_net_alone(
    minatar, cartpole, variant, scheme, options
):
    held = list(minatar)[:2]
    net = build(scheme, options, held, dueling=False)
    groups, before = group_ids(net), q_values(net, held)
    state = {k: v.clone() for k, v in net.state_dict().items()}

    with pytest.raises(TaskError, match="'CartPole'"):
        net.add_task(cartpole)

    assert list(net.specs) == ["Asterix", "Breakout"]
    assert group_ids(net) == groups
    assert net.state_dict().keys() == state.keys()
    after = q_values(net, held)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_independent_takes_a_task_of_another_observation_kind(minatar, cartpole):
    held = list(minatar)[:2]
    net = build("independent", {}, held, dueling=False)
    before = q_values(net, held)
    net.add_task(cartpole)
    after = q_values(net, held)
    assert all(torch.equal(after[k], before[k]) for k in before)
    with torch.no_grad():
        assert net(obs_batch([cartpole])).shape == (5, 2)


@pytest.mark.parametrize(("variant", "scheme", "options"), VARIANTS, ids=VARIANT_IDS)
def test_adding_a_taken_name_raises(minatar, variant, scheme, options):
    held = list(minatar)[:2]
    net = build(scheme, options, held, dueling=False)
    groups = group_ids(net)
    with pytest.raises(TaskError, match="'Breakout'"):
        net.add_task(minatar["Breakout"])
    assert group_ids(net) == groups
    assert list(net.specs) == ["Asterix", "Breakout"]


@pytest.mark.parametrize(
    ("variant", "scheme", "options"),
    [VARIANTS[0], VARIANTS[2]],  # heads in an nn.ModuleDict; embeddings in an nn.ParameterDict
    ids=[VARIANT_IDS[0], VARIANT_IDS[2]],
)
def test_a_task_name_with_a_dot_is_taken_or_refused_with_a_task_error(
    minatar, variant, scheme, options
):
    """Names are free text (`name:` in a task entry); torch module keys cannot hold a dot.

    Either the net takes the task, or it refuses it with a TaskError and stays as it was; a raw
    KeyError from torch (which the CLI shows as a traceback) fails this test.
    """
    held = list(minatar)[:2]
    dotted = make_taskset([{"id": "minatar:Freeway", "name": "Free.way"}])[0]
    net = build(scheme, options, held, dueling=False)
    groups, before = group_ids(net), q_values(net, held)
    try:
        net.add_task(dotted)
    except TaskError as error:
        assert "Free.way" in str(error)
        assert group_ids(net) == groups and list(net.specs) == ["Asterix", "Breakout"]
        if scheme != "independent":
            assert "Free.way" not in net.inputs.task_signature
    else:
        with torch.no_grad():
            assert net(obs_batch([dotted])).shape == (5, 3)
    after = q_values(net, held)
    assert all(torch.equal(after[k], before[k]) for k in before)
