"""Plugin envs: MiniGrid ids and Dict observations, `module:EnvId`, and import_env_modules."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from multiq.errors import TaskError
from multiq.nets.encoders import EncoderWidths, encoder_for
from multiq.tasks import gym_ids, make_taskset, task_entries
from multiq.tasks.gym_ids import import_env_modules, register_namespace

PLUGIN_MODULE = "plugin_env"
PLUGIN_IDS = ("MultiqPluginTest-v0", "MultiqPluginDict-v0")


@pytest.fixture
def plugin_path(monkeypatch):
    """Puts this folder on sys.path with plugin_env not imported and its ids not registered."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    _forget_plugin()
    yield
    _forget_plugin()


def _forget_plugin() -> None:
    sys.modules.pop(PLUGIN_MODULE, None)
    for env_id in PLUGIN_IDS:
        gym.registry.pop(env_id, None)


def _scale(space: gym.spaces.Box) -> float:
    return encoder_for(space, "t").input_layer(space, EncoderWidths(hidden_size=8))[0].scale


def test_minigrid_id_gives_channel_first_index_images_scaled_by_the_largest_index():
    (task,) = make_taskset("gym:MiniGrid-Empty-5x5-v0")
    space = task.observation_space
    assert (task.name, task.obs_shape, task.obs_dtype, task.num_actions) == (
        "MiniGrid-Empty-5x5",
        (3, 7, 7),
        np.uint8,
        7,
    )
    assert space.high[:, 0, 0].tolist() == [10, 5, 2]  # object, colour and state indices
    assert encoder_for(space, task.name).name == "minatar"
    assert _scale(space) == pytest.approx(1 / 10)
    obs, _ = task.make_env().reset(seed=3)
    raw, _ = gym.make("MiniGrid-Empty-5x5-v0").reset(seed=3)
    np.testing.assert_array_equal(obs, np.transpose(raw["image"], (2, 0, 1)))
    assert space.contains(obs)


def test_pixel_scale_is_unchanged():
    assert _scale(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)) == pytest.approx(1 / 255)
    assert _scale(gym.spaces.Box(0, 1, (4, 10, 10), np.bool_)) == 1.0


def test_minigrid_and_babyai_prefixes_register_on_demand(monkeypatch):
    calls = []
    monkeypatch.setitem(gym_ids.PREFIXES, "MiniGrid-", lambda: calls.append("MiniGrid"))
    monkeypatch.setitem(gym_ids.PREFIXES, "BabyAI-", lambda: calls.append("BabyAI"))
    for env_id in ("MiniGrid-Empty-5x5-v0", "BabyAI-GoToRedBall-v0", "CartPole-v1"):
        register_namespace(env_id)
    assert calls == ["MiniGrid", "BabyAI"]


def test_missing_minigrid_is_a_task_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "minigrid", None)
    with pytest.raises(TaskError, match=r"MiniGrid tasks need the minigrid package.*pip install"):
        make_taskset("gym:MiniGrid-Empty-5x5-v0")


def test_dict_space_without_image_is_refused_with_a_hint(plugin_path):
    message = (
        r"task 'MultiqPluginDict' \(plugin_env:MultiqPluginDict-v0\) has observation space "
        r"Dict\('position'.*a wrapper that returns a Box .*FlattenObservation"
    )
    with pytest.raises(TaskError, match=message) as info:
        make_taskset("gym:plugin_env:MultiqPluginDict-v0")
    assert "\n" not in str(info.value)


def test_module_env_id_imports_the_module_and_builds_the_env(plugin_path):
    (task,) = make_taskset("gym:plugin_env:MultiqPluginTest-v0")
    assert (task.name, task.env_id, task.obs_shape, task.num_actions) == (
        "MultiqPluginTest",
        "plugin_env:MultiqPluginTest-v0",
        (1,),
        2,
    )
    assert make_taskset(task_entries([task]))[0].source == task.source
    _forget_plugin()  # as in a fresh subprocess: make_env imports the module again
    env = pickle.loads(pickle.dumps(task.make_env))()
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0] and env.step(1)[0].tolist() == [1.0]


def test_module_env_id_with_an_unknown_id_suggests_close_matches(plugin_path):
    with pytest.raises(TaskError, match=r"unknown Gymnasium id 'MultiqPluginTst-v0'.*did you mean"):
        make_taskset("gym:plugin_env:MultiqPluginTst-v0")


def test_module_env_id_with_a_missing_module_is_a_task_error():
    message = r"cannot import env module 'no_such_multiq_module': No module named .*PYTHONPATH"
    with pytest.raises(TaskError, match=message):
        make_taskset("gym:no_such_multiq_module:Foo-v0")


def test_import_env_modules_registers_their_envs(plugin_path):
    assert "MultiqPluginTest-v0" not in gym.registry
    import_env_modules([PLUGIN_MODULE])
    assert "MultiqPluginTest-v0" in gym.registry
    assert make_taskset("gym:MultiqPluginTest-v0").names == ["MultiqPluginTest"]


def test_import_env_modules_names_a_module_that_cannot_be_imported(tmp_path, monkeypatch):
    (tmp_path / "multiq_broken_envs.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = r"importing env module 'multiq_broken_envs' failed: RuntimeError: boom; fix"
    with pytest.raises(TaskError, match=message):
        import_env_modules(["json", "multiq_broken_envs"])
    with pytest.raises(TaskError, match=r"cannot import env module 'no_such_multiq_mod'.*pip"):
        import_env_modules(["no_such_multiq_mod"])
    with pytest.raises(TaskError, match=r"must be a dotted module name, got 3"):
        import_env_modules([3])
