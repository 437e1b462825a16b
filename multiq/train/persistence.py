"""Saving and loading a model and its run: model.pt, checkpoint.pt and replay.npz.

- A **model** (`save_model`, `load_model`): config, task specs, name-keyed weights and balancer
  and PopArt state; it loads without building envs, and *by name* into another task set.
- A **checkpoint** (`save_checkpoint`, `resume`): the model plus the optimiser, counters,
  phases, RNG states, teachers and the envs' records (and the replay if asked): a resumed run
  continues exactly. The files of a run folder must belong together: a checkpoint copied from
  another run, a config.yaml edited since, or a replay of another run is refused.

The functions read and set the model's parts (`Model`); `multiq.api.MultiTaskDQN` calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from multiq.agents.learner import Learner
from multiq.config import Config, config_changes
from multiq.errors import CheckpointError, NonFiniteError
from multiq.phases.phase import Phase
from multiq.phases.state import TrainState
from multiq.replay.buffers import MultiTaskReplay
from multiq.runio.folder import run_id
from multiq.runio.layout import CONFIG_FILE
from multiq.tasks import make_taskset
from multiq.tasks.python_entries import check_rebuildable
from multiq.tasks.spec import TaskSpec, with_envs_from
from multiq.train import checkpoint as ckpt
from multiq.train.context import CollectorRecord, Resumed
from multiq.train.specs import specs_from_record, specs_to_record

REPLAY_STEP_KEY = "env_steps"  # stored in replay.npz: a replay newer than the checkpoint is ignored
REPLAY_RUN_KEY = "run_id"  # stored in replay.npz: a replay of another run is refused
MODEL_KEYS = ("online", "config", "tasks")  # what a model.pt must hold
CHECKPOINT_KEYS = (*MODEL_KEYS, "learner", "torch_rng", "state")  # what a checkpoint.pt must hold
RESUME_ERRORS = (KeyError, RuntimeError, ValueError, TypeError)  # contents that do not fit
log = logging.getLogger(__name__)


class Model(Protocol):
    """The parts of a model that are saved and restored (`config`: as the run records it, with
    the last phase's budget)."""

    config: Config
    learner: Learner
    state: TrainState
    rng: np.random.Generator
    phases: list[Phase]
    run_info: dict[str, Any]
    teacher_records: dict[str, tuple[dict, dict]]
    finished_at: int | None
    resumed: Resumed

    @property
    def run_dir(self) -> Path: ...

    @property
    def task_specs(self) -> list[TaskSpec]: ...

    def add_teacher(self, teacher_id: str, model: Any) -> Any: ...


# --- models ------------------------------------------------------------------------------------


def model_record(model: Model) -> tuple[dict[str, Any], dict[str, Any]]:
    """(JSON meta, tensors) of the model: config, counters, task specs, name-keyed weights,
    balancer and PopArt state."""
    infos, bounds = specs_to_record(model.task_specs)
    meta = {"config": model.config.to_dict(), "state": model.state.to_dict(), "tasks": infos}
    tensors = {
        "online": model.learner.online.state_dict(),
        "spaces": bounds,
        **model.learner.balance_state_dict(),
    }
    return meta, tensors


def check_finite_weights(learner: Learner, path: Path) -> None:
    """Raises NonFiniteError (naming `path` as not written) when a weight is NaN or infinite."""
    bad = learner.nonfinite_parameters()
    if bad:
        raise NonFiniteError(
            f"the network's weights hold NaN or infinite values ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); {path} was not written"
        )


def save_model(model: Model, path: str | Path) -> Path:
    """Writes model.pt at `path` (atomic, no pickle); returns the path.

    Raises:
        NonFiniteError: a weight is NaN or infinite (nothing is written).
    """
    path = Path(path)
    check_finite_weights(model.learner, path)
    meta, tensors = model_record(model)
    ckpt.save_tensors(path, "model", meta, tensors)
    return path


def model_file(path: str | Path) -> Path:
    """A model.pt file, or the one in the run folder `path`."""
    path = Path(path)
    return path / ckpt.MODEL_FILE if path.is_dir() else path


def read_model(path: Path) -> tuple[dict[str, Any], dict[str, Any], Config, list[TaskSpec]]:
    """(meta, tensors, config, task specs) of a model.pt file (errors: `CheckpointError`)."""
    meta, payload = ckpt.load_tensors(path, "model", required=MODEL_KEYS)
    specs = specs_from_record(meta.get("tasks", []), payload.get("spaces", {}))
    return meta, payload, saved_config(meta, path), specs


def load_weights(learner: Learner, payload: Mapping[str, Any], where: Any) -> None:
    """The saved online net (target synced), balancer and PopArt state into `learner`.

    Raises:
        CheckpointError: the weights do not fit the learner's tasks and config.
    """
    try:
        learner.online.load_state_dict(payload["online"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"{where}: the saved weights do not fit the saved tasks and config "
            f"({str(error).splitlines()[0][:200]})"
        ) from error
    learner.sync_target(1.0)
    learner.load_balance_state_dict(payload)


def load_by_name(
    learner: Learner, payload: Mapping[str, Any], saved_tasks: Sequence[str], path: Any
) -> None:
    """Copies every saved weight whose name and shape fit `learner`; logs what did not."""
    own = learner.online.state_dict()
    saved = learner.online.adapt_state_dict(payload.get("online", {}))
    fits = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    learner.online.load_state_dict(fits, strict=False)
    learner.sync_target(1.0)
    learner.load_balance_state_dict(payload)
    dropped = [n for n in saved_tasks if n not in learner.specs]
    fresh = sorted({k.split(".")[0] for k in own if k not in fits})
    if dropped:
        log.info("loading %s: tasks left out of the new task set: %s", path, dropped)
    mismatched = sorted(k for k in saved if k in own and own[k].shape != saved[k].shape)
    if mismatched:
        log.warning("loading %s: shapes differ, left fresh: %s", path, mismatched)
    log.info("loading %s: %d of %d tensors copied; fresh: %s", path, len(fits), len(own), fresh)


def cloned(tree: Any) -> Any:
    """A copy of nested dicts of tensors whose tensors own their memory."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, Mapping):
        return {key: cloned(value) for key, value in tree.items()}
    return tree


def saved_config(meta: Mapping[str, Any], path: Path) -> Config:
    """The config a saved file holds (errors: `CheckpointError`)."""
    try:
        return Config.from_dict(meta["config"])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path} has no readable config ({error})") from error


# --- checkpoints -------------------------------------------------------------------------------


def checkpoint_record(
    model: Model, replay_saved: bool, collector: CollectorRecord | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, tensors) of a checkpoint: everything a resume needs.

    Args:
        model: the model.
        replay_saved: whether replay.npz is written with this checkpoint.
        collector: the live collector's record (None between phases).
    """
    meta, tensors = model_record(model)
    meta.update(
        {
            "numpy_rng": model.rng.bit_generator.state,
            "replay_saved_at": model.state.env_steps if replay_saved else None,
            "run_id": run_id(model.run_dir),
            "phases": [p.to_dict() for p in model.phases],
            "run_info": model.run_info,
            "teachers": {k: m for k, (m, _) in model.teacher_records.items()},
        }
    )
    tensors.update(
        {
            "learner": model.learner.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "teachers": {k: t for k, (_, t) in model.teacher_records.items()},
        }
    )
    if collector is not None:
        meta["collector"], tensors["collector_obs"] = collector
    return meta, tensors


def save_checkpoint(
    model: Model, replay: MultiTaskReplay | None, collector: CollectorRecord | None = None
) -> None:
    """Writes checkpoint.pt (and replay.npz when `save_replay` is set and `replay` holds
    buffers) in the model's run folder.

    Raises:
        NonFiniteError: a weight is NaN or infinite (the previous checkpoint stays).
    """
    path = model.run_dir / ckpt.CHECKPOINT_FILE
    check_finite_weights(model.learner, path)
    replay_saved = replay is not None and bool(model.config.save_replay and replay.buffers)
    if replay is not None and replay_saved:
        arrays = {
            **replay.state(),
            REPLAY_STEP_KEY: np.array(model.state.env_steps),
            REPLAY_RUN_KEY: np.array(run_id(model.run_dir) or ""),
        }
        ckpt.save_replay(model.run_dir / ckpt.REPLAY_FILE, arrays)
    meta, tensors = checkpoint_record(model, replay_saved, collector)
    ckpt.save_tensors(path, "checkpoint", meta, tensors)


def read_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Config]:
    """(meta, tensors, config) of RUN_DIR/checkpoint.pt, checked to belong to the folder.

    Raises:
        CheckpointError: no run folder or checkpoint, a corrupt one, one copied from another
            run, or a config.yaml edited since.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        raise CheckpointError(f"{run_dir} has no {CONFIG_FILE}: not a multiq run folder")
    path = run_dir / ckpt.CHECKPOINT_FILE
    meta, payload = ckpt.load_tensors(path, "checkpoint", required=CHECKPOINT_KEYS)
    config = saved_config(meta, path)
    _check_belongs(run_dir, meta, config)
    return meta, payload, config


def resume(cls: Any, run_dir: Path, overrides: dict[str, Any], tasks: Any = None) -> Any:
    """The model of RUN_DIR/checkpoint.pt, as `MultiTaskDQN.resume` describes it.

    Args:
        cls: the model class (`MultiTaskDQN`); `cls.from_record` builds the teachers.
        run_dir: the run folder.
        overrides: config keys to change (`device`, env and thread settings).
        tasks: task entries whose envs the saved tasks take (`with_envs_from`); None: each
            saved task's env is rebuilt from its recorded entry.

    Raises:
        CheckpointError: see `read_checkpoint`; contents that do not fit the run.
    """
    meta, payload, config = read_checkpoint(run_dir)
    specs = specs_from_record(meta.get("tasks", []), payload.get("spaces", {}))
    if tasks is not None:  # before the try: a TaskError here is the entries', not the file's
        specs = with_envs_from(specs, make_taskset(tasks))
    else:
        check_rebuildable(specs, run_dir)
    try:
        model = cls(config=config, task_specs=specs, run_dir=run_dir, **overrides)
        _restore(model, meta, payload, lambda m, t: cls.from_record(m, t, overrides.get("device")))
    except RESUME_ERRORS as error:
        raise resume_error(run_dir / ckpt.CHECKPOINT_FILE, error) from error
    resumed = Resumed(checkpointed_config=config.to_dict())
    if "collector" in meta:
        obs = {n: t.numpy() for n, t in payload.get("collector_obs", {}).items()}
        resumed.collector_record = {**meta["collector"], "obs": obs}
    resumed.replay_arrays = _matching_replay(run_dir, meta.get("replay_saved_at"), meta)
    if resumed.replay_arrays is None:
        # No saved replay: refill the buffers for `learning_starts` steps before updating.
        steps_done = model.state.phase_env_steps
        model.state.learning_starts_at = steps_done + model.config.learning_starts
    model.resumed = resumed
    model.finished_at = finished_step(run_dir, model.state)
    return model


def _restore(model: Model, meta: Mapping[str, Any], payload: Mapping[str, Any], teacher) -> None:
    """A checkpoint's learner, teachers (`teacher(meta, tensors)` builds one), RNGs, counters
    and phases into a model built from its config and tasks (errors: `RESUME_ERRORS`)."""
    model.learner.load_state_dict(payload["learner"])
    for teacher_id, teacher_meta in meta.get("teachers", {}).items():
        model.add_teacher(teacher_id, teacher(teacher_meta, payload["teachers"][teacher_id]))
    torch.set_rng_state(payload["torch_rng"])
    model.rng.bit_generator.state = meta["numpy_rng"]
    model.state = TrainState.from_dict(meta["state"])
    model.phases = [Phase.from_dict(p) for p in meta.get("phases", [])]
    model.run_info = dict(meta.get("run_info", {}))


def finished_step(run_dir: Path, state: TrainState) -> int | None:
    """The step at which the run folder records its run as finished: the step of its model.pt
    when it is that of the checkpoint (model.pt is written last, after summary.json); None
    when the run stopped before (e.g. killed after its last phase, before model.pt)."""
    path = run_dir / ckpt.MODEL_FILE
    if not path.is_file():
        return None
    try:
        meta, _ = ckpt.load_tensors(path, "model", required=MODEL_KEYS)
    except CheckpointError:
        return None
    saved = meta.get("state", {})
    return state.env_steps if saved.get("env_steps") == state.env_steps else None


def resume_error(path: Path, error: BaseException) -> CheckpointError:
    """The error of a checkpoint whose contents do not fit the run they describe."""
    return CheckpointError(
        f"{path} does not fit the run it describes ({type(error).__name__}: "
        f"{(str(error).splitlines() or [''])[0][:200]}); restore it from a copy or "
        "start a new run"
    )


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
