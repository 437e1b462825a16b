"""Rules between keys, which no single key's declaration can state.

Each rule names its keys, a predicate on their values in that order, and a message formatted
with the values that says how to fix the config. They are checked after the per-key checks, and
only when each of their keys passed its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from multiq.config.convert import show


@dataclass(frozen=True)
class CrossRule:
    """`holds(*values of keys)` must be true; else `message` (formatted with the values)."""

    keys: tuple[str, ...]
    holds: Callable[..., bool]
    message: str


CROSS_RULES: tuple[CrossRule, ...] = (
    CrossRule(
        ("exploration_final_eps", "exploration_initial_eps"),
        lambda final, initial: final <= initial,
        "exploration_final_eps ({exploration_final_eps}) > exploration_initial_eps "
        "({exploration_initial_eps}): epsilon would rise during training; lower "
        "exploration_final_eps or raise exploration_initial_eps",
    ),
    CrossRule(
        ("routing_tau_end", "routing_tau_start"),
        lambda end, start: end <= start,
        "routing_tau_end ({routing_tau_end}) > routing_tau_start ({routing_tau_start}): the "
        "Gumbel temperature anneals downwards; lower routing_tau_end or raise routing_tau_start",
    ),
    CrossRule(
        ("inner_learning_starts", "inner_steps"),
        lambda starts, steps: starts < steps,
        "inner_learning_starts ({inner_learning_starts}) >= inner_steps ({inner_steps}): an "
        "inner loop would never update; lower inner_learning_starts or raise inner_steps",
    ),
    CrossRule(
        ("n_step", "buffer_size"),
        lambda n_step, buffer_size: n_step < buffer_size,
        "n_step ({n_step}) >= buffer_size ({buffer_size}): the buffer cannot hold an n-step "
        "transition; lower n_step or raise buffer_size",
    ),
    CrossRule(
        ("batch_size", "buffer_size"),
        lambda batch_size, buffer_size: batch_size <= buffer_size,
        "batch_size ({batch_size}) > buffer_size ({buffer_size}): a batch would be larger than "
        "the replay buffer; lower batch_size or raise buffer_size",
    ),
    CrossRule(
        ("collectors", "env_backend"),
        lambda collectors, backend: collectors == 0 or backend == "inprocess",
        "collectors ({collectors}) step their envs inside Ray actors, so env_backend "
        "({env_backend}) cannot apply; set collectors 0 or env_backend inprocess",
    ),
    CrossRule(
        ("async_updates", "env_backend"),
        lambda async_updates, backend: async_updates is not True or backend != "subprocess",
        "async_updates steps the envs in a daemon child process, which cannot start the env "
        "worker processes of env_backend subprocess; set async_updates false or auto (auto "
        "keeps subprocess envs in the training process), or env_backend inprocess or envpool",
    ),
    CrossRule(
        ("learning_starts", "train_freq", "n_envs", "total_steps_per_task"),
        lambda starts, freq, n_envs, total: starts + freq * n_envs <= total,
        "learning_starts ({learning_starts}) + train_freq ({train_freq}) * n_envs ({n_envs}) > "
        "total_steps_per_task ({total_steps_per_task}): no update would ever run; lower "
        "learning_starts or raise total_steps_per_task",
    ),
)


def cross_errors(values: Mapping[str, Any], invalid: Collection[str]) -> list[str]:
    """Messages of the rules `values` (key -> value) break, skipping rules on `invalid` keys."""
    errors = []
    for rule in CROSS_RULES:
        if any(key in invalid for key in rule.keys):
            continue
        args = [values[key] for key in rule.keys]
        if not rule.holds(*args):
            errors.append(rule.message.format(**{k: show(values[k]) for k in rule.keys}))
    return errors
