"""Options of the networks beyond the hidden size and the head type: the encoders' widths, which
every scheme takes, and the options of single schemes; a view of the ``net`` section of the
config (defaults and allowed values are the keys' declarations)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from multiq.config.names import PRIVATE_MERGES, ROUTINGS, TASK_EMBEDDINGS
from multiq.config.views import ConfigView, declared
from multiq.errors import ConfigError

__all__ = ["PRIVATE_MERGES", "ROUTINGS", "TASK_EMBEDDINGS", "SchemeOptions", "check_choice"]


@dataclass
class SchemeOptions(ConfigView):
    """Network settings, named as the `Config` keys (``multiq config task_embedding`` and so on
    say what each means): the encoders' widths, which `build_qnet` gives every scheme (with
    `hidden_size`, as `EncoderWidths`), and the scheme options, each scheme reading the ones
    its `option_names` lists."""

    task_embedding: str = declared("task_embedding")
    task_embedding_dim: int = declared("task_embedding_dim")
    private_merge: str = declared("private_merge")
    routing: str = declared("routing")
    routing_modules: int = declared("routing_modules")
    routing_tau_start: float = declared("routing_tau_start")
    routing_tau_end: float = declared("routing_tau_end")
    routing_hard: bool = declared("routing_hard")
    mlp_layers: int = declared("mlp_layers")
    conv_filters: int = declared("conv_filters")
    cnn_hidden_size: int = declared("cnn_hidden_size")
    dropout: float = declared("dropout")


def check_choice(key: str, value: str, allowed: Iterable[str]) -> None:
    """Raises ConfigError unless `value` is one of `allowed` (for options built without a
    `Config`, which checks them when it is built)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
