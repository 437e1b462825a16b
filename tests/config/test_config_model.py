"""`multiq.config.model`: registry names checked without torch, given keys in equality and
repr, YAML grouped by section or flat, and the run folder's config.yaml written by runio."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from multiq.config import Config
from multiq.errors import ConfigError
from multiq.runio.config_file import save_config
from multiq.runio.layout import CONFIG_FILE


@pytest.mark.parametrize(
    ("key", "typo", "hint"),
    [
        ("scheme", "shraed", "shared"),
        ("balancer", "gradnrom", "gradnorm"),
        ("task_schedule", "uniforme", "uniform"),
        ("meta_algo", "reptil", "reptile"),
        ("env_backend", "subprocess_", "subprocess"),
    ],
)
def test_a_misspelt_registry_name_is_refused_when_the_config_is_built(key, typo, hint):
    with pytest.raises(ConfigError, match=rf"^{key} must be one of .*got '{typo}'") as info:
        Config(**{key: typo})
    assert str(info.value).endswith(f"; did you mean {hint!r}?")
    with pytest.raises(ConfigError, match=f"did you mean {hint!r}"):
        Config().with_overrides([f"{key}={typo}"])


def test_building_a_config_imports_no_torch():
    code = (
        "import sys, multiq.config; multiq.config.Config(scheme='shared', balancer='pcgrad'); "
        "multiq.config.Config.from_dict({'net': {'scheme': 'routed'}}); "
        "import multiq.config.help; multiq.config.help.format_keys(multiq.config.help.key_help()); "
        "sys.exit(int('torch' in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or "torch was imported"


def test_given_keys_are_part_of_equality():
    assert Config() != Config(learning_rate=2.5e-4)
    assert Config(seed=1) == Config(seed=1) == Config().replace(seed=1)
    assert Config(seed=1) != Config(seed=2)
    assert Config() != "Config()"
    with pytest.raises(TypeError):
        hash(Config())


def test_the_repr_lists_the_given_keys_and_builds_an_equal_config():
    config = Config(tasks="classic", learning_rate=1e-3).replace(seed=4)
    assert repr(config) == "Config(tasks='classic', seed=4, learning_rate=0.001)"
    assert eval(repr(config), {"Config": Config}) == config  # noqa: S307 - our own repr
    assert repr(Config()) == "Config()"
    assert repr(Config().settled()).count("=") == len(Config.keys())


def test_yaml_with_sections_and_flat_yaml_give_equal_configs(tmp_path):
    flat, grouped = tmp_path / "flat.yaml", tmp_path / "grouped.yaml"
    flat.write_text("tasks: classic\nscheme: routed\nrouting: gumbel\nlearning_rate: 1e-3\n")
    grouped.write_text(
        "run:\n  tasks: classic\nnet:\n  scheme: routed\n  routing: gumbel\n"
        "dqn: {learning_rate: 1e-3}\nreplay:\n"  # an empty section: its keys commented out
    )
    assert Config.from_yaml(grouped) == Config.from_yaml(flat)
    assert Config.from_yaml(grouped).given_keys == {"tasks", "scheme", "routing", "learning_rate"}


def test_sections_and_flat_keys_mix():
    config = Config.from_dict({"net": {"hidden_size": 64}, "seed": 2})
    assert config == Config(hidden_size=64, seed=2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"net": {"learning_rate": 1e-3}},
            "net.learning_rate: learning_rate belongs to section dqn",
        ),
        ({"net": {"hiden_size": 8}}, "unknown net key 'hiden_size'; did you mean 'hidden_size'?"),
        ({"net": 5}, "section net: expected a mapping of its keys, got int"),
        ({"seed": 1, "run": {"seed": 2}}, "seed is given twice"),
        ({"nett": {"scheme": "shared"}}, "unknown config key 'nett'; did you mean 'net'?"),
    ],
)
def test_section_mistakes_are_refused(data, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        Config.from_dict(data)


def test_save_config_writes_the_run_folders_file(tmp_path):
    path = save_config(Config(seed=3), tmp_path)
    assert path == tmp_path / CONFIG_FILE
    assert Config.from_yaml(path) == Config(seed=3).settled()
    assert os.listdir(tmp_path) == [CONFIG_FILE]


def test_to_yaml_still_writes_with_a_deprecation_warning(tmp_path):
    with pytest.warns(DeprecationWarning, match="save_config"):
        path = Config(seed=5).to_yaml(tmp_path / "c.yaml")
    assert Config.from_yaml(path).seed == 5


def test_config_file_is_still_importable_from_the_config_package():
    import multiq.config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert multiq.config.CONFIG_FILE == CONFIG_FILE
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
