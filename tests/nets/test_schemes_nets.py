"""The `conditioned` and `shared-private` schemes: shapes, embeddings, masking, private params."""

from __future__ import annotations

import pytest
import torch

from multiq import make_taskset
from multiq.agents.losses import masked_argmax
from multiq.agents.policy import Policy
from multiq.errors import ConfigError
from multiq.nets import SCHEMES, SchemeOptions, build_qnet

HIDDEN = 32
NEW_SCHEMES = ["conditioned", "shared-private", "routed"]


@pytest.fixture(scope="module")
def minatar():
    return make_taskset("minatar")


@pytest.fixture(scope="module")
def classic():
    return make_taskset("classic:CartPole,classic:Acrobot")


def random_obs(tasks, sizes, seed=0) -> dict[str, torch.Tensor]:
    """Task name -> [n, *obs_shape]; the dict's order (the tasks' order) is the row order."""
    gen = torch.Generator().manual_seed(seed)
    return {
        t.name: torch.rand((n, *t.obs_shape), generator=gen)
        for t, n in zip(tasks, sizes, strict=True)
    }


@pytest.mark.parametrize("scheme", NEW_SCHEMES)
@pytest.mark.parametrize("dueling", [False, True])
def test_minatar_shapes_with_mixed_channels_and_actions(minatar, scheme, dueling):
    net = build_qnet(scheme, minatar, HIDDEN, dueling)
    q = net(random_obs(minatar, [3, 0, 2, 1, 4]))
    assert q.shape == (10, 6)
    assert torch.isfinite(q).all()


@pytest.mark.parametrize("scheme", NEW_SCHEMES)
def test_classic_shapes_with_mixed_vector_sizes(classic, scheme):
    assert [t.obs_shape for t in classic] == [(4,), (6,)]
    net = build_qnet(scheme, classic, HIDDEN)
    assert net(random_obs(classic, [5, 2])).shape == (7, 3)
    assert scheme in SCHEMES


@pytest.mark.parametrize(
    ("options", "bad_key"),
    [
        (SchemeOptions(task_embedding="random"), "task_embedding"),
        (SchemeOptions(private_merge="max"), "private_merge"),
        (SchemeOptions(routing="argmax"), "routing"),
    ],
)
def test_unknown_option_values_raise(classic, options, bad_key):
    scheme = {"task_embedding": "conditioned", "private_merge": "shared-private"}
    with pytest.raises(ConfigError, match=bad_key):
        build_qnet(scheme.get(bad_key, "routed"), classic, HIDDEN, options=options)


def test_conditioned_has_one_head_over_the_union_of_actions(minatar):
    net = build_qnet("conditioned", minatar, HIDDEN)
    # the head covers the union of actions (6), in chunks of output columns: Asterix's 5, then
    # the one more that Seaquest brings
    assert sum(chunk.out_features for chunk in net.advantage) == 6
    assert [chunk.out_features for chunk in net.advantage] == [5, 1]
    # one-hot embeddings: no projection; each task's one-hot selects a vector of the hidden
    # size (the column the one-hot of the task would select in a hidden layer over the
    # features and the one-hot, formerly of in_features HIDDEN + 5)
    assert net.project is None
    assert list(net.embeddings) == minatar.names
    assert all(e.shape == (HIDDEN,) for e in net.embeddings.values())
    assert (net.hidden.in_features, net.hidden.out_features) == (HIDDEN, HIDDEN)
    assert all(p.requires_grad for p in net.parameters())


def test_conditioned_learned_embedding_is_trained(classic):
    options = SchemeOptions(task_embedding="learned", task_embedding_dim=7)
    net = build_qnet("conditioned", classic, HIDDEN, options=options)
    assert [e.shape for e in net.embeddings.values()] == [(7,), (7,)]
    assert (net.project.in_features, net.project.out_features) == (7, HIDDEN)
    net(random_obs(classic, [3, 3])).sum().backward()
    assert all(e.grad.abs().sum() > 0 for e in net.embeddings.values())


def test_conditioned_output_depends_on_the_task():
    tasks = make_taskset([{"id": "classic:CartPole", "name": n} for n in ("a", "b")])
    net = build_qnet("conditioned", tasks, HIDDEN)
    obs = random_obs(tasks, [4, 0])["a"]
    q = net({"a": obs, "b": obs})
    assert not torch.allclose(q[:4], q[4:])


def test_conditioned_never_picks_a_masked_action(classic):
    net = build_qnet("conditioned", classic, HIDDEN)
    # column 2 exists only for Acrobot: the first column of the chunk Acrobot added
    assert [chunk.out_features for chunk in net.advantage] == [2, 1]
    with torch.no_grad():
        net.advantage[1].bias[0] = 1e6
    sizes = [64, 64]
    q = net(random_obs(classic, sizes))
    task_ids = net.task_ids(sizes)
    assert (q[:64].argmax(1) == 2).all()  # the raw Q of the masked column is the largest
    greedy = masked_argmax(q, Policy(net).valid_actions(classic.names)[task_ids])
    assert (greedy[:64] < 2).all()
    assert (greedy[64:] == 2).all()  # Acrobot has action 2 and takes it


@pytest.mark.parametrize(("merge", "factor"), [("sum", 1), ("concat", 2)])
def test_shared_private_feature_sizes(minatar, classic, merge, factor):
    options = SchemeOptions(private_merge=merge)
    for tasks in (minatar, classic):
        net = build_qnet("shared-private", tasks, HIDDEN, options=options)
        assert net.feature_dim == factor * HIDDEN
        assert net.encode(random_obs(tasks, [2] * len(tasks))).shape == (
            2 * len(tasks),
            net.feature_dim,
        )


@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_shared_private_private_params_are_per_task(classic, merge):
    net = build_qnet("shared-private", classic, HIDDEN, options=SchemeOptions(private_merge=merge))
    assert list(net.private) == ["CartPole", "Acrobot"]
    q = net(random_obs(classic, [4, 4]))
    q[:4].sum().backward()  # only CartPole's rows
    own, other = net.private["CartPole"], net.private["Acrobot"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in own.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in other.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.body.parameters())
