"""`MultiTaskDQN`: the public, Stable-Baselines3-style entry point."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.agents.learner import Learner, LearnerSettings, Training
from multiq.agents.policy import Policy
from multiq.config import Config
from multiq.envs.backends import EnvSettings
from multiq.errors import ConfigError, TaskError, is_out_of_memory
from multiq.moved import forward_attribute
from multiq.phases.phase import Phase
from multiq.phases.state import TrainState
from multiq.recipes.continual import PHASE_END_ACTIONS, prepare_sequence
from multiq.recipes.transfer import prepare_transfer
from multiq.runio.folder import RunFolder, write_run_record
from multiq.runio.layout import claim_run_dir
from multiq.tasks import make_taskset, task_entries
from multiq.tasks.defaults import apply_task_defaults
from multiq.tasks.gym_ids import import_env_modules
from multiq.tasks.python_entries import holds_python_objects
from multiq.tasks.spec import TaskSpec
from multiq.tasks.suites import Entries
from multiq.threads import torch_threads
from multiq.train import checkpoint as ckpt
from multiq.train import persistence
from multiq.train.callbacks import Callback
from multiq.train.context import CollectorRecord, Resumed, RunContext, recorded_config
from multiq.train.device import resolve_device
from multiq.train.evaluation import evaluate_summary
from multiq.train.loop import EVAL_SEED_OFFSET, Trainer, config_weights
from multiq.train.specs import specs_from_record

ADD_TASK_TRAINING = ("all", "new")  # what trains when tasks join a trained agent
__all__ = ["ADD_TASK_TRAINING", "MultiTaskDQN", "default_run_dir", "resolve_device"]
MOVED_NAMES = ("REPLAY_STEP_KEY", "REPLAY_RUN_KEY", "MODEL_KEYS", "CHECKPOINT_KEYS")
"""Names of 0.1 that moved to `multiq.train.persistence` (aliases here until 0.3)."""
log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    if name in MOVED_NAMES:
        return forward_attribute(__name__, "multiq.train.persistence", name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _entry_list(tasks: Any) -> Any:
    """Task entries as a list for the config (one dict becomes a list; other values go to the
    config's type check as they are)."""
    if isinstance(tasks, Mapping):
        return [tasks]
    return list(tasks) if isinstance(tasks, Sequence) else tasks


def default_run_dir(cfg: Config, label: str | None = None) -> Path:
    """A new run folder under runs/ named after the config's tasks (or `label`), created here
    so that runs started in the same second get distinct folders."""
    return claim_run_dir(label or (cfg.tasks if isinstance(cfg.tasks, str) else "tasks"))


class MultiTaskDQN:
    """One DQN agent for many tasks; tasks can be added while it learns.

    Examples:
        >>> model = MultiTaskDQN("gym:CartPole-v1,gym:Acrobot-v1", learning_starts=500)
        >>> model.learn(total_steps_per_task=20_000)
        >>> model.predict(obs, task="CartPole")

    Args:
        tasks: task entries (see `multiq.config.Config.tasks`): a suite (``"minatar"``), a
            registered Gymnasium id (``"CartPole-v1"``), ``gym:<id>``, ``family:...``, and
            from Python also an env factory (``make_env``, ``lambda: gymnasium.make(...)``),
            an env class with kwargs (``{"id": MyEnv, "kwargs": {...}, "name": "mine"}``) or
            an env instance made by ``gymnasium.make`` (rebuilt from its ``spec``); alone or
            in a list (`multiq.tasks.python_entries`). The config records what they built.
        run_dir: where logs and checkpoints go (default runs/<date-time>-<tasks>).
        config: a ready Config; keyword hyperparameters override its values.
        task_specs: ready task specs (e.g. of a saved model) instead of building `tasks`.
        **hyperparameters: any Config key (`learning_rate`, `buffer_size`, `scheme`, ...).

    Keys neither `config` nor `hyperparameters` set take the defaults of the tasks' observation
    family (`multiq.tasks.defaults`; `task_defaults` says which, and the run's config.yaml holds
    them).
    """

    def __init__(
        self,
        tasks: Entries | None = None,
        *,
        run_dir: str | Path | None = None,
        config: Config | None = None,
        task_specs: Sequence[TaskSpec] | None = None,
        **hyperparameters: Any,
    ):
        self.phases: list[Phase] = []
        base = config or Config()
        changes = dict(hyperparameters)
        objects = task_specs is None and holds_python_objects(tasks)  # factories, instances
        if tasks is not None and not objects:
            changes["tasks"] = tasks if isinstance(tasks, str) else _entry_list(tasks)
        self.config = base.replace(**changes) if changes else base
        import_env_modules(self.config.env_imports)  # their envs register before tasks build
        if tasks is not None and objects:  # the config records the entries that rebuild them
            task_specs = list(make_taskset(tasks))
            self.config = self.config.replace(tasks=task_entries(task_specs))
        specs = (
            list(task_specs) if task_specs is not None else list(make_taskset(self.config.tasks))
        )
        self.config, self.task_defaults = apply_task_defaults(self.config, specs)
        if self.task_defaults.applied:
            log.debug(self.task_defaults.describe())  # `multiq train` prints it
        self.device = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        self.rng = np.random.default_rng(self.config.seed)
        settings = LearnerSettings.from_config(self.config)
        try:
            self.learner = Learner(specs, settings, self.device)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            raise ConfigError(
                f"the networks do not fit in memory (hidden_size={self.config.hidden_size}, "
                f"{len(specs)} tasks, device {self.device}): lower hidden_size"
            ) from error
        self._check_task_weights()
        # the config's weights now, so that a balancer that refuses them says so at once
        self.learner.configure(Training(task_weights=config_weights(self.config, self.task_names)))
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self.state = TrainState()
        self.teachers: dict[str, Policy] = {}
        self.teacher_records: dict[str, tuple[dict, dict]] = {}
        self.run_info: dict[str, Any] = {}  # extra summary.json sections (e.g. "transfer")
        self.resumed = Resumed()  # what a checkpoint hands the trainer (`resume`)
        self.finished_at: int | None = None  # env step at which the run folder holds it finished
        self._joined: list[str] = []  # tasks added since the last phase was planned
        self._context: RunContext | None = None
        self.trainer: Trainer | None = None
        self.summary: dict[str, Any] = {}

    @property
    def config(self) -> Config:
        """The run's config. Its `total_steps_per_task` reads the budget of the last phase
        planned (the phases hold the budget); before the first, the value given."""
        return recorded_config(self._config, self.phases)

    @config.setter
    def config(self, config: Config) -> None:
        self._config = config

    @property
    def run_dir(self) -> Path:
        """The run folder; a default one (runs/<date-time>-<tasks>) is created on first use."""
        if self._run_dir is None:
            self._run_dir = default_run_dir(self.config)
        return self._run_dir

    @run_dir.setter
    def run_dir(self, path: str | Path) -> None:
        self._run_dir = Path(path)

    # --- tasks -------------------------------------------------------------------------------

    @property
    def task_specs(self) -> list[TaskSpec]:
        """Every task the agent holds, in the order they joined."""
        return list(self.learner.specs.values())

    @property
    def task_names(self) -> list[str]:
        return list(self.learner.specs)

    def _check_task_weights(self) -> None:
        unknown = sorted(set(self.config.task_weights or {}) - set(self.task_names))
        if unknown:
            raise ConfigError(
                f"task_weights names unknown tasks {unknown}; tasks are {self.task_names}"
            )

    def add_task(self, task: str | Mapping[str, Any] | TaskSpec | Sequence[Any]) -> list[TaskSpec]:
        """Adds tasks (an entry such as ``"minatar:Seaquest"``, a list of entries, or a spec) to
        the agent.

        Every existing task's Q-values stay exactly as they were; the new tasks get heads as
        `head_init` says (fresh, or the mean of the held heads) and, where their observations
        differ from every held task's, fresh input layers. The next `learn` call trains a new
        phase on the tasks given to it (default: all).

        Raises:
            TaskError: a task of that name is already held, or the task cannot share the trunk.
        """
        specs = [task] if isinstance(task, TaskSpec) else list(make_taskset(task))
        taken = [s.name for s in specs if s.name in self.learner.specs]
        if taken:
            raise TaskError(
                f"the agent already holds task(s) {taken}; give the new entry another `name`"
            )
        for spec in specs:
            self.learner.add_task(spec, head_init=self.config.head_init)
        self._config = self._config.replace(tasks=task_entries(self.task_specs))
        self._joined += [spec.name for spec in specs]
        return specs

    def parameter_groups(self) -> dict[str, int]:
        """Parameter group name -> number of weights (names usable in `frozen_groups`)."""
        groups = self.learner.online.param_groups()
        return {name: sum(p.numel() for p in params) for name, params in groups.items()}

    # --- training ----------------------------------------------------------------------------

    def learn(
        self,
        total_steps_per_task: int | None = None,
        callbacks: Callback | list[Callback] | None = None,
        evaluate: bool = True,
        tasks: Sequence[str] | None = None,
    ) -> MultiTaskDQN:
        """Trains the current phase until `total_steps_per_task` env steps per task.

        As in SB3's resume, the count is a total: calling `learn(200_000)` after `learn(100_000)`
        trains 100k more steps of the same phase. After `add_task`, or with `tasks` naming
        other tasks than the current phase's, a new phase starts on `tasks` (default: every task
        the agent holds) and the count is that phase's own.

        With `evaluate`, measures the random policy once per task, evaluates every task every
        `eval_freq` steps and at the end of each phase, and writes summary.json and curves.png;
        a net that logs routing weights (scheme `routed`) also gets routing.png.

        A finished run (`finished`, e.g. a resumed one) is a record: without a budget beyond
        its last phase's, or new tasks, `learn` changes nothing.
        """
        self._plan_phase(total_steps_per_task, tasks)
        if self.finished:
            log.info("%s: the run is finished; nothing to train", self.run_dir)
            return self
        with RunFolder(self.run_dir), torch_threads(self.config.torch_threads):
            write_run_record(self.run_dir, self.runtime_record())
            summary = self._trainer(callbacks).run(evaluate=evaluate)
            self.save(self.run_dir / ckpt.MODEL_FILE)
            from multiq.report import plot_conflicts, plot_curves, plot_routing

            if evaluate:
                plot_curves(self.run_dir)
            plot_routing(self.run_dir)  # writes routing.png only if routing weights were logged
            plot_conflicts(self.run_dir)  # conflicts.png only if the conflict map was measured
        self.summary = summary
        if self.state.phase_index >= len(self.phases):
            self.finished_at = self.state.env_steps
        return self

    @property
    def finished(self) -> bool:
        """True when every phase is trained and the run folder holds the finished run (its
        model.pt written after the last phase): a further `learn` has nothing to do."""
        done = bool(self.phases) and self.state.phase_index >= len(self.phases)
        return done and self.finished_at == self.state.env_steps

    def runtime_record(self) -> dict[str, Any]:
        """What this session runs on, for run.json (`auto` in config.yaml resolved)."""
        record = {"device": str(self.device), "torch_version": torch.__version__}
        if self.device.type == "cuda":
            record["gpu"] = torch.cuda.get_device_name(self.device)
        return record

    def _plan_phase(self, steps: int | None, tasks: Sequence[str] | None) -> None:
        """Sets the phase `learn` trains: the current one (extended), or a new one.

        Without `tasks`, an unfinished phase continues (with its own budget unless `steps` is
        given); after a finished one, the same phase continues (reopened when `steps` is beyond
        its budget) unless tasks joined the agent since it was planned, when a new phase trains
        every task. `steps` None: the current phase's budget (the config's
        `total_steps_per_task` for the first phase).
        """
        current = self.phases[-1] if self.phases else None
        unfinished = current is not None and self.state.phase_index < len(self.phases)
        planned = len(self.phases) - self.state.phase_index
        if planned > 1 and (steps is not None or tasks is not None):
            raise ConfigError(
                f"this run has {planned} phases still to train (e.g. a continual sequence): "
                "call learn() without a budget or tasks to train them"
            )
        if steps is None:
            steps = current.steps_per_task if current else self._config.total_steps_per_task
        if tasks is None and current is not None and (unfinished or not self._joined):
            names = list(current.tasks)
        elif tasks is None:
            names = self.task_names
        else:
            names = list(tasks)
        unknown = sorted(set(names) - set(self.task_names))
        if unknown:
            raise TaskError(f"learn(tasks=...) names tasks the agent does not hold: {unknown}")
        if current is not None and list(current.tasks) == names:
            self.phases[-1] = current.with_budget(steps)
            if not unfinished and steps > current.steps_per_task:
                self.state.phase_index = len(self.phases) - 1  # reopen the finished phase
            return
        name = "train" if current is None else f"phase{len(self.phases)}"
        self.add_phase(Phase(name, tuple(names), steps))

    def add_phase(self, phase: Phase) -> None:
        """Appends a phase to the run; phases train in order (recipes such as transfer and
        continual sequences plan theirs this way)."""
        unknown = sorted(set(phase.learned_tasks) - set(self.task_names))
        if unknown:
            raise TaskError(f"phase {phase.name!r} names tasks the agent does not hold: {unknown}")
        self.phases.append(phase)
        self._joined = []

    def _trainer(self, callbacks) -> Trainer:
        if self.trainer is None:
            self._context = RunContext(
                config=self._config, learner=self.learner, run_dir=self.run_dir,
                state=self.state, rng=self.rng, phases=self.phases,
                save_checkpoint=self.save_checkpoint, on_phase_end=self._phase_end_action,
                teachers=self.teachers, callbacks=callbacks, summary_extra=self.run_info,
                resumed=self.resumed,
            )  # fmt: skip
            self.trainer = Trainer(self._context)
            self.resumed = Resumed()
        else:  # a further learn() call continues with the same replay buffers
            self.trainer.renew(self._config, self.phases, callbacks)
        return self.trainer

    def _phase_end_action(self, action: Mapping[str, Any], trainer: Trainer) -> None:
        """Runs one of a finished phase's `end_actions` (`PHASE_END_ACTIONS`)."""
        PHASE_END_ACTIONS[action["kind"]](self, action, trainer)

    def copy_weights_from(self, other: MultiTaskDQN) -> None:
        """Takes another model's network, balancer and PopArt state (same tasks and shape)."""
        persistence.load_weights(self.learner, other.model_record()[1], "the source model")

    def add_teacher(self, teacher_id: str, model: MultiTaskDQN) -> Policy:
        """Keeps a frozen copy of `model`'s network as a distillation teacher."""
        policy = Policy.snapshot(model.learner.online, model.learner.popart)
        self.teachers[teacher_id] = policy
        meta, tensors = model.model_record()
        self.teacher_records[teacher_id] = (meta, persistence.cloned(tensors))  # not live
        return policy

    # --- inference ---------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self.learner.policy

    def predict(
        self,
        obs: np.ndarray,
        task: str | int | None = None,
        epsilon: float | None = None,
        *,
        deterministic: bool | None = None,
    ) -> int | np.ndarray:
        """Greedy (or epsilon-greedy) actions of one task.

        Args:
            obs: one observation `[*obs_shape]` or a batch `[B, *obs_shape]` of that task.
            task: task name or index (in `task_names`); may be left out when the agent holds
                exactly one task.
            epsilon: exploration rate (0: greedy). Left out: 0, or with
                ``deterministic=False`` the config's `exploration_final_eps` (as SB3's DQN
                uses its exploration rate).
            deterministic: Stable-Baselines3's keyword: True is greedy (epsilon 0), False
                explores with `epsilon` (see above).

        Returns:
            an int action for a single observation, else [B] int64 actions (unlike SB3's
            `predict`, no `(action, state)` pair).

        Raises:
            TaskError: an unknown task, or `task` left out while the agent holds several.
            ValueError: observations of the wrong shape, or ``deterministic=True`` with an
                epsilon above 0.
        """
        name = self._predict_task(task)
        spec = self.learner.specs[name]
        epsilon = self._predict_epsilon(epsilon, deterministic)
        obs = np.asarray(obs)
        single = obs.shape == spec.obs_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != spec.obs_shape:
            raise ValueError(
                f"task {spec.name!r} observations have shape {spec.obs_shape}; got {obs.shape}"
            )
        by_task = {name: batch.astype(spec.obs_dtype, copy=False)}
        actions = self.policy.act(by_task, epsilon, self.rng)[name]
        return int(actions[0]) if single else actions

    def _predict_task(self, task: str | int | None) -> str:
        """The name of `predict`'s task (the only one when `task` is None)."""
        if task is None:
            if len(self.task_names) != 1:
                raise TaskError(
                    f"predict needs a task: this agent holds {len(self.task_names)} tasks "
                    f"{self.task_names}; pass task=<name or index>"
                )
            return self.task_names[0]
        name = self.task_names[task] if isinstance(task, int) else task
        if name not in self.learner.specs:
            raise TaskError(f"unknown task {name!r}; this agent holds {self.task_names}")
        return name

    def _predict_epsilon(self, epsilon: float | None, deterministic: bool | None) -> float:
        """`predict`'s exploration rate from its `epsilon` and SB3's `deterministic`."""
        if deterministic:
            if epsilon:
                raise ValueError(
                    f"predict got deterministic=True and epsilon={epsilon}: deterministic means "
                    "epsilon 0; pass one of them"
                )
            return 0.0
        if epsilon is not None:
            return float(epsilon)
        return 0.0 if deterministic is None else float(self.config.exploration_final_eps)

    def evaluate(
        self,
        episodes: int | None = None,
        epsilon: float | None = None,
        tasks: Sequence[str] | None = None,
    ) -> dict:
        """Task name -> {return_mean, return_std, episodes} over fresh evaluation envs."""
        episodes = episodes or self.config.eval_episodes
        eps = self.config.eval_epsilon if epsilon is None else epsilon
        seed = self.config.seed + EVAL_SEED_OFFSET + self.state.env_steps
        names = tasks if tasks is not None else self.task_names
        specs = [self.learner.specs[n] for n in names]
        with torch_threads(self.config.torch_threads):
            settings = EnvSettings.from_config(self.config)
            return evaluate_summary(self.policy, specs, episodes, eps, seed, settings)

    # --- persistence (`multiq.train.persistence`) ----------------------------------------------

    def model_record(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(JSON meta, tensors) of the model: config, task specs, name-keyed weights."""
        return persistence.model_record(self)

    def save(self, path: str | Path) -> Path:
        """Writes config, task specs, weights and balancer/PopArt state (atomic, no pickle).

        Raises:
            NonFiniteError: a weight is NaN or infinite (nothing is written).
        """
        return persistence.save_model(self, path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | None = None,
        tasks: str | Sequence[Any] | None = None,
        run_dir: str | Path | None = None,
        **overrides: Any,
    ) -> MultiTaskDQN:
        """Rebuilds a model saved by `save` without building envs (no optimiser or replay).

        Args:
            path: a model.pt file or a run folder holding one.
            device: torch device (default: the saved config's).
            tasks: load *by name* into this task set instead: weights of tasks and input layers
                the file has are copied, new tasks get fresh heads and input layers, and the
                saved tasks left out are named in the log. The same entries again rebuild a
                model whose tasks came from a factory its config cannot rebuild (``python:...``
                in config.yaml: a lambda, a local function).
            run_dir: where a further `learn` writes.
            **overrides: config keys to change.
        """
        path = persistence.model_file(path)
        _, payload, config, saved = persistence.read_model(path)
        if device is not None:
            overrides["device"] = device
        if tasks is None:  # a new run: its step axis starts at 0 (`resume` continues a run)
            model = cls(config=config, task_specs=saved, run_dir=run_dir, **overrides)
            persistence.load_weights(model.learner, payload, path)
            return model
        config = config.replace(task_weights=None)  # they named the saved tasks
        model = cls(tasks, config=config, run_dir=run_dir, **overrides)
        model.load_by_name(payload, [s.name for s in saved], path)
        return model

    def load_by_name(self, payload: Mapping[str, Any], saved_tasks: Sequence[str], path) -> None:
        """Copies every saved weight whose name and shape fit this model; logs what did not."""
        persistence.load_by_name(self.learner, payload, saved_tasks, path)

    def checkpoint_record(
        self, collector: CollectorRecord | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(meta, tensors) of a checkpoint: everything a resume needs (`collector`: the live
        collector's record, which the trainer hands over)."""
        return persistence.checkpoint_record(self, self._replay_to_save(), collector)

    def _replay_to_save(self) -> bool:
        replay = self._context.replay if self._context is not None else None
        return bool(self.config.save_replay and replay is not None and replay.buffers)

    def save_checkpoint(self, collector: CollectorRecord | None = None) -> None:
        """Weights, optimiser, counters, phases, RNG states and the envs' records (and the
        replay if asked); the trainer calls it with its live collector's record.

        Raises:
            NonFiniteError: a weight is NaN or infinite (the previous checkpoint stays).
        """
        replay = self._context.replay if self._context is not None else None
        persistence.save_checkpoint(self, replay, collector)

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        device: str | None = None,
        tasks: str | Sequence[Any] | None = None,
        **overrides: Any,
    ):
        """Continues a run from RUN_DIR/checkpoint.pt: weights, optimiser, phases, counters,
        RNGs and the envs' records (with the saved replay, the run continues exactly).

        `tasks`: the run's task entries again, to build its envs from instead of its records;
        needed for tasks built in Python from a factory its config cannot rebuild (recorded
        as ``python:...``: a lambda, a local function). Each saved task takes the env of the
        entry of its name, with the same spaces.

        `total_steps_per_task` among the overrides sets the current (or last) phase's budget
        (beyond a finished phase's budget, that phase trains on). A finished run stays
        `finished` without it: its `learn` changes nothing.

        Raises:
            CheckpointError: no run folder or checkpoint, a corrupt one, or files that do not
                belong together (checkpoint, config.yaml, run.json and replay.npz of one run).
        """
        steps = overrides.pop("total_steps_per_task", None)
        if device is not None:
            overrides["device"] = device
        model = persistence.resume(cls, Path(run_dir), overrides, tasks)
        if steps is not None and model.phases:
            model._plan_phase(int(steps), list(model.phases[-1].tasks))
        return model

    @classmethod
    def from_record(cls, meta: Mapping, tensors: Mapping, device: str | None = None):
        """A model from `model_record` output (e.g. a teacher stored in a checkpoint)."""
        config = Config.from_dict(meta["config"])
        overrides = {"device": device} if device is not None else {}
        specs = specs_from_record(meta.get("tasks", []), tensors.get("spaces", {}))
        model = cls(config=config, task_specs=specs, **overrides)
        persistence.load_weights(model.learner, tensors, "a stored teacher")
        return model

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path | MultiTaskDQN,
        tasks: str | Sequence[Any],
        mode: str = "finetune",
        run_dir: str | Path | None = None,
        **hyperparameters: Any,
    ) -> MultiTaskDQN:
        """A model set up to transfer from `source` to `tasks` (`multiq.recipes.transfer.MODES`).

        Args:
            source: a trained model, a model.pt file or a run folder.
            tasks: the target task entries.
            mode: ``scratch``, ``finetune``, ``freeze``, ``joint``, ``distill`` or ``progressive``.
            run_dir: the transfer run's folder.
            **hyperparameters: config keys to change (e.g. `total_steps_per_task`, `seed`).

        Returns:
            the model, with the transfer phase planned: call `learn()`.
        """
        return prepare_transfer(cls, source, tasks, mode, run_dir, hyperparameters)

    @classmethod
    def continual(
        cls,
        sequence: str | Sequence[Any],
        method: str = "finetune",
        cycles: int = 1,
        run_dir: str | Path | None = None,
        **hyperparameters: Any,
    ) -> MultiTaskDQN:
        """A model set up to learn `sequence` one task after another (see
        `multiq.recipes.continual.METHODS`); `total_steps_per_task` is each phase's budget.

        Returns:
            the model with one phase per task planned: call `learn()`.
        """
        return prepare_sequence(cls, sequence, method, cycles, run_dir, hyperparameters)

    @classmethod
    def meta(
        cls,
        tasks: str | Sequence[Any] = "family:cartpole-physics:train",
        algo: str = "reptile",
        run_dir: str | Path | None = None,
        **hyperparameters: Any,
    ):
        """A meta-learning run over the task pool `tasks` (e.g. a family's train split) with
        `algo` (``reptile`` or ``fomaml``, `multiq.recipes.meta`); call `.run()` on it. Its model
        (`.model`, saved as RUN_DIR/model.pt) is the meta-trained initialisation.
        """
        from multiq.recipes.meta import prepare_meta

        config = Config().replace(meta_tasks=tasks, meta_algo=algo, **hyperparameters)
        return prepare_meta(cls, run_dir, config)

    def add_tasks_phase(
        self,
        tasks: str | Sequence[Any],
        steps_per_task: int,
        train: str = "all",
        rehearse: bool = False,
    ) -> list[str]:
        """Adds tasks to a trained agent and plans a phase that learns them (online update).

        Args:
            tasks: the new task entries.
            steps_per_task: the phase's budget.
            train: ``all`` (every parameter group trains) or ``new`` (only the new tasks'
                heads and new input layers; everything the agent had stays frozen).
            rehearse: the old tasks' stored replay is sampled beside the new tasks' (their
                envs do not step); else only the new tasks learn.

        Returns:
            the new task names.
        """
        if train not in ADD_TASK_TRAINING:
            raise ConfigError(f"train must be one of {', '.join(ADD_TASK_TRAINING)}, got {train!r}")
        old_names, old_groups = self.task_names, list(self.learner.online.param_groups())
        names = [spec.name for spec in self.add_task(tasks)]
        frozen = tuple(old_groups) if train == "new" else ()
        phase = Phase(
            name=f"add-{'-'.join(names)}", tasks=tuple(names), steps_per_task=steps_per_task,
            frozen=frozen, eval_at_start=True,
            rehearse=tuple(old_names) if rehearse else (),
            rehearsal_share=self.config.rehearsal_share,
        )  # fmt: skip
        self.add_phase(phase)
        return names
