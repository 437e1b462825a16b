"""Defaults that follow the tasks: a run takes its observation family's row of
`multiq.config.FAMILY_DEFAULTS` (the keys' `by_family` declarations) for every key the user did
not set.

The rule: when every task of the run belongs to one observation family
(`multiq.tasks.obs_family`) and the table has a row for it, each key of that row that the
config does not set explicitly (`Config.given_keys`) takes the row's value. Tasks of several
families (e.g. CartPole with MinAtar Breakout), or of a family without a row, keep the Config
defaults (the ``minatar`` row): no one family's settings would suit them all. Keys set
explicitly always keep their values. Once its tasks are known, a run's config gives every key,
as a config read back from a run folder does, so a resumed or loaded run is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multiq.config import FAMILY_DEFAULTS, Config
from multiq.errors import ConfigError
from multiq.tasks.obs_family import families_of
from multiq.tasks.spec import TaskSpec


@dataclass(frozen=True)
class TaskDefaults:
    """Which defaults a run's tasks chose, and what that changed.

    Attributes:
        families: observation family -> the names of its tasks.
        applied: the row's values put into the config (the keys it did not set).
        kept: the row's keys the config set explicitly, which kept their values.
    """

    families: Mapping[str, tuple[str, ...]]
    applied: Mapping[str, Any] = field(default_factory=dict)
    kept: tuple[str, ...] = ()

    @property
    def family(self) -> str | None:
        """The run's one observation family; None when its tasks span several."""
        return next(iter(self.families)) if len(self.families) == 1 else None

    def describe(self) -> str:
        """One line for the start of a run: the family and the values it set."""
        if self.family is None:
            spans = "; ".join(f"{f}: {', '.join(names)}" for f, names in self.families.items())
            return (
                f"defaults: the base ones (as for minatar), since the tasks span several "
                f"observation families ({spans}) and family defaults need one"
            )
        if self.family not in FAMILY_DEFAULTS:
            return (
                f"defaults for {self.family} tasks: the base ones (as for minatar; no row of "
                "their own)"
            )
        if not self.applied:
            return f"defaults for {self.family} tasks: none taken, the config sets every one"
        values = ", ".join(f"{key}={value!r}" for key, value in self.applied.items())
        kept = f"; kept as set: {', '.join(self.kept)}" if self.kept else ""
        return f"defaults for {self.family} tasks: {values} (set any of them to override{kept})"


def apply_task_defaults(cfg: Config, specs: Sequence[TaskSpec]) -> tuple[Config, TaskDefaults]:
    """The run's config: `cfg` with its tasks' family defaults in the keys it does not set (see
    the module doc), every key then counting as given.

    Args:
        cfg: the config asked for.
        specs: the run's tasks.

    Returns:
        The config (`cfg` itself when it gives every key; else a settled copy, equal to the
        config the run folder reads back, so that a second call changes nothing) and what was
        chosen.

    Raises:
        ConfigError: the family's values break a rule with the keys the config sets (e.g. the
            atari row's `learning_starts` above a smaller `total_steps_per_task`).
    """
    families = families_of(specs)
    chosen = TaskDefaults(families)
    row = FAMILY_DEFAULTS.get(chosen.family) if chosen.family is not None else None
    applied = {key: value for key, value in (row or {}).items() if key not in cfg.given_keys}
    if row is not None:
        kept = tuple(key for key in row if key not in applied)
        chosen = TaskDefaults(families, applied, kept)
    if not applied:
        return (cfg if cfg.given_keys >= set(cfg.keys()) else cfg.settled()), chosen
    try:
        return cfg.replace(**applied).settled(), chosen
    except ConfigError as error:
        raise ConfigError(
            f"{error} (the {chosen.family} defaults set {', '.join(applied)}; set any of them "
            "to override)"
        ) from None
