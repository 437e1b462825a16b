"""`MultiTaskDQN`: the public, Stable-Baselines3-style entry point."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.agents.learner import Learner, LearnerSettings, Training
from multiq.agents.policy import Policy
from multiq.config import Config, config_changes
from multiq.envs.backends import EnvSettings
from multiq.errors import CheckpointError, ConfigError, NonFiniteError, TaskError, is_out_of_memory
from multiq.phases.phase import Phase
from multiq.phases.state import TrainState
from multiq.recipes.continual import PHASE_END_ACTIONS, prepare_sequence
from multiq.recipes.transfer import prepare_transfer
from multiq.runio.folder import RunFolder, run_id, write_run_record
from multiq.runio.layout import CONFIG_FILE, claim_run_dir
from multiq.tasks import make_taskset, task_entries
from multiq.tasks.defaults import apply_task_defaults
from multiq.tasks.gym_ids import import_env_modules
from multiq.tasks.spec import TaskSpec
from multiq.threads import torch_threads
from multiq.train import checkpoint as ckpt
from multiq.train.callbacks import Callback, as_callback
from multiq.train.evaluation import evaluate_summary
from multiq.train.loop import EVAL_SEED_OFFSET, Trainer, config_weights
from multiq.train.specs import specs_from_record, specs_to_record

REPLAY_STEP_KEY = "env_steps"  # stored in replay.npz: a replay newer than the checkpoint is ignored
ADD_TASK_TRAINING = ("all", "new")  # what trains when tasks join a trained agent
REPLAY_RUN_KEY = "run_id"  # stored in replay.npz: a replay of another run is refused
MODEL_KEYS = ("online", "config", "tasks")  # what a model.pt must hold
CHECKPOINT_KEYS = (*MODEL_KEYS, "learner", "torch_rng", "state")  # what a checkpoint.pt must hold
log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available; use --device cpu or auto")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ConfigError(
            f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device='mps' but Apple's MPS is not available here; use cpu or auto")
    return torch.device(device)


def default_run_dir(cfg: Config, label: str | None = None) -> Path:
    """A new run folder under runs/ named after the config's tasks (or `label`), created here
    so that runs started in the same second get distinct folders."""
    return claim_run_dir(label or (cfg.tasks if isinstance(cfg.tasks, str) else "tasks"))


class MultiTaskDQN:
    """One DQN agent for many tasks; tasks can be added while it learns.

    Example:
        >>> model = MultiTaskDQN("gym:CartPole-v1,gym:Acrobot-v1", learning_starts=500)
        >>> model.learn(total_steps_per_task=20_000)
        >>> model.predict(obs, task="CartPole")

    Args:
        tasks: task entries (see `multiq.config.Config.tasks`).
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
        tasks: str | Sequence[Any] | None = None,
        *,
        run_dir: str | Path | None = None,
        config: Config | None = None,
        task_specs: Sequence[TaskSpec] | None = None,
        **hyperparameters: Any,
    ):
        base = config or Config()
        changes = dict(hyperparameters)
        if tasks is not None:
            changes["tasks"] = tasks if isinstance(tasks, str) else list(tasks)
        self.config = base.replace(**changes) if changes else base
        import_env_modules(self.config.env_imports)  # their envs register before tasks build
        specs = (
            list(task_specs) if task_specs is not None else list(make_taskset(self.config.tasks))
        )
        self.config, self.task_defaults = apply_task_defaults(self.config, specs)
        if self.task_defaults.applied:
            log.debug(self.task_defaults.describe())  # `multiq train` prints it
        self.device = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        self.rng = np.random.default_rng(self.config.seed)
        settings = LearnerSettings(
            **{f.name: getattr(self.config, f.name) for f in dataclasses.fields(LearnerSettings)}
        )
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
        self.phases: list[Phase] = []
        self.teachers: dict[str, Policy] = {}
        self.teacher_records: dict[str, tuple[dict, dict]] = {}
        self.run_info: dict[str, Any] = {}  # extra summary.json sections (e.g. "transfer")
        self._replay_arrays: dict[str, np.ndarray] | None = None
        self._collector_record: dict[str, Any] | None = None  # envs' state saved by a checkpoint
        self._checkpointed_config: dict[str, Any] | None = None  # the config of RUN/checkpoint.pt
        self.trainer: Trainer | None = None
        self.summary: dict[str, Any] = {}

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

    def add_task(self, task: str | Mapping[str, Any] | TaskSpec) -> list[TaskSpec]:
        """Adds tasks (an entry such as ``"minatar:Seaquest"``, or a spec) to the agent.

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
        self.config = self.config.replace(tasks=task_entries(self.task_specs))
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
        """
        self._plan_phase(total_steps_per_task, tasks)
        self.config = self.config.replace(total_steps_per_task=self.phases[-1].steps_per_task)
        with RunFolder(self.run_dir), torch_threads(self.config.torch_threads):
            write_run_record(self.run_dir, self._session_record())
            summary = self._trainer(callbacks).run(evaluate=evaluate)
            self.save(self.run_dir / ckpt.MODEL_FILE)
            from multiq.report import plot_curves, plot_routing

            if evaluate:
                plot_curves(self.run_dir)
            plot_routing(self.run_dir)  # writes routing.png only if routing weights were logged
        self.summary = summary
        return self

    def _session_record(self) -> dict[str, Any]:
        """What this session runs on, for run.json (`auto` in config.yaml resolved)."""
        record = {"device": str(self.device), "torch_version": torch.__version__}
        if self.device.type == "cuda":
            record["gpu"] = torch.cuda.get_device_name(self.device)
        return record

    def _plan_phase(self, steps: int | None, tasks: Sequence[str] | None) -> None:
        """Sets the phase `learn` trains: the current one (extended), or a new one.

        Without `tasks`, an unfinished phase continues (with its own budget unless `steps` is
        given); after a finished one, the same phase continues if the agent holds no new task,
        else a new phase trains every task. `steps` None: the config's `total_steps_per_task`.
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
            steps = current.steps_per_task if unfinished else self.config.total_steps_per_task
        if tasks is None and unfinished:
            names = list(current.tasks)
        elif tasks is None:
            held = self.task_names
            same = current is not None and set(held) <= set(current.tasks)
            names = list(current.tasks) if same else held
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

    def _trainer(self, callbacks) -> Trainer:
        if self.trainer is None:
            self.trainer = Trainer(
                self.config, self.learner, self.run_dir, self.state, self.rng, self.phases,
                self.save_checkpoint, self.teachers, callbacks, self._replay_arrays, self.run_info,
                self._collector_record, self._checkpointed_config, self._phase_end_action,
            )  # fmt: skip
            self._replay_arrays = self._collector_record = None
        else:  # a further learn() call continues with the same replay buffers
            self.trainer.cfg, self.trainer.phases = self.config, self.phases
            self.trainer.callback = as_callback(callbacks)
        return self.trainer

    def _phase_end_action(self, action: Mapping[str, Any], trainer: Trainer) -> None:
        """Runs one of a finished phase's `end_actions` (`PHASE_END_ACTIONS`)."""
        PHASE_END_ACTIONS[action["kind"]](self, action, trainer)

    def copy_weights_from(self, other: MultiTaskDQN) -> None:
        """Takes another model's network, balancer and PopArt state (same tasks and shape)."""
        _load_weights(self, other.model_record()[1], "the source model")

    def add_teacher(self, teacher_id: str, model: MultiTaskDQN) -> Policy:
        """Keeps a frozen copy of `model`'s network as a distillation teacher."""
        policy = Policy.snapshot(model.learner.online, model.learner.popart)
        self.teachers[teacher_id] = policy
        meta, tensors = model.model_record()
        self.teacher_records[teacher_id] = (meta, _cloned(tensors))  # not the live weights
        return policy

    # --- inference ---------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self.learner.policy

    def predict(self, obs: np.ndarray, task: str | int, epsilon: float = 0.0) -> np.ndarray:
        """Greedy (or epsilon-greedy) actions of one task.

        Args:
            obs: one observation `[*obs_shape]` or a batch `[B, *obs_shape]` of that task.
            task: task name or index (in `task_names`).
            epsilon: exploration rate (0: greedy).

        Returns:
            an int action for a single observation, else [B] int64 actions.
        """
        name = self.task_names[task] if isinstance(task, int) else task
        if name not in self.learner.specs:
            raise TaskError(f"unknown task {name!r}; this agent holds {self.task_names}")
        spec = self.learner.specs[name]
        obs = np.asarray(obs)
        single = obs.shape == spec.obs_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != spec.obs_shape:
            raise ValueError(
                f"task {spec.name!r} observations have shape {spec.obs_shape}; got {obs.shape}"
            )
        batch = {name: batch.astype(spec.obs_dtype, copy=False)}
        actions = self.policy.act(batch, epsilon, self.rng)[name]
        return int(actions[0]) if single else actions

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

    # --- persistence -------------------------------------------------------------------------

    def model_record(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(JSON meta, tensors) of the model: config, task specs, name-keyed weights."""
        infos, bounds = specs_to_record(self.task_specs)
        meta = {"config": self.config.to_dict(), "state": self.state.to_dict(), "tasks": infos}
        tensors = {
            "online": self.learner.online.state_dict(),
            "spaces": bounds,
            **self.learner.balance_state_dict(),
        }
        return meta, tensors

    def save(self, path: str | Path) -> Path:
        """Writes config, task specs, weights and balancer/PopArt state (atomic, no pickle).

        Raises:
            NonFiniteError: a weight is NaN or infinite (nothing is written).
        """
        path = Path(path)
        self._check_finite_weights(path)
        meta, tensors = self.model_record()
        ckpt.save_tensors(path, "model", meta, tensors)
        return path

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
                saved tasks left out are named in the log.
            run_dir: where a further `learn` writes.
            **overrides: config keys to change.
        """
        path = Path(path)
        path = path / ckpt.MODEL_FILE if path.is_dir() else path
        meta, payload = ckpt.load_tensors(path, "model", required=MODEL_KEYS)
        config = _saved_config(meta, path)
        if device is not None:
            overrides["device"] = device
        saved = specs_from_record(meta.get("tasks", []), payload.get("spaces", {}))
        if tasks is None:  # a new run: its step axis starts at 0 (`resume` continues a run)
            model = cls(config=config, task_specs=saved, run_dir=run_dir, **overrides)
            _load_weights(model, payload, path)
            return model
        config = config.replace(task_weights=None)  # they named the saved tasks
        model = cls(tasks, config=config, run_dir=run_dir, **overrides)
        model.load_by_name(payload, [s.name for s in saved], path)
        return model

    def load_by_name(self, payload: Mapping[str, Any], saved_tasks: Sequence[str], path) -> None:
        """Copies every saved weight whose name and shape fit this model; logs what did not."""
        own = self.learner.online.state_dict()
        saved = self.learner.online.adapt_state_dict(payload.get("online", {}))
        fits = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
        self.learner.online.load_state_dict(fits, strict=False)
        self.learner.sync_target(1.0)
        self.learner.load_balance_state_dict(payload)
        dropped = [n for n in saved_tasks if n not in self.learner.specs]
        fresh = sorted({k.split(".")[0] for k in own if k not in fits})
        if dropped:
            log.info("loading %s: tasks left out of the new task set: %s", path, dropped)
        mismatched = sorted(k for k in saved if k in own and own[k].shape != saved[k].shape)
        if mismatched:
            log.warning("loading %s: shapes differ, left fresh: %s", path, mismatched)
        log.info("loading %s: %d of %d tensors copied; fresh: %s", path, len(fits), len(own), fresh)

    def checkpoint_record(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(meta, tensors) of a checkpoint: everything a resume needs."""
        meta, tensors = self.model_record()
        meta.update(
            {
                "numpy_rng": self.rng.bit_generator.state,
                "replay_saved_at": self.state.env_steps if self._replay_to_save() else None,
                "run_id": run_id(self.run_dir),
                "phases": [p.to_dict() for p in self.phases],
                "run_info": self.run_info,
                "teachers": {k: m for k, (m, _) in self.teacher_records.items()},
            }
        )
        tensors.update(
            {
                "learner": self.learner.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "teachers": {k: t for k, (_, t) in self.teacher_records.items()},
            }
        )
        collector = self.trainer.collector_record() if self.trainer is not None else None
        if collector is not None:
            meta["collector"], tensors["collector_obs"] = collector
        return meta, tensors

    def _check_finite_weights(self, path: Path) -> None:
        bad = self.learner.nonfinite_parameters()
        if bad:
            raise NonFiniteError(
                f"the network's weights hold NaN or infinite values ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}); {path} was not written"
            )

    def _replay_to_save(self) -> bool:
        return bool(self.config.save_replay and self.trainer and self.trainer.replay.buffers)

    def save_checkpoint(self) -> None:
        """Weights, optimiser, counters, phases, RNG states and the envs' records (and the
        replay if asked).

        Raises:
            NonFiniteError: a weight is NaN or infinite (the previous checkpoint stays).
        """
        path = self.run_dir / ckpt.CHECKPOINT_FILE
        self._check_finite_weights(path)
        if self._replay_to_save():
            arrays = {
                **self.trainer.replay.state(),
                REPLAY_STEP_KEY: np.array(self.state.env_steps),
                REPLAY_RUN_KEY: np.array(run_id(self.run_dir) or ""),
            }
            ckpt.save_replay(self.run_dir / ckpt.REPLAY_FILE, arrays)
        meta, tensors = self.checkpoint_record()
        ckpt.save_tensors(path, "checkpoint", meta, tensors)

    @classmethod
    def resume(cls, run_dir: str | Path, device: str | None = None, **overrides: Any):
        """Continues a run from RUN_DIR/checkpoint.pt: weights, optimiser, phases, counters,
        RNGs and the envs' records (with the saved replay, the run continues exactly).

        `total_steps_per_task` among the overrides sets the current (or last) phase's budget.

        Raises:
            CheckpointError: no run folder or checkpoint, a corrupt one, or files that do not
                belong together (checkpoint, config.yaml, run.json and replay.npz of one run).
        """
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise CheckpointError(f"{run_dir} has no {CONFIG_FILE}: not a multiq run folder")
        path = run_dir / ckpt.CHECKPOINT_FILE
        meta, payload = ckpt.load_tensors(path, "checkpoint", required=CHECKPOINT_KEYS)
        config = _saved_config(meta, path)
        _check_belongs(run_dir, meta, config)
        steps = overrides.pop("total_steps_per_task", None)
        if device is not None:
            overrides["device"] = device
        try:
            model = cls._from_checkpoint(run_dir, meta, payload, config, device, overrides)
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(
                f"{path} does not fit the run it describes ({type(error).__name__}: "
                f"{(str(error).splitlines() or [''])[0][:200]}); restore it from a copy or "
                "start a new run"
            ) from error
        if steps is not None and model.phases:
            model._plan_phase(int(steps), list(model.phases[-1].tasks))
            model.config = model.config.replace(total_steps_per_task=int(steps))
        model._replay_arrays = _matching_replay(run_dir, meta.get("replay_saved_at"), meta)
        if model._replay_arrays is None:
            # No saved replay: refill the buffers for `learning_starts` steps before updating.
            steps_done = model.state.phase_env_steps
            model.state.learning_starts_at = steps_done + model.config.learning_starts
        return model

    @classmethod
    def _from_checkpoint(cls, run_dir, meta, payload, config, device, overrides):
        """The model of a checkpoint's contents (errors: the contents do not fit)."""
        specs = specs_from_record(meta.get("tasks", []), payload.get("spaces", {}))
        model = cls(config=config, task_specs=specs, run_dir=run_dir, **overrides)
        model.learner.load_state_dict(payload["learner"])
        for teacher_id, teacher_meta in meta.get("teachers", {}).items():
            teacher = cls.from_record(teacher_meta, payload["teachers"][teacher_id], device)
            model.add_teacher(teacher_id, teacher)
        torch.set_rng_state(payload["torch_rng"])
        model.rng.bit_generator.state = meta["numpy_rng"]
        model.state = TrainState.from_dict(meta["state"])
        model.phases = [Phase.from_dict(p) for p in meta.get("phases", [])]
        model.run_info = dict(meta.get("run_info", {}))
        model._checkpointed_config = config.to_dict()
        if "collector" in meta:
            obs = {n: t.numpy() for n, t in payload.get("collector_obs", {}).items()}
            model._collector_record = {**meta["collector"], "obs": obs}
        return model

    @classmethod
    def from_record(cls, meta: Mapping, tensors: Mapping, device: str | None = None):
        """A model from `model_record` output (e.g. a teacher stored in a checkpoint)."""
        config = Config.from_dict(meta["config"])
        overrides = {"device": device} if device is not None else {}
        specs = specs_from_record(meta.get("tasks", []), tensors.get("spaces", {}))
        model = cls(config=config, task_specs=specs, **overrides)
        _load_weights(model, tensors, "a stored teacher")
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
            mode: ``scratch``, ``finetune``, ``freeze``, ``joint`` or ``distill``.
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


def _cloned(tree: Any) -> Any:
    """A copy of nested dicts of tensors whose tensors own their memory."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, Mapping):
        return {key: _cloned(value) for key, value in tree.items()}
    return tree


def _saved_config(meta: Mapping[str, Any], path: Path) -> Config:
    try:
        return Config.from_dict(meta["config"])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path} has no readable config ({error})") from error


def _load_weights(model: MultiTaskDQN, payload: Mapping[str, Any], path) -> None:
    try:
        model.learner.online.load_state_dict(payload["online"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"{path}: the saved weights do not fit the saved tasks and config "
            f"({str(error).splitlines()[0][:200]})"
        ) from error
    model.learner.sync_target(1.0)
    model.learner.load_balance_state_dict(payload)


def _check_belongs(run_dir: Path, meta: Mapping[str, Any], config: Config) -> None:
    """Refuses a checkpoint copied from another run, or a config.yaml edited since it."""
    path = run_dir / ckpt.CHECKPOINT_FILE
    saved_id, folder_id = meta.get("run_id"), run_id(run_dir)
    if saved_id and folder_id and saved_id != folder_id:
        raise CheckpointError(
            f"{path} belongs to run {saved_id}, but {run_dir / 'run.json'} is run {folder_id}: "
            "the checkpoint was copied from another run folder; put back this run's checkpoint "
            "or resume the other run"
        )
    on_disk = Config.from_yaml(run_dir / CONFIG_FILE).to_dict()
    saved = config.to_dict()
    changed = config_changes(saved, on_disk)
    if changed:
        shown = ", ".join(f"{k}: {on_disk.get(k)!r} (checkpoint {saved[k]!r})" for k in changed)
        raise CheckpointError(
            f"{run_dir / CONFIG_FILE} differs from the checkpoint's config in {shown}. A resume "
            "continues with the checkpoint's config (only --steps and --device change it): "
            "undo the edit, or start a new run with the new config"
        )


def _matching_replay(
    run_dir: Path, saved_at: int | None, meta: Mapping[str, Any]
) -> dict[str, np.ndarray] | None:
    """The saved replay arrays, if they belong to the checkpoint's step (else None: the
    buffers refill); a replay of another run is refused."""
    path = run_dir / ckpt.REPLAY_FILE
    if saved_at is None or not path.is_file():
        return None
    arrays = ckpt.load_replay(path)
    owner = str(arrays.pop(REPLAY_RUN_KEY, np.array(""))) or None
    if owner and meta.get("run_id") and owner != meta["run_id"]:
        raise CheckpointError(
            f"{path} belongs to run {owner}, not to this checkpoint's run {meta['run_id']}: "
            "delete it to resume without the saved replay"
        )
    if int(arrays.pop(REPLAY_STEP_KEY, -1)) != saved_at:
        return None
    return arrays
