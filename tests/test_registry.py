"""Registry lookup: the entry, or an error naming the closest valid name and all of them."""

import pytest

from multiq.errors import ConfigError
from multiq.registry import lookup

REGISTRY = {"alpha": 1, "beta": 2}


def test_lookup_returns_the_entry():
    assert lookup(REGISTRY, "beta", "thing", "things") == 2


def test_lookup_suggests_the_closest_name():
    with pytest.raises(
        ConfigError,
        match=r"unknown thing 'alpah'; did you mean 'alpha'\? "
        r"available things: \['alpha', 'beta'\]",
    ):
        lookup(REGISTRY, "alpah", "thing", "things")


def test_lookup_without_a_close_name_lists_all():
    with pytest.raises(ConfigError, match=r"unknown thing 'zzz'; available things"):
        lookup(REGISTRY, "zzz", "thing", "things")
