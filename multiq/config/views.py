"""Views of a config: small dataclasses of the keys one part of multiq takes (the learner's
hyperparameters, a scheme's options) instead of the whole `Config`.

A view repeats no default: each field is `declared("key")`, whose default is the key's declared
one, and `ConfigView.from_config` reads the fields' keys from a config.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any, TypeVar

from multiq.config.keys import KEYS

V = TypeVar("V", bound="ConfigView")


def declared(name: str) -> Any:
    """A dataclass field whose default is config key `name`'s declared default.

    Raises:
        KeyError: `name` is not a config key (at import of the view).
    """
    default = KEYS[name].default
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=functools.partial(copy.deepcopy, default))
    return dataclasses.field(default=default)


class ConfigView:
    """Base of the views: dataclasses whose fields are config keys of the same names."""

    @classmethod
    def from_config(cls: type[V], config: Any, **changes: Any) -> V:
        """The view of `config` (a `Config`, or any object with the keys as attributes), with
        `changes` on top."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # the views are dataclasses
        values = {f.name: getattr(config, f.name) for f in fields}
        return cls(**{**values, **changes})
