"""Q-networks for many tasks: encoders, sharing schemes, heads; schemes chosen by name."""

from __future__ import annotations

from collections.abc import Sequence

from multiq.nets.base import MultiTaskQNet, task_ids_for
from multiq.nets.conditioned import ConditionedQNet
from multiq.nets.encoders import EncoderWidths, dropout_active
from multiq.nets.independent import IndependentQNet
from multiq.nets.options import SchemeOptions
from multiq.nets.progressive import ProgressiveQNet
from multiq.nets.routed import RoutedQNet
from multiq.nets.shared import SharedQNet
from multiq.nets.shared_private import SharedPrivateQNet
from multiq.registry import lookup
from multiq.tasks.spec import TaskSpec

SCHEMES: dict[str, type[MultiTaskQNet]] = {
    "independent": IndependentQNet,
    "shared": SharedQNet,
    "conditioned": ConditionedQNet,
    "shared-private": SharedPrivateQNet,
    "routed": RoutedQNet,
    "progressive": ProgressiveQNet,
}


def build_qnet(
    scheme: str,
    tasks: Sequence[TaskSpec],
    hidden_size: int = 128,
    dueling: bool = False,
    options: SchemeOptions | None = None,
) -> MultiTaskQNet:
    """Builds the Q-network of a sharing scheme from the registry.

    Args:
        scheme: a key of `SCHEMES`.
        tasks: the tasks the net serves.
        hidden_size: units of the MLP's and MinAtar net's hidden layers (and of the scheme's own).
        dueling: dueling Q heads.
        options: network options (any `SchemeOptions`, e.g. the learner's settings): the
            encoders' widths `mlp_layers`, `conv_filters`, `cnn_hidden_size`, which every scheme
            takes, `dropout` after the trunk's hidden layers (see `dropout_active`), and the
            fields named in the scheme's `option_names`. None: the defaults.
    """
    cls = lookup(SCHEMES, scheme, "scheme", "schemes")
    options = options if options is not None else SchemeOptions()
    widths = EncoderWidths(
        hidden_size=hidden_size,
        mlp_layers=options.mlp_layers,
        conv_filters=options.conv_filters,
        cnn_hidden_size=options.cnn_hidden_size,
        dropout=options.dropout,
    )
    kwargs = {name: getattr(options, name) for name in cls.option_names}
    return cls(tasks, widths=widths, dueling=dueling, **kwargs)


__all__ = [
    "SCHEMES", "EncoderWidths", "MultiTaskQNet", "SchemeOptions", "build_qnet", "dropout_active",
    "task_ids_for",
]  # fmt: skip
