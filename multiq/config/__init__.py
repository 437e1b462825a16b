"""Typed, validated run configuration.

Every run writes its resolved `Config` to ``RUN_DIR/config.yaml`` (see `CONFIG_FILE`), and
`Config.from_yaml` reads it back to an equal object. Build configs with `Config.from_dict`,
`Config.from_yaml`, `Config.with_overrides` (CLI ``--set key=value``) or `Config.replace`: all of
them validate and raise `multiq.errors.ConfigError` with a message that names the offending key.

Some defaults follow the tasks: `FAMILY_DEFAULTS` holds, per observation family of the tasks
(`multiq.tasks.obs_family`), the values of the keys whose good settings differ between, say,
CartPole and Atari. A config remembers which keys were set explicitly (`Config.given_keys`);
`multiq.tasks.defaults` fills the others from the table once the run's tasks are known.

Besides its per-key types and ranges, a config obeys cross-key rules (`_CROSS_RULES`, e.g.
``batch_size <= buffer_size``), and upper limits (the ``MAX_*`` constants) keep a typo such as an
extra zero from exhausting memory or time before training starts.

YAML is read with PyYAML's safe loader plus fixes: exponent floats such as ``1e-4`` or ``1.0e5``
are numbers (YAML 1.1 reads them as strings), duplicate keys are an error, and a document may not
expand to more than `MAX_YAML_NODES` nodes through aliases ("billion laughs") nor nest deeper than
`MAX_NESTING_DEPTH` levels.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import os
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from multiq.errors import ConfigError
from multiq.runio.files import atomic_write_text
from multiq.runio.layout import CONFIG_FILE

__all__ = [
    "CONFIG_FILE",
    "CONFIG_KEYS",
    "FAMILY_DEFAULTS",
    "MAX_EVAL_EPISODES",
    "MAX_GRADIENT_STEPS",
    "MAX_HIDDEN_SIZE",
    "MAX_NESTING_DEPTH",
    "MAX_N_ENVS",
    "MAX_ROUTING_MODULES",
    "MAX_SCHEDULE_WINDOW",
    "MAX_SEED",
    "MAX_TASK_EMBEDDING_DIM",
    "MAX_YAML_NODES",
    "Config",
]

# Upper limits: far above any sensible run, low enough that a typo fails here with a message
# instead of exhausting memory or time (or raising deep inside numpy or torch).
MAX_SEED = 2**31 - 1  # numpy's legacy seeding (MinAtar) takes 32-bit seeds: room for offsets
MAX_N_ENVS = 1024
MAX_HIDDEN_SIZE = 65_536
MAX_TASK_EMBEDDING_DIM = 65_536
MAX_ROUTING_MODULES = 1024
MAX_GRADIENT_STEPS = 10_000
MAX_SCHEDULE_WINDOW = 1_000_000
MAX_EVAL_EPISODES = 10_000
MAX_YAML_NODES = 100_000  # nodes of a YAML document with every alias expanded
MAX_NESTING_DEPTH = 64  # levels of a YAML document or of a task's kwargs

# `env_backend` values: the keys of `multiq.envs.backends.ENV_BACKENDS` (a test keeps them equal;
# config stays free of the env modules' imports).
ENV_BACKEND_NAMES = ("inprocess", "subprocess", "envpool")
LOGGERS = ("csv", "tensorboard", "wandb")  # `loggers` entries (multiq.runio.tracking writes them)
_OVERRIDE_EXAMPLE = "e.g. learning_rate=1e-4 or task_weights.Breakout=2.0"


def _records_given_keys(cls: type) -> type:
    """Class decorator (outside `dataclass`): the generated `__init__` also stores the keys it
    was given, positional or by name, as `_given` (`Config.given_keys`); a copy or an
    unpickled config keeps them in its `__dict__`."""
    init = cls.__init__
    names = tuple(f.name for f in fields(cls))

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_given", frozenset([*names[: len(args)], *kwargs]))
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


@_records_given_keys
@dataclass(frozen=True)
class Config:
    """Everything that defines a run. Instances are validated on construction and immutable.

    Change a config with `replace` or `with_overrides`; both return a new, validated config.
    Step counts ending in "per task" or "env steps per task" count environment steps of one task
    (summed over its `n_envs` copies); when a task schedule steps tasks unequally, they count the
    mean over tasks (the run's budget is `T * total_steps_per_task` env steps in all).

    Defaults that follow the tasks: the keys of `FAMILY_DEFAULTS` (budget, learning rate, replay,
    exploration, ...) take the row of the tasks' observation family, e.g. ``vector`` for
    CartPole, when a run starts (`MultiTaskDQN` applies it; `multiq train` prints it). The
    values below are the ``minatar`` row; tasks of several families, or of a family without a
    row, keep them. Only keys not set explicitly follow the tasks: a key given to the
    constructor, `from_dict`, `replace` or `with_overrides` (a YAML file's keys, ``--set``, CLI
    flags, keyword arguments) keeps its value (`given_keys` lists them). Equal configs may
    differ there: ``Config() == Config(learning_rate=2.5e-4)``, but only the first lets CartPole
    change the learning rate. A run's config.yaml holds the resolved values, and reading it back
    sets every key, so a resume changes nothing.

    Attributes:
        tasks: which tasks to learn. A string: a suite name (``"minatar"``) or comma-separated
            task ids (``"gym:CartPole-v1,gym:Acrobot-v1"``); or a list whose entries are task id
            strings or mappings with keys ``id`` (required), ``name`` and ``kwargs`` (passed to
            the env constructor).
        scheme: parameter-sharing scheme name (validated by the nets registry), e.g. ``"shared"``.
        dueling: use a dueling head (separate value and advantage streams).
        hidden_size: units of the hidden layer(s); in [1, 65536] (`MAX_HIDDEN_SIZE`).
        task_embedding: scheme ``conditioned``: the task's embedding, ``onehot`` or ``learned``.
        task_embedding_dim: scheme ``conditioned``: size of a learned task embedding; in
            [1, 65536] (`MAX_TASK_EMBEDDING_DIM`).
        private_merge: scheme ``shared-private``: ``sum`` or ``concat`` the shared and private
            features.
        routing: scheme ``routed``: routing weights by ``softmax`` over learned logits, or
            ``gumbel`` (Gumbel-softmax with an annealed temperature).
        routing_modules: scheme ``routed``: modules K per routed layer; in [1, 1024]
            (`MAX_ROUTING_MODULES`).
        routing_tau_start: scheme ``routed`` with gumbel: temperature at the start; > 0.
        routing_tau_end: scheme ``routed`` with gumbel: temperature at the end of training; > 0
            and <= `routing_tau_start`.
        routing_hard: scheme ``routed``: one-hot routing forward, soft gradients
            (straight-through).
        n_envs: envs per task, stepped together; in [1, 1024] (`MAX_N_ENVS`).
        total_steps_per_task: training length in env steps per task; >= 1 and at least
            `learning_starts + train_freq * n_envs`, so that an update runs.
        learning_rate: Adam learning rate; > 0.
        buffer_size: replay capacity in transitions per task; >= 1, > `n_step` and
            >= `batch_size`.
        learning_starts: env steps per task collected before updates start; >= 0.
        batch_size: samples per task per gradient step; >= 1.
        tau: target update coefficient in (0, 1]; 1 copies the online net (hard update).
        gamma: discount factor in (0, 1].
        train_freq: run updates every this many vector steps (precisely: every
            `train_freq * n_envs * T` env steps of all tasks together, which is the same under the
            ``uniform`` task schedule, where every vector step steps every task); >= 1.
        gradient_steps: gradient steps per update; in [1, 10000] (`MAX_GRADIENT_STEPS`).
        target_update_interval: env steps per task between target updates; >= 1.
        exploration_fraction: fraction of training over which epsilon decays, in [0, 1].
        exploration_initial_eps: epsilon at the start of training, in [0, 1].
        exploration_final_eps: epsilon after the decay, in [0, 1] and <=
            `exploration_initial_eps`.
        max_grad_norm: gradient-norm clipping threshold; > 0.
        n_step: length of the n-step return; >= 1 (1 = one-step TD).
        double_q: use Double DQN targets (online net picks, target net evaluates).
        task_weights: loss weight (alpha) per task name, each >= 0 and at least one > 0;
            null gives every task weight 1. Names are checked against the tasks at train time.
        balancer: how task losses become gradients (validated by the `multiq.mtl` registry):
            ``fixed`` (weights alpha), ``uncertainty``, ``gradnorm`` or ``pcgrad``.
        gradnorm_alpha: GradNorm's asymmetry alpha; >= 0 (0 = equal gradient norms).
        popart: PopArt per-task normalisation of the Q targets; combines with any balancer,
            needs per-task heads without dueling (so not scheme ``conditioned``).
        popart_beta: step size of PopArt's running target statistics, in (0, 1].
        task_schedule: which tasks get env steps and replay samples (validated by the
            `multiq.mtl.schedules` registry): ``uniform``, ``weighted`` (by alpha),
            ``resample`` (over-sample tasks with less data or fewer episodes) or ``progress``
            (more to tasks whose return is still changing).
        schedule_uniform_mix: weight of the uniform share mixed into every schedule's shares,
            in (0, 1]: every task keeps a share >= mix / T, so it keeps stepping and has data.
        schedule_window: episodes per task the ``progress`` schedule compares; in
            [4, 1000000] (`MAX_SCHEDULE_WINDOW`).
        frozen_groups: glob patterns of parameter groups that do not train in any phase, e.g.
            ``[trunk]`` or ``["inputs/*"]``. Groups: ``trunk``, ``inputs/<signature>``,
            ``head/<task>``, and per scheme ``private/<task>``, ``routing/<task>``,
            ``embedding/<task>``, ``head`` (see `MultiTaskDQN.parameter_groups`).
        lr_scales: glob pattern of parameter groups -> learning-rate multiplier (> 0; the first
            matching pattern counts), e.g. ``{trunk: 0.1}``; null = 1 for every group.
        transfer_lambda: transfer mode ``joint``: weight lambda of the target loss in
            `L = L_source + lambda * L_target`; >= 0.
        distill_weight: weight of the distillation term (transfer mode ``distill`` and
            `multiq distill`); >= 0.
        distill_temperature: temperature tau of softmax(Q / tau) in distillation; > 0.
        rehearsal_share: continual methods ``rehearsal`` and ``distill``: the share of each
            update's samples drawn from the earlier tasks' stored replay, in (0, 1).
        ewc_lambda: continual method ``ewc``: weight lambda of the EWC penalty; >= 0.
        ewc_decay: continual method ``ewc``: online EWC's decay of the accumulated Fisher per
            finished task (1 = plain sum), in (0, 1].
        ewc_fisher_states: continual method ``ewc``: states from a finished task's replay the
            Fisher is estimated on; in [1, 100000].
        head_init: how a task added to a trained agent (`add_task`, transfer, adapt-k) gets
            its Q head: ``fresh`` (new random weights) or ``mean`` (the mean of the held heads
            with the same number of actions, e.g. the one head of a meta-trained model).
        meta_tasks: `multiq meta`: the task pool the outer loop samples from, as `tasks` (e.g.
            ``family:cartpole-physics:train``); every task needs the same spaces.
        meta_algo: `multiq meta`: the algorithm (`multiq.recipes.meta.ALGORITHMS`): ``reptile`` or
            ``fomaml``.
        meta_iterations: outer-loop iterations; in [1, 10000000].
        meta_batch_size: tasks per outer iteration (drawn without replacement); >= 1.
        meta_step_size: reptile's epsilon in `theta += epsilon * mean_i(phi_i - theta)`;
            in (0, 1].
        meta_lr: fomaml's SGD step in `theta -= lr * mean_i(grad L_i(phi_i))`; > 0.
        meta_query_steps: fomaml: env steps the adapted agent collects afresh on each task; the
            outer gradient is taken on them; >= 1.
        meta_eval_freq: outer iterations between evaluations of theta and of the adapted
            weights on the iteration's tasks; >= 0 (0 = only at the end).
        inner_steps: env steps K of one inner loop (DQN on one task from the meta-weights);
            >= 1 and > `inner_learning_starts`.
        inner_learning_starts: env steps of an inner loop (or adapt-k run) before updates.
        inner_buffer_size: replay capacity of one inner loop; >= `batch_size` (checked when
            an inner loop starts: a run without one may have a larger batch).
        inner_target_update: env steps between target-network copies in an inner loop (the
            target starts as the initial weights); >= 1.
        eval_freq: env steps per task between evaluations; >= 0 (0 = only at the end).
        eval_episodes: episodes per task per evaluation; in [1, 10000] (`MAX_EVAL_EPISODES`).
        eval_epsilon: epsilon of the evaluation policy, in [0, 1].
        checkpoint_freq: env steps per task between checkpoints; >= 0 (0 = only at the end).
        log_interval: env steps per task between rows of metrics.csv / TensorBoard; >= 1.
        save_replay: also save the replay buffers with checkpoints (compressed; MinAtar's five
            full 100k buffers take about 3.4 MB); with it a resume is exact (the same numbers
            as an uninterrupted run).
        on_env_error: what an env that raises while training does: ``stop`` the run (with a
            checkpoint) or ``restart`` it (a new env, a new episode; logged).
        env_restarts: with ``on_env_error: restart``, envs rebuilt per task per phase before
            an env error stops the run anyway; in [0, 1000].
        seed: random seed for envs, networks and sampling; in [0, 2**31 - 1] (`MAX_SEED`:
            room for the offsets added per env and evaluation below MinAtar's 32-bit limit).
        device: ``auto`` (cuda if available, else cpu), ``cpu``, ``cuda``, ``cuda:<index>`` or
            ``mps``.
        tensorboard: write TensorBoard event files to the run directory (``false`` turns
            TensorBoard off even when `loggers` lists it; kept from before `loggers`).
        loggers: where metrics go, a list of ``csv`` (metrics.csv, required: reports read it),
            ``tensorboard`` (RUN_DIR/tb) and ``wandb`` (Weights & Biases: the run's id is the
            run folder's, so a resume continues the same W&B run; offline with
            ``WANDB_MODE=offline``; needs ``pip install wandb``).
        wandb_project: the W&B project of ``wandb`` logging; a non-empty name.
        wandb_group: the W&B group of ``wandb`` logging (e.g. a sweep's name); "" for none.
        progress_bar: show a progress bar while training.
        torch_threads: intra-op threads of torch's CPU ops while multiq trains or evaluates
            (`multiq.threads`; the previous setting is restored after); 0 keeps torch's own
            (one per core); in [0, 1024].
        collectors: Ray actors that step the envs (`multiq.collect.ray_actors`), each a block
            of the active tasks, sending their transitions to the training process's replay;
            0 steps them in the training process; in [0, 1024]. Ray starts on this machine
            unless `ray_address` names a cluster.
        collector_chunk: collectors: vector steps per task an actor takes per request (its
            transitions arrive together); in [1, 1000000].
        broadcast_interval: collectors: updates between the weight snapshots sent to the
            actors (their policy is at most this many updates plus one chunk behind); >= 1.
        ray_address: collectors: the Ray cluster's HOST:PORT (or ``auto``); "" starts Ray on
            this machine.
        env_backend: how each task's envs run (`multiq.envs.backends`): ``inprocess`` (in the
            training process), ``subprocess`` (split over `env_workers` worker processes per
            task; the same transitions as in process) or ``envpool`` (Atari tasks on EnvPool
            with `env_workers` threads per task, other tasks in process; needs
            ``pip install 'multiq[envpool]'``). It applies to a run's training and evaluation
            envs; the inner loops of meta-learning and adapt-k stay in process. Not with
            `collectors`; ``subprocess`` not with `async_updates: true` (``auto`` then steps
            them from the training process).
        env_workers: processes (``subprocess``) or EnvPool threads (``envpool``) per task, each
            stepping a slice of the task's `n_envs` envs (at most `n_envs`); in [1, 1024].
        async_updates: act and learn side by side (`multiq.collect.child`): a child
            process steps the envs one chunk of `async_chunk` vector steps ahead while the
            learner updates, with the sequential loop's replay ratio and a policy at most
            2 * async_chunk - 1 vector steps behind the learner's. ``true`` always (a Python
            script that trains must then start under ``if __name__ == "__main__":``),
            ``false`` never (the envs step in the training process between updates, bit-exact
            with earlier versions), ``auto`` (default) where it is measured faster: runs
            started by the `multiq` command, on >= 2 cores, for a phase of >= 100,000 env
            steps of all tasks (`multiq.collect.choice.collector_kind`). No effect
            with `collectors` (Ray actors already act side by side).
        async_chunk: async_updates: vector steps per request to the collector process (its
            policy is at most 2 * async_chunk - 1 vector steps behind the learner); in
            [1, 1000000].
        env_imports: Python modules imported before the tasks are built, so that the envs they
            register exist (e.g. ``[my_package.envs]``); `gym:<module>:<EnvId>` does the same
            for one id.
    """

    # str "minatar" / "gym:CartPole-v1,gym:Acrobot-v1", or a list of str or
    # {"id": ..., "name": ..., "kwargs": {...}}
    tasks: str | list[str | dict[str, Any]] = "minatar"
    scheme: str = "shared"  # parameter-sharing scheme name (validated by the nets registry)
    dueling: bool = False  # dueling value/advantage head
    hidden_size: int = 128  # units of the hidden layer(s)
    task_embedding: str = "onehot"  # conditioned: onehot | learned
    task_embedding_dim: int = 16  # conditioned: size of a learned task embedding
    private_merge: str = "sum"  # shared-private: sum | concat
    routing: str = "softmax"  # routed: softmax | gumbel
    routing_modules: int = 4  # routed: modules per routed layer
    routing_tau_start: float = 1.0  # routed + gumbel: initial temperature
    routing_tau_end: float = 0.1  # routed + gumbel: final temperature
    routing_hard: bool = False  # routed: straight-through one-hot routing
    n_envs: int = 1  # envs per task, stepped together
    total_steps_per_task: int = 80_000  # training length in env steps per task
    learning_rate: float = 2.5e-4  # Adam learning rate
    buffer_size: int = 100_000  # transitions per task
    learning_starts: int = 1_000  # env steps per task before updates start
    batch_size: int = 32  # samples per task per update
    tau: float = 1.0  # target update coefficient (1 = hard copy)
    gamma: float = 0.99  # discount factor
    train_freq: int = 4  # update every N vector steps
    gradient_steps: int = 1  # gradient steps per update
    target_update_interval: int = 1_000  # env steps per task
    exploration_fraction: float = 0.1  # fraction of training over which epsilon decays
    exploration_initial_eps: float = 1.0  # epsilon at the start
    exploration_final_eps: float = 0.01  # epsilon after the decay
    max_grad_norm: float = 10.0  # gradient-norm clipping threshold
    n_step: int = 1  # n-step return length
    double_q: bool = True  # Double DQN targets
    task_weights: dict[str, float] | None = None  # alpha per task name; None = equal
    balancer: str = "fixed"  # fixed | uncertainty | gradnorm | pcgrad (multiq.mtl registry)
    gradnorm_alpha: float = 1.5  # GradNorm asymmetry
    popart: bool = False  # PopArt target normalisation
    popart_beta: float = 3e-4  # PopArt statistics step size
    task_schedule: str = "uniform"  # uniform | weighted | resample | progress
    schedule_uniform_mix: float = 0.2  # uniform share mixed into every schedule
    schedule_window: int = 20  # progress: episodes per task compared
    frozen_groups: list[str] = dataclasses.field(default_factory=list)  # group patterns
    lr_scales: dict[str, float] | None = None  # group pattern -> learning-rate multiplier
    transfer_lambda: float = 1.0  # joint transfer: L = L_source + lambda * L_target
    distill_weight: float = 1.0  # weight of the distillation term
    distill_temperature: float = 1.0  # tau of softmax(Q / tau) in distillation
    rehearsal_share: float = 0.5  # continual: share of each update from earlier tasks' replay
    ewc_lambda: float = 100.0  # continual ewc: weight of the penalty
    ewc_decay: float = 1.0  # continual ewc: decay of the accumulated Fisher per task
    ewc_fisher_states: int = 1_024  # continual ewc: replay states the Fisher is estimated on
    head_init: str = "fresh"  # a task added to a trained agent: fresh | mean head
    meta_tasks: str | list[str | dict[str, Any]] = "family:cartpole-physics:train"  # meta pool
    meta_algo: str = "reptile"  # reptile | fomaml (multiq.recipes.meta registry)
    meta_iterations: int = 100  # outer-loop iterations
    meta_batch_size: int = 4  # tasks per outer iteration
    meta_step_size: float = 0.5  # reptile: epsilon of theta += eps * mean(phi - theta)
    meta_lr: float = 0.05  # fomaml: SGD step of theta -= lr * mean(grad at phi)
    meta_query_steps: int = 256  # fomaml: fresh env steps the outer gradient is taken on
    meta_eval_freq: int = 10  # outer iterations between evaluations; 0 = only at the end
    inner_steps: int = 2_000  # env steps of one inner loop (and of adapt-k's largest k)
    inner_learning_starts: int = 200  # env steps of an inner loop before updates start
    inner_buffer_size: int = 10_000  # replay of one inner loop, transitions
    inner_target_update: int = 500  # env steps between target syncs within an inner loop
    eval_freq: int = 10_000  # env steps per task between evaluations; 0 = only at the end
    eval_episodes: int = 10  # episodes per task per evaluation
    eval_epsilon: float = 0.01  # epsilon of the evaluation policy
    checkpoint_freq: int = 50_000  # env steps per task; 0 = only at the end
    log_interval: int = 2_000  # env steps per task between metric rows
    save_replay: bool = False  # save replay buffers with checkpoints
    on_env_error: str = "stop"  # stop | restart
    env_restarts: int = 3  # on_env_error restart: rebuilds per task before stopping anyway
    seed: int = 0  # random seed
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    env_backend: str = "inprocess"  # inprocess | subprocess | envpool (multiq.envs.backends)
    env_workers: int = 1  # subprocess: processes per task; envpool: threads per task
    env_imports: list[str] = dataclasses.field(default_factory=list)  # modules that register envs
    tensorboard: bool = True  # write TensorBoard logs
    loggers: list[str] = dataclasses.field(default_factory=lambda: ["csv", "tensorboard"])
    wandb_project: str = "multiq"  # loggers with wandb: the W&B project
    wandb_group: str = ""  # loggers with wandb: the W&B group ("" = none)
    progress_bar: bool = True  # show a progress bar
    torch_threads: int = 1  # torch intra-op threads while training / evaluating; 0 = torch's
    collectors: int = 0  # Ray actors stepping the envs; 0 = in the training process
    collector_chunk: int = 64  # collectors: vector steps per task per request
    broadcast_interval: int = 100  # collectors: updates between weight snapshots to the actors
    ray_address: str = ""  # collectors: a Ray cluster's HOST:PORT; "" = Ray on this machine
    async_updates: bool | str = "auto"  # true | false | auto: a child process steps the envs
    async_chunk: int = 8  # async_updates: vector steps per request to the collector process

    def __post_init__(self) -> None:
        errors, invalid = [], set()
        for name, convert in _CONVERTERS.items():
            try:
                value = convert(name, getattr(self, name))
                _check_rule(name, value)
            except ConfigError as e:
                errors.append(str(e))
                invalid.add(name)
                continue
            object.__setattr__(self, name, value)
        errors += _cross_errors(self, invalid)
        if len(errors) == 1:
            raise ConfigError(errors[0])
        if errors:
            raise ConfigError(
                f"invalid config ({len(errors)} errors):\n  - " + "\n  - ".join(errors)
            )

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Returns the valid config keys, in declaration order."""
        return CONFIG_KEYS

    @property
    def given_keys(self) -> frozenset[str]:
        """The keys set explicitly: passed to the constructor or `from_dict` (a YAML file's
        keys), changed by `replace` or `with_overrides`. The others hold their defaults, which
        the tasks' observation family may change (`FAMILY_DEFAULTS`)."""
        return self._given

    def given_values(self) -> dict[str, Any]:
        """The keys of `given_keys` with their values (plain, as in `to_dict`)."""
        return {k: v for k, v in self.to_dict().items() if k in self._given}

    def settled(self) -> Config:
        """An equal config whose every key counts as set, so that no default changes it (as a
        config read back from a run folder)."""
        return type(self).from_dict(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Builds a validated config; keys left out take their defaults.

        Args:
            data: config keys to values, e.g. loaded from YAML.

        Raises:
            ConfigError: on an unknown key (with the closest valid key), a wrong type or a value
                out of range.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a mapping of keys to values, got {_kind(data)}")
        reject_unknown(data, CONFIG_KEYS, "config key")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Config:
        """Reads a config file such as ``RUN_DIR/config.yaml``; an empty file gives defaults.

        Raises:
            ConfigError: if the file is missing or unreadable, is not valid YAML (the message
                gives the line), is not a mapping at the top level, or holds an invalid config.
        """
        path = Path(path)
        data = _read_yaml(path)
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def with_overrides(self, overrides: Sequence[str], **changes: Any) -> Config:
        """Returns a copy with ``key=value`` overrides (CLI ``--set``) applied in order, then
        `changes` (e.g. CLI flags such as ``total_steps_per_task``); validated once, at the end.

        Values are read as int, else float, else YAML (``true``, ``null``, ``[a, b]``); values of
        text keys (``scheme``, ``device``, ``tasks``) stay verbatim unless they are a YAML list.
        A dotted key sets one entry of a mapping key: ``task_weights.Breakout=2.0``.

        Raises:
            ConfigError: on a malformed override, an unknown key or an invalid result.
        """
        if isinstance(overrides, str):
            overrides = [overrides]
        data = self.to_dict()
        names = [_apply_override(data, item) for item in overrides]
        return self._derive({**data, **changes}, [*names, *changes])

    def replace(self, **changes: Any) -> Config:
        """Returns a validated copy with the given keys changed, e.g. ``cfg.replace(seed=1)``."""
        return self._derive({**self.to_dict(), **changes}, changes.keys())

    def _derive(self, data: Mapping[str, Any], changed: Iterable[str]) -> Config:
        """A validated config of `data` whose given keys are this one's and `changed`."""
        derived = type(self).from_dict(data)
        object.__setattr__(derived, "_given", self._given | frozenset(changed))
        return derived

    def to_dict(self) -> dict[str, Any]:
        """Returns all keys as plain, YAML/JSON-safe values (a deep copy)."""
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Writes the config atomically (temp file in the same folder, then rename).

        Missing parent folders are created. ``Config.from_yaml(path)`` returns an equal config.

        Returns:
            The path written.
        """
        path = Path(path)
        body = yaml.dump(
            self.to_dict(),
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
        )
        atomic_write_text(path, "# multiq run config (multiq.config.Config)\n" + body)
        return path


CONFIG_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Config))
"""Valid config keys, in declaration order."""


# --- defaults by observation family -------------------------------------------------------------

# The tasks' observation family (`multiq.tasks.obs_family`) -> values of the keys whose good
# settings differ between families, as rl-zoo keeps hyperparameters per env. A run whose tasks
# all share a family with a row takes it for every key not set explicitly (`multiq.tasks.defaults`).
# Families without a row (minigrid: no measured evidence yet) keep the Config defaults.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # MinAtar's 10x10 grids: the MinAtar paper's DQN (Young & Tian 2019); the Config defaults.
    "minatar": {
        "total_steps_per_task": 80_000,
        "learning_rate": 2.5e-4,
        "buffer_size": 100_000,
        "learning_starts": 1_000,
        "batch_size": 32,
        "train_freq": 4,
        "target_update_interval": 1_000,
        "exploration_fraction": 0.1,
        "n_step": 1,
        "eval_freq": 10_000,
    },
    # Vector observations (classic control): configs/classic.yaml, at the train_freq 4 that
    # tests/test_learning.py calibrated (CartPole and Acrobot far above random in 20k steps).
    "vector": {
        "total_steps_per_task": 100_000,
        "learning_rate": 1e-3,
        "buffer_size": 50_000,
        "learning_starts": 1_000,
        "batch_size": 64,
        "train_freq": 4,
        "target_update_interval": 500,
        "exploration_fraction": 0.2,
        "n_step": 3,
        "eval_freq": 10_000,
    },
    # Atari's 4x84x84 frame stacks: rl-zoo's Atari DQN (10M steps, 100k replay and learning
    # starts, Adam 1e-4, target copy every 1k steps); evaluation every 100k as configs/atari.yaml.
    "atari": {
        "total_steps_per_task": 10_000_000,
        "learning_rate": 1e-4,
        "buffer_size": 100_000,
        "learning_starts": 100_000,
        "batch_size": 32,
        "train_freq": 4,
        "target_update_interval": 1_000,
        "exploration_fraction": 0.1,
        "n_step": 1,
        "eval_freq": 100_000,
    },
}


# --- YAML ---------------------------------------------------------------------------------------

# PyYAML follows YAML 1.1, where `1e-4` and `1.0e5` are strings; read them as floats.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """Safe loader that reads exponent floats as numbers and rejects duplicate keys.

    It also bounds the document: at most `MAX_NESTING_DEPTH` levels and `MAX_YAML_NODES` nodes
    once every alias is expanded, checked after composing and before building any value.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # The composer recurses once per level: stop long before Python's recursion limit.
        if self._depth >= MAX_NESTING_DEPTH:
            raise _composer_error(_DEPTH_PROBLEM, self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Safe dumper that quotes strings `_Loader` would read as floats (e.g. ``"1e5"``)."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))

_DEPTH_PROBLEM = f"the document nests deeper than {MAX_NESTING_DEPTH} levels"
_SIZE_PROBLEM = (
    f"the document expands to more than {MAX_YAML_NODES} nodes (YAML aliases); write the values out"
)
_CYCLE_PROBLEM = "an alias refers to a node that contains it (a recursive structure)"


def _composer_error(problem: str, mark: yaml.Mark) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, mark)


def _child_nodes(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Raises if `root`, with every alias expanded, is too large, too deep or recursive.

    Aliases make the composed nodes a graph whose expansion can be exponentially larger than the
    text ("billion laughs"). Each node's expanded size and depth are computed once (memoised by
    node identity) in an explicit depth-first walk, so the check costs time linear in the text.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    started: set[int] = set()
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in measured:
            stack.pop()
            continue
        children = _child_nodes(node)
        if id(node) not in started:  # first visit: measure the children first
            started.add(id(node))
            pending = [child for child in children if id(child) not in measured]
            if any(id(child) in started for child in pending):  # an ancestor of `node`
                raise _composer_error(_CYCLE_PROBLEM, node.start_mark)
            stack.extend(pending)
            continue
        stack.pop()
        size = 1 + sum(measured[id(child)][0] for child in children)
        depth = 1 + max((measured[id(child)][1] for child in children), default=0)
        if size > MAX_YAML_NODES:
            raise _composer_error(_SIZE_PROBLEM, node.start_mark)
        if depth > MAX_NESTING_DEPTH:
            raise _composer_error(_DEPTH_PROBLEM + " (YAML aliases)", node.start_mark)
        measured[id(node)] = (size, depth)


def _read_yaml(path: Path) -> Mapping[Any, Any]:
    """Loads a YAML mapping from `path`; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    data = _load_yaml(text, path)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: the top level must be a mapping of config keys (e.g. `seed: 1`), "
            f"got {_kind(data)}"
        )
    return data


def _load_yaml(text: str, source: Path | str) -> Any:
    """Loads YAML text with `_Loader`; every failure is a ConfigError naming `source`."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(source, e)) from None
    except ValueError as e:  # a scalar that matches a type but not its range, e.g. 2024-13-45
        raise ConfigError(f"invalid YAML in {source}: cannot read a value ({e})") from None


def _yaml_error(source: Path | str, error: yaml.YAMLError) -> str:
    """Formats a YAML error as 'invalid YAML in SOURCE at line L, column C: PROBLEM'."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"invalid YAML in {source}{where}: {problem}"


# How a run is executed, not what it learns: a resume may change them.
KEYS_A_RESUME_CHANGES = (
    "total_steps_per_task", "device", "torch_threads", "collectors", "collector_chunk",
    "broadcast_interval", "ray_address", "env_backend", "env_workers", "async_updates",
    "async_chunk",
)  # fmt: skip


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ between two `Config.to_dict()`s, leaving out those a resume
    may change (`KEYS_A_RESUME_CHANGES`)."""
    return sorted(
        key
        for key in set(saved) | set(current)
        if key not in KEYS_A_RESUME_CHANGES and saved.get(key) != current.get(key)
    )


# --- overrides ----------------------------------------------------------------------------------


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """The keys ``key=value`` overrides set and their parsed values, not yet validated (the
    config they go into validates them). A dotted key gives a mapping of the entries set.

    Raises:
        ConfigError: on a malformed override or an unknown key.
    """
    data: dict[str, Any] = {}
    for item in overrides:
        _apply_override(data, item)
    return data


def _apply_override(data: dict[str, Any], item: str) -> str:
    """Applies one ``key=value`` or ``mapping_key.entry=value`` override to `data` in place;
    returns the config key it sets."""
    key, sep, raw = str(item).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value, {_OVERRIDE_EXAMPLE}")
    name, dot, entry = key.partition(".")
    reject_unknown({name: None}, CONFIG_KEYS, "config key")
    if not dot:
        data[name] = _override_value(name, key, raw)
        return name
    entry = entry.strip()
    if name not in _MAPPING_KEYS or not entry:
        raise ConfigError(
            f"override {item!r}: a dotted key sets one entry of "
            f"{' or '.join(_MAPPING_KEYS)}, {_OVERRIDE_EXAMPLE}"
        )
    current = data.get(name)
    data[name] = {**(current if isinstance(current, Mapping) else {}), entry: _parse(key, raw)}
    return name


def _override_value(name: str, key: str, raw: str) -> Any:
    """Parses an override value; text keys keep the raw string unless it is a YAML list."""
    if name not in _TEXT_KEYS:
        return _parse(key, raw)
    try:
        value = _parse(key, raw)
    except ConfigError:
        return raw.strip()
    return value if isinstance(value, (list, dict)) else raw.strip()


def _parse(key: str, raw: str) -> Any:
    """Reads an override value as int, else float, else YAML."""
    text = raw.strip()
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return _load_yaml(text, f"the value of {key}")


# --- type checks: each takes (key, value) and returns the value in its canonical type -----------


def _kind(value: Any) -> str:
    return type(value).__name__


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def _show(value: Any) -> str:
    """A short repr of `value` for messages (long strings and containers are abridged)."""
    try:
        return _REPR.repr(value)
    except ValueError:  # Python refuses to print ints of more than 4300 digits
        return f"<{_kind(value)} too large to print>"


def _type_error(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{key}: expected {expected}, got {_show(value)} ({_kind(value)})")


def _to_int(key: str, value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _type_error(key, "an integer", value)


def _to_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _type_error(key, "a number", value)
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite number, got {_show(value)}")
    return number


def _to_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, "a bool (true or false)", value)
    return value


def _to_switch(key: str, value: Any) -> bool | str:
    """A bool, or ``auto`` (decided at run time)."""
    if isinstance(value, bool) or value == "auto":
        return value
    raise _type_error(key, "true, false or auto", value)


def _to_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(key, "a string", value)
    return value


def _to_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _type_error(key, "a non-empty string", value)
    return value


def _to_tasks(key: str, value: Any) -> str | list[str | dict[str, Any]]:
    if isinstance(value, str):
        return _to_name(key, value)
    if not isinstance(value, (list, tuple)) or not value:
        raise _type_error(key, "a string or a non-empty list of task entries", value)
    return [_to_task_entry(f"{key}[{i}]", entry) for i, entry in enumerate(value)]


_TASK_ENTRY_KEYS = ("id", "name", "kwargs")


def _to_task_entry(key: str, value: Any) -> str | dict[str, Any]:
    if isinstance(value, str):
        return _to_name(key, value)
    if not isinstance(value, Mapping):
        raise _type_error(key, "a task id string or a mapping with keys id, name, kwargs", value)
    reject_unknown(value, _TASK_ENTRY_KEYS, f"{key} key")
    if "id" not in value:
        raise ConfigError(f"{key}: a task mapping needs an 'id', e.g. {{id: gym:CartPole-v1}}")
    entry = {"id": _to_name(f"{key}.id", value["id"])}
    if "name" in value:
        entry["name"] = _to_name(f"{key}.name", value["name"])
    if "kwargs" in value:
        if not isinstance(value["kwargs"], Mapping):
            raise _type_error(f"{key}.kwargs", "a mapping of keyword arguments", value["kwargs"])
        entry["kwargs"] = _to_plain(f"{key}.kwargs", value["kwargs"])
    return entry


def _to_plain(key: str, value: Any, depth: int = 0) -> Any:
    """Copies nested data as YAML-safe types (tuples become lists, numpy scalars Python ones)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and not math.isnan(value):
        return float(value)
    if depth >= MAX_NESTING_DEPTH:  # also stops a list or mapping that contains itself
        raise ConfigError(f"{key}: nested deeper than {MAX_NESTING_DEPTH} levels")
    if isinstance(value, (list, tuple)):
        return [_to_plain(f"{key}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _to_plain(f"{key}.{k}", v, depth + 1) for k, v in value.items()}
    raise _type_error(
        key, "plain data (null, bool, number, string, list, mapping with string keys)", value
    )


def _to_task_weights(key: str, value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _type_error(key, "null or a mapping of task name to weight", value)
    weights = {
        _to_name(f"{key} task name", name): _to_float(f"{key}.{name}", w)
        for name, w in value.items()
    }
    for name, weight in weights.items():
        if weight < 0:
            raise ConfigError(f"{key}.{name} must be >= 0, got {weight!r}")
    if not any(w > 0 for w in weights.values()):
        raise ConfigError(f"{key}: at least one weight must be > 0, got {_show(weights)}")
    return weights


def _name_list(example: str) -> Callable[[str, Any], list[str]]:
    """A converter of null, one name or a list of non-empty names (`example` for messages)."""

    def convert(key: str, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, example, value)
        return [_to_name(f"{key}[{i}]", v).strip() for i, v in enumerate(value)]

    return convert


_to_patterns = _name_list("a list of parameter-group patterns, e.g. [trunk]")
_to_modules = _name_list("a list of Python module names, e.g. [my_package.envs]")


def _to_lr_scales(key: str, value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _type_error(key, "null or a mapping of group pattern to multiplier", value)
    scales = {_to_name(f"{key} pattern", k): _to_float(f"{key}.{k}", v) for k, v in value.items()}
    for pattern, scale in scales.items():
        if scale <= 0:
            raise ConfigError(f"{key}.{pattern} must be > 0 (freeze a group with frozen_groups)")
    return scales


_CONVERTER_BY_NAME: dict[str, Callable[[str, Any], Any]] = {
    "tasks": _to_tasks,
    "async_updates": _to_switch,
    "task_weights": _to_task_weights,
    "frozen_groups": _to_patterns,
    "meta_tasks": _to_tasks,
    "env_imports": _to_modules,
    "loggers": _name_list("a list of loggers, e.g. [csv, tensorboard, wandb]"),
    "lr_scales": _to_lr_scales,
}
_CONVERTER_BY_TYPE: dict[str, Callable[[str, Any], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "str": _to_str,
}
# Annotations are strings (postponed evaluation); an unsupported one fails here, at import.
_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    f.name: _CONVERTER_BY_NAME.get(f.name) or _CONVERTER_BY_TYPE[str(f.type)]
    for f in fields(Config)
}
_TEXT_KEYS = frozenset(k for k, c in _CONVERTERS.items() if c in (_to_str, _to_tasks))
_MAPPING_KEYS = ("task_weights", "lr_scales")


# --- range rules: key -> check of the converted value (the broken requirement in words, or None)

_Rule = Callable[[Any], str | None]


def _require(holds: Callable[[Any], bool], words: str) -> _Rule:
    return lambda v: None if holds(v) else words


def _at_least(low: int) -> _Rule:
    return _require(lambda v: v >= low, f">= {low}")


def _between(low: int, high: int) -> _Rule:
    """`low <= v <= high`; the message names the bound that is broken."""
    below, above = _at_least(low), _require(lambda v: v <= high, f"<= {high}")
    return lambda v: below(v) or above(v)


def _positive() -> _Rule:
    return _require(lambda v: v > 0, "> 0")


def _unit(*, open_low: bool = False) -> _Rule:
    if open_low:
        return _require(lambda v: 0 < v <= 1, "in (0, 1]")
    return _require(lambda v: 0 <= v <= 1, "in [0, 1]")


def _one_of(*allowed: str) -> _Rule:
    return _require(lambda v: v in allowed, f"one of {', '.join(allowed)}")


def _named(what: str) -> _Rule:
    return _require(lambda v: bool(v.strip()), f"a non-empty {what} name")


_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")

_RULES: dict[str, _Rule] = {
    "scheme": _named("scheme"),
    "hidden_size": _between(1, MAX_HIDDEN_SIZE),
    "task_embedding": _one_of("onehot", "learned"),
    "task_embedding_dim": _between(1, MAX_TASK_EMBEDDING_DIM),
    "private_merge": _one_of("sum", "concat"),
    "routing": _one_of("softmax", "gumbel"),
    "routing_modules": _between(1, MAX_ROUTING_MODULES),
    "routing_tau_start": _positive(),
    "routing_tau_end": _positive(),
    "n_envs": _between(1, MAX_N_ENVS),
    "total_steps_per_task": _at_least(1),
    "learning_rate": _positive(),
    "buffer_size": _at_least(1),
    "learning_starts": _at_least(0),
    "batch_size": _at_least(1),
    "tau": _unit(open_low=True),
    "gamma": _unit(open_low=True),
    "train_freq": _at_least(1),
    "gradient_steps": _between(1, MAX_GRADIENT_STEPS),
    "target_update_interval": _at_least(1),
    "exploration_fraction": _unit(),
    "exploration_initial_eps": _unit(),
    "exploration_final_eps": _unit(),
    "max_grad_norm": _positive(),
    "n_step": _at_least(1),
    "balancer": _named("balancer"),
    "gradnorm_alpha": _at_least(0),
    "popart_beta": _unit(open_low=True),
    "task_schedule": _named("schedule"),
    "schedule_uniform_mix": _unit(open_low=True),
    "schedule_window": _between(4, MAX_SCHEDULE_WINDOW),
    "transfer_lambda": _at_least(0),
    "distill_weight": _at_least(0),
    "distill_temperature": _positive(),
    "rehearsal_share": _require(lambda v: 0 < v < 1, "in (0, 1)"),
    "ewc_lambda": _at_least(0),
    "ewc_decay": _unit(open_low=True),
    "ewc_fisher_states": _between(1, 100_000),
    "head_init": _one_of("fresh", "mean"),
    "meta_algo": _named("meta algorithm"),
    "meta_iterations": _between(1, 10_000_000),
    "meta_batch_size": _between(1, 100_000),
    "meta_step_size": _unit(open_low=True),
    "meta_lr": _positive(),
    "meta_query_steps": _between(1, 10_000_000),
    "meta_eval_freq": _at_least(0),
    "inner_steps": _between(1, 100_000_000),
    "inner_learning_starts": _at_least(0),
    "inner_buffer_size": _between(1, 100_000_000),
    "inner_target_update": _at_least(1),
    "eval_freq": _at_least(0),
    "eval_episodes": _between(1, MAX_EVAL_EPISODES),
    "eval_epsilon": _unit(),
    "checkpoint_freq": _at_least(0),
    "log_interval": _at_least(1),
    "on_env_error": _one_of("stop", "restart"),
    "torch_threads": _between(0, 1024),
    "collectors": _between(0, 1024),
    "env_backend": _one_of(*ENV_BACKEND_NAMES),
    "env_workers": _between(1, 1024),
    "collector_chunk": _between(1, 1_000_000),
    "async_chunk": _between(1, 1_000_000),
    "broadcast_interval": _at_least(1),
    "env_restarts": _between(0, 1000),
    "seed": _between(0, MAX_SEED),
    "loggers": _require(
        lambda v: set(v) <= set(LOGGERS) and "csv" in v,
        f"a list of {', '.join(LOGGERS)} that holds csv (reports read metrics.csv)",
    ),
    "wandb_project": _named("W&B project"),
    "device": _require(
        lambda v: _DEVICE.fullmatch(v) is not None, "one of auto, cpu, cuda, cuda:<index>, mps"
    ),
}


def broken_rule(key: str, value: Any) -> str | None:
    """What `value` must be for `key`, in words (e.g. ``>= 1``), when it breaks the key's range
    or format rule; None when it passes or the key has no rule. The value has the key's type."""
    rule = _RULES.get(key)
    return rule(value) if rule is not None else None


def _check_rule(key: str, value: Any) -> None:
    broken = broken_rule(key, value)
    if broken:
        raise ConfigError(f"{key} must be {broken}, got {_show(value)}")


# --- cross-key rules: (keys, predicate on their values in that order, message) ------------------
# Checked after the per-key rules, and only when each of the keys passed its own rule. The
# message is formatted with the keys' values and says how to fix the config.

_CrossRule = tuple[tuple[str, ...], Callable[..., bool], str]

_CROSS_RULES: tuple[_CrossRule, ...] = (
    (
        ("exploration_final_eps", "exploration_initial_eps"),
        lambda final, initial: final <= initial,
        "exploration_final_eps ({exploration_final_eps}) > exploration_initial_eps "
        "({exploration_initial_eps}): epsilon would rise during training; lower "
        "exploration_final_eps or raise exploration_initial_eps",
    ),
    (
        ("routing_tau_end", "routing_tau_start"),
        lambda end, start: end <= start,
        "routing_tau_end ({routing_tau_end}) > routing_tau_start ({routing_tau_start}): the "
        "Gumbel temperature anneals downwards; lower routing_tau_end or raise routing_tau_start",
    ),
    (
        ("inner_learning_starts", "inner_steps"),
        lambda starts, steps: starts < steps,
        "inner_learning_starts ({inner_learning_starts}) >= inner_steps ({inner_steps}): an "
        "inner loop would never update; lower inner_learning_starts or raise inner_steps",
    ),
    (
        ("n_step", "buffer_size"),
        lambda n_step, buffer_size: n_step < buffer_size,
        "n_step ({n_step}) >= buffer_size ({buffer_size}): the buffer cannot hold an n-step "
        "transition; lower n_step or raise buffer_size",
    ),
    (
        ("batch_size", "buffer_size"),
        lambda batch_size, buffer_size: batch_size <= buffer_size,
        "batch_size ({batch_size}) > buffer_size ({buffer_size}): a batch would be larger than "
        "the replay buffer; lower batch_size or raise buffer_size",
    ),
    (
        ("collectors", "env_backend"),
        lambda collectors, backend: collectors == 0 or backend == "inprocess",
        "collectors ({collectors}) step their envs inside Ray actors, so env_backend "
        "({env_backend}) cannot apply; set collectors 0 or env_backend inprocess",
    ),
    (
        ("async_updates", "env_backend"),
        lambda async_updates, backend: async_updates is not True or backend != "subprocess",
        "async_updates steps the envs in a daemon child process, which cannot start the env "
        "worker processes of env_backend subprocess; set async_updates false or auto (auto "
        "keeps subprocess envs in the training process), or env_backend inprocess or envpool",
    ),
    (
        ("learning_starts", "train_freq", "n_envs", "total_steps_per_task"),
        lambda starts, freq, n_envs, total: starts + freq * n_envs <= total,
        "learning_starts ({learning_starts}) + train_freq ({train_freq}) * n_envs ({n_envs}) > "
        "total_steps_per_task ({total_steps_per_task}): no update would ever run; lower "
        "learning_starts or raise total_steps_per_task",
    ),
)


def _cross_errors(config: Config, invalid: set[str]) -> list[str]:
    """Messages of the cross-key rules `config` breaks, skipping rules on `invalid` keys."""
    errors = []
    for keys, holds, message in _CROSS_RULES:
        if invalid.intersection(keys):
            continue
        values = {key: getattr(config, key) for key in keys}
        if not holds(*values.values()):
            errors.append(message.format(**{k: _show(v) for k, v in values.items()}))
    return errors


def reject_unknown(data: Mapping[Any, Any], valid: Iterable[str], what: str) -> None:
    """Raises naming the first unknown key of `data`, the closest valid key and all valid keys."""
    valid = tuple(valid)
    for key in data:
        if key in valid:
            continue
        close = difflib.get_close_matches(str(key), valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ConfigError(f"unknown {what} {key!r}{hint} Valid keys: {', '.join(valid)}")
