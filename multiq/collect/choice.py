"""Which collector steps a phase's envs: this process, a child process beside the learner
(`async_updates`) or Ray actors (`collectors`), one registry entry each (`COLLECTORS`)."""

from __future__ import annotations

from collections.abc import Callable

from multiq.collect.args import CollectorArgs
from multiq.collect.child import AsyncCollector, main_is_multiq_command
from multiq.collect.ray_actors import RayCollector
from multiq.collect.sequential import Collector
from multiq.config import Config
from multiq.envs.backends import EnvSettings
from multiq.phases.phase import Phase
from multiq.threads import usable_cores

ASYNC_AUTO_MIN_ENV_STEPS = 100_000  # async_updates auto: phases at least this long (all tasks)


def _local_collector(cfg: Config, phase: Phase, args: CollectorArgs) -> Collector:
    return Collector(args, env_settings=EnvSettings.from_config(cfg))


def _ray_collector(cfg: Config, phase: Phase, args: CollectorArgs) -> RayCollector:
    return RayCollector(
        args, collectors=cfg.collectors, chunk=cfg.collector_chunk,
        broadcast_interval=cfg.broadcast_interval, budget=phase.steps_per_task,
        address=cfg.ray_address,
    )  # fmt: skip


def _async_collector(cfg: Config, phase: Phase, args: CollectorArgs) -> AsyncCollector:
    return AsyncCollector(
        args, budget=phase.steps_per_task, chunk=cfg.async_chunk,
        env_settings=EnvSettings.from_config(cfg),
    )  # fmt: skip


AnyCollector = Collector | RayCollector | AsyncCollector
COLLECTORS: dict[str, Callable[[Config, Phase, CollectorArgs], AnyCollector]] = {
    "local": _local_collector,
    "ray": _ray_collector,
    "async": _async_collector,
}


def collector_kind(cfg: Config, phase: Phase) -> str:
    """`COLLECTORS` key of a phase: Ray actors with `collectors: N` (N >= 1, already side by
    side with the learner), else a child process with `async_updates` (``auto``: when
    `async_pays`), else this process."""
    if cfg.collectors:
        return "ray"
    wanted = cfg.async_updates
    if wanted == "auto":  # a daemon child cannot start subprocess envs' workers
        in_child = cfg.env_backend != "subprocess"
        wanted = in_child and async_pays(phase.steps_per_task * len(phase.tasks))
    return "async" if wanted else "local"


def async_pays(env_steps: int) -> bool:
    """`async_updates: auto`'s rule: a phase of >= `ASYNC_AUTO_MIN_ENV_STEPS` env steps (its
    child's start, a few seconds, is then a few percent at most), >= 2 usable cores (one for
    the child), and a main module a spawned child can import without training again (the
    `multiq` command; a script may not guard its training with ``__main__``)."""
    return (
        env_steps >= ASYNC_AUTO_MIN_ENV_STEPS and usable_cores() >= 2 and main_is_multiq_command()
    )


def build_collector(cfg: Config, phase: Phase, args: CollectorArgs) -> AnyCollector:
    """The phase's collector (`collector_kind`), built from `args` and its kind's settings."""
    return COLLECTORS[collector_kind(cfg, phase)](cfg, phase, args)
