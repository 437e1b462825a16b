"""Options of the sharing schemes that take more than a hidden size and a head type."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from multiq.errors import ConfigError

TASK_EMBEDDINGS = ("onehot", "learned")
PRIVATE_MERGES = ("sum", "concat")
ROUTINGS = ("softmax", "gumbel")


@dataclass
class SchemeOptions:
    """Scheme settings, named as the `Config` keys; each scheme reads the ones it needs.

    Attributes:
        task_embedding: `conditioned`: ``onehot`` (T dims) or ``learned`` vectors.
        task_embedding_dim: `conditioned`: size of a learned task embedding.
        private_merge: `shared-private`: ``sum`` or ``concat`` shared and private features.
        routing: `routed`: ``softmax`` over learned logits or ``gumbel`` (Gumbel-softmax).
        routing_modules: `routed`: modules K per routed layer.
        routing_tau_start: `routed` + gumbel: temperature at the start of training.
        routing_tau_end: `routed` + gumbel: temperature at the end of training.
        routing_hard: `routed` + gumbel: one-hot forward, soft gradient (straight-through).
    """

    task_embedding: str = "onehot"
    task_embedding_dim: int = 16
    private_merge: str = "sum"
    routing: str = "softmax"
    routing_modules: int = 4
    routing_tau_start: float = 1.0
    routing_tau_end: float = 0.1
    routing_hard: bool = False


def check_choice(key: str, value: str, allowed: Iterable[str]) -> None:
    """Raises ConfigError unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
