"""The training loop: runs a list of phases with a collector, the learner and a recorder.

Per vector step of a phase: one batched forward of the policy chooses every active env's action,
the envs of the active tasks the task schedule picks step, the transitions go to per-task
buffers; every `train_freq` vector steps' worth of env steps one update covers a batch of
`batch_size * T` samples of the T active tasks, split by the schedule's shares (`batch_size`
each under ``uniform``). Tasks outside the phase neither step nor get samples.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multiq.agents.learner import Learner, Training
from multiq.agents.policy import Policy
from multiq.agents.terms import TERMS
from multiq.collect.args import CollectorArgs
from multiq.collect.choice import AnyCollector, build_collector
from multiq.collect.cluster import start_ray
from multiq.config import Config, config_changes
from multiq.envs.backends import EnvSettings
from multiq.errors import ConfigError, MultiqError, NonFiniteError, is_out_of_memory
from multiq.mtl.schedules import build_schedule, sample_counts
from multiq.phases.phase import Phase
from multiq.runio.config_file import save_config
from multiq.runio.layout import CHECKPOINT_FILE, CONFIG_FILE, SUMMARY_FILE
from multiq.runio.tracking import Tracker, tensorboard_wanted, wandb_settings
from multiq.train import checkpoint as ckpt
from multiq.train.callbacks import Callback, as_callback
from multiq.train.context import RunContext, recorded_config
from multiq.train.recorder import Recorder
from multiq.train.stop import Interrupted, StopRequests

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5
EVAL_SEED_OFFSET = 1_000_000  # evaluation envs never share seeds with training envs


def crossings(step: int, increment: int, every: int) -> int:
    """How many multiples of `every` going from `step - increment` to `step` passed (0 when
    `every` <= 0)."""
    return 0 if every <= 0 else step // every - (step - increment) // every


def updates_due(before: int, after: int, every: int, learn_from: int, vector_step: int) -> int:
    """Updates due when a phase's env steps of all tasks go from `before` to `after`.

    One update per multiple of `every` passed. Within one vector step (<= `vector_step` env
    steps) the sequential loop's rule: none before `learn_from`. A larger increment (a chunk of
    Ray collectors) counts the multiples past `learn_from`, so that over a phase the updates
    are those of the sequential loop (exactly where `learn_from` is a whole vector step).
    """
    if after - before <= vector_step:
        return crossings(after, after - before, every) if before >= learn_from else 0
    start = max(before, learn_from)
    return crossings(after, after - start, every) if after > start else 0


def crossed(step: int, increment: int, every: int) -> bool:
    """True when going from `step - increment` to `step` passed a multiple of `every` (> 0)."""
    return crossings(step, increment, every) > 0


def linear_epsilon(
    cfg: Config, env_steps: int, total_steps: int, initial_eps: float | None = None
) -> float:
    """SB3's schedule: initial -> final over `exploration_fraction` of training, then flat.

    `initial_eps` replaces the config's `exploration_initial_eps` where given (a phase's own).
    """
    initial = cfg.exploration_initial_eps if initial_eps is None else initial_eps
    decay_steps = cfg.exploration_fraction * total_steps
    progress = 1.0 if decay_steps == 0 else min(env_steps / decay_steps, 1.0)
    return initial + progress * (cfg.exploration_final_eps - initial)


def phase_epsilon(cfg: Config, phase: Phase, phase_env_steps: int, learning: bool) -> float:
    """A phase's epsilon after `phase_env_steps` env steps per task.

    In order: the phase's prefill (`phase.prefill_steps`) acts at `exploration_final_eps`; until
    learning starts the phase acts at 1 (a random warm-up), or at `phase.initial_eps` where the
    phase has one; then the linear schedule from the phase's initial epsilon, counted from the
    phase's start (prefill and warm-up included) over its budget.
    """
    if phase_env_steps < phase.prefill_steps:
        return cfg.exploration_final_eps
    if not learning:
        return 1.0 if phase.initial_eps is None else phase.initial_eps
    return linear_epsilon(cfg, phase_env_steps, phase.steps_per_task, phase.initial_eps)


def config_weights(cfg: Config, names: Sequence[str]) -> dict[str, float]:
    """The config's task weights of `names` (1 where unnamed), normalised to sum to one."""
    raw = {n: float((cfg.task_weights or {}).get(n, 1.0)) for n in names}
    total = sum(raw.values())
    if total <= 0:
        raise ConfigError(f"the task weights of {list(names)} sum to 0: give one a weight > 0")
    return {n: w / total for n, w in raw.items()}


class Explained(Exception):
    """Carries an error the training steps have already checkpointed (or refused to) and
    explained, past `Trainer.run`'s own handling; `run` raises `error` itself."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def signal_name(number: int | None) -> str:
    """`SIGINT` for 2, ... ("a signal" when unknown)."""
    if number is None:
        return "a signal"
    try:
        return signal.Signals(number).name
    except ValueError:
        return "a signal"


def build_terms(phase: Phase, teachers: Mapping[str, Policy], learner: Learner) -> list:
    """The phase's extra loss terms (`multiq.agents.terms.TERMS` by kind), with their teachers
    or state."""
    return [TERMS[term["kind"]](term, teachers, learner) for term in phase.terms]


class Trainer:
    """Owns the current phase's collector, the recorder and checkpoints of a run.

    Args:
        context: the run's parts (`RunContext`): config, learner, run folder, counters, RNG,
            phases, replay, teachers, callbacks, what a resume handed over, and the model's
            hooks that write a checkpoint and run a phase's end actions.
    """

    def __init__(self, context: RunContext):
        self.context = context
        self.learner = context.learner
        self.run_dir = Path(context.run_dir)
        self.state, self.rng = context.state, context.rng
        self.teachers = context.teachers
        self.callback = as_callback(context.callbacks)
        self.replay = context.replay
        resumed = context.resumed
        self._replay_arrays = resumed.replay_arrays
        self._collector_record = resumed.collector_record
        self.checkpointed_config = resumed.checkpointed_config
        self.summary_extra = context.summary_extra
        self.schedule = build_schedule(
            self.cfg.task_schedule, self.cfg.schedule_uniform_mix, self.cfg.schedule_window
        )
        self.collector: AnyCollector | None = None
        self.recorder: Recorder | None = None
        self.shares: np.ndarray | None = None  # the task schedule's current shares
        self._stop = StopRequests()
        self.checkpoint_step: int | None = None  # env step of the last checkpoint written
        self._poisoned = False  # a non-finite update: the weights must not be saved

    def renew(
        self,
        config: Config,
        phases: list[Phase],
        callbacks: Callback | Sequence[Callback] | None,
    ) -> None:
        """A further `learn` call of the same session: the model's config and phases as they
        are now (tasks may have joined), these callbacks; the replay buffers are kept."""
        self.context.config, self.context.phases = config, phases
        self.callback = as_callback(callbacks)

    @property
    def cfg(self) -> Config:
        """The run's config (the context's: `renew` changes it there, in one place)."""
        return self.context.config

    @property
    def phases(self) -> list[Phase]:
        """The run's phases (the context's)."""
        return self.context.phases

    @property
    def tasks(self):
        return list(self.learner.specs.values())

    @property
    def _recording(self) -> Recorder:
        """The recorder of the run in progress."""
        if self.recorder is None:
            raise RuntimeError("the trainer records only while `run` runs")
        return self.recorder

    @property
    def _collecting(self) -> AnyCollector:
        """The collector of the phase in progress."""
        if self.collector is None:
            raise RuntimeError("the trainer collects only while a phase runs")
        return self.collector

    @property
    def phase(self) -> Phase | None:
        index = self.state.phase_index
        return self.phases[index] if index < len(self.phases) else None

    # --- the run -------------------------------------------------------------------------------

    def run(self, evaluate: bool = True) -> dict[str, Any]:
        """Runs the phases from the current one; returns the summary (empty if not evaluated).

        SIGINT/SIGTERM stop it at the next consistent point with a checkpoint (`Interrupted`);
        an env error or a non-finite observation saves a checkpoint of the last consistent
        state; a non-finite loss or gradient keeps the last good checkpoint untouched.
        """
        cfg, state = self.cfg, self.state
        recorded = recorded_config(cfg, self.phases)  # with the budget of the last phase
        save_config(recorded, self.run_dir / CONFIG_FILE)
        total = sum(p.steps_per_task for p in self.phases)
        tracker = Tracker(
            self.run_dir, list(self.learner.specs), total,
            tensorboard=tensorboard_wanted(cfg),
            progress_bar=cfg.progress_bar, start_step=state.env_steps,
            start_wall_s=state.wall_time_s, wandb=wandb_settings(recorded, self.run_dir),
        )  # fmt: skip
        self.recorder = Recorder(
            tracker, state, cfg.seed + EVAL_SEED_OFFSET, EnvSettings.from_config(cfg)
        )
        try:
            if cfg.collectors:  # before the stop handlers: Ray's start puts in its own SIGTERM
                start_ray(cfg.ray_address, cfg.collectors)
            with self._stop:
                if self._checkpoint_is_stale():
                    self.checkpoint()  # a run stopped at any point leaves a usable checkpoint
                self.callback.on_training_start(self)
                while self.phase is not None:
                    if not self._run_phase(self.phase, evaluate):
                        break
                return self._finish(evaluate)
        except Explained as explained:  # the training steps saved (or kept) a checkpoint
            raise explained.error from explained.__cause__
        except NonFiniteError as error:  # e.g. the weights checked before a save
            raise self._kept(error) from error
        except Exception as error:
            raise self._saved(error) from error
        finally:
            tracker.close()

    def checkpoint(self) -> None:
        """Writes a checkpoint of the run as it stands."""
        self.context.save_checkpoint(self.collector_record())
        self.checkpoint_step = self.state.env_steps
        self.checkpointed_config = recorded_config(self.cfg, self.phases).to_dict()

    def _checkpoint_is_stale(self) -> bool:
        """No checkpoint yet, or it holds another config than the config.yaml just written
        (e.g. after `add_task`): a resume would refuse the pair, so a new one is written."""
        if not (self.run_dir / CHECKPOINT_FILE).is_file() or self.checkpointed_config is None:
            return True
        recorded = recorded_config(self.cfg, self.phases).to_dict()
        return bool(config_changes(self.checkpointed_config, recorded))

    def _where(self) -> str:
        return f"env step {self.state.env_steps} (update {self.state.updates})"

    def _resume_hint(self) -> str:
        return f"resume with `multiq train --resume {self.run_dir}`"

    def _saved(self, error: BaseException) -> BaseException:
        """After an error at a consistent point: saves a checkpoint and says so."""
        try:
            self.checkpoint()
        except Exception as failure:  # e.g. a full disk: keep the first error
            log.error("no checkpoint could be written after the error: %s", failure)
            return error
        note = f"a checkpoint of {self._where()} was saved in {self.run_dir}: {self._resume_hint()}"
        if isinstance(error, MultiqError):
            return type(error)(f"{error}; {note}")
        log.error("%s: %s", type(error).__name__, note)
        return error

    def _kept(self, error: NonFiniteError) -> NonFiniteError:
        """After a non-finite update: the last good checkpoint stays as it is."""
        if self.checkpoint_step is None:
            kept = "no checkpoint was written"
        else:
            kept = (
                f"the last good checkpoint ({self.run_dir / CHECKPOINT_FILE}, env step "
                f"{self.checkpoint_step}) is kept and not overwritten"
            )
        return NonFiniteError(
            f"{error} at {self._where()}; training stopped and {kept}. Try a lower "
            "learning_rate or max_grad_norm, or check the task's rewards"
        )

    def _run_phase(self, phase: Phase, evaluate: bool) -> bool:
        """Runs one phase to its budget; False when a callback stopped training."""
        cfg, state, learner = self.cfg, self.state, self.learner
        specs = [learner.specs[n] for n in phase.tasks]
        self._recording.tracker.task_names = list(phase.tasks)  # the progress bar shows these
        record, self._collector_record = self._collector_record, None
        if record is not None and list(record["tasks"]) != list(phase.tasks):
            record = None  # saved in another phase
        restarts = cfg.env_restarts if cfg.on_env_error == "restart" else 0
        # built first: a collector process starts (seconds) while the phase's evaluations run
        args = CollectorArgs(
            specs, cfg.n_envs, cfg.seed + state.vector_steps, self.replay, learner.policy,
            self.rng, restarts, record,
        )  # fmt: skip
        self.collector = build_collector(cfg, phase, args)
        self.shares = np.array(record["shares"]) if record and "shares" in record else None
        try:
            self._start_phase(phase, specs, evaluate)
            finished = self._train(phase, evaluate)
        finally:
            self.collector.close()
            self.collector = None
        if finished:
            self._end_phase(phase, evaluate)
        return finished

    def _start_phase(self, phase: Phase, specs, evaluate: bool) -> None:
        state, learner = self.state, self.learner
        weights = phase.task_weights or config_weights(self.cfg, phase.learned_tasks)
        learner.configure(
            Training(
                task_weights=weights,
                td_tasks=phase.td_tasks,
                frozen=tuple(phase.frozen) + tuple(self.cfg.frozen_groups),
                lr_scales={**(self.cfg.lr_scales or {}), **phase.lr_scales},
                terms=build_terms(phase, self.teachers, learner),
            )
        )
        self._weights = np.array([weights[n] for n in phase.tasks])
        learned = [*specs, *[learner.specs[n] for n in phase.rehearse]]
        self.replay.add_tasks([s for s in learned if s.name not in self.replay.buffers])
        if self._replay_arrays is not None:
            self.replay.load_state(self._replay_arrays)
            self._replay_arrays = None
        new_phase = len(state.phase_log) <= state.phase_index
        if new_phase:
            state.phase_start = state.env_steps
            state.phase_task_env_steps = {n: 0 for n in phase.tasks}
            state.learning_starts_at = self.cfg.learning_starts
            trainable = learner.trainable_groups()
            state.phase_log.append(
                {"start_step": state.env_steps, "end_step": state.env_steps, "trainable": trainable}
            )
        empty = [n for n in phase.rehearse if not len(self.replay.buffers[n])]
        if empty:
            log.warning(
                "phase %r: no stored transitions of %s to rehearse (their replay was not saved "
                "with the checkpoint: set save_replay: true); they are left out",
                phase.name, empty,
            )  # fmt: skip
        if evaluate:
            self._recording.measure_random(learner.policy, self.tasks, self.cfg.eval_episodes)
            if new_phase and phase.eval_at_start:
                self._evaluate()

    def _train(self, phase: Phase, evaluate: bool) -> bool:
        """Steps, updates, logs and evaluates until the phase's budget; False if stopped."""
        try:
            return self._train_steps(phase, evaluate)
        except (Interrupted, KeyboardInterrupt):
            raise
        except NonFiniteError as error:
            raise Explained(self._kept(error) if self._poisoned else self._saved(error)) from error
        except Exception as error:
            if is_out_of_memory(error):
                error = MultiqError(
                    f"out of memory at {self._where()} ({type(error).__name__}: "
                    f"{str(error)[:200]}): lower batch_size, hidden_size, n_envs or buffer_size"
                )
            raise Explained(self._saved(error)) from error

    def _train_steps(self, phase: Phase, evaluate: bool) -> bool:
        cfg, state, learner = self.cfg, self.state, self.learner
        collector, budget = self._collecting, phase.steps_per_task
        update_every = cfg.train_freq * cfg.n_envs * len(phase.tasks)  # env steps of all tasks
        started, start_steps, last_progress = time.perf_counter(), self._phase_total(), 0.0
        last_time, sps = started, 0.0
        if self.shares is None:
            self.shares = self._shares()
        self._poisoned = False
        # updates wait for the phase's prefill too (also after a resume that refills the replay)
        starts_at = max(state.learning_starts_at, phase.prefill_steps)
        while state.phase_env_steps < budget:
            learning = state.phase_env_steps >= starts_at
            epsilon = phase_epsilon(cfg, phase, state.phase_env_steps, learning)
            before, all_before = state.env_steps, self._phase_total()
            collector.step(epsilon, self.shares, state)
            all_steps = self._phase_total()
            if crossed(all_steps, all_steps - all_before, update_every):
                self.shares = self._shares()
                learn_from = starts_at * len(phase.tasks)
                vector_step = cfg.n_envs * len(phase.tasks)
                for _ in range(updates_due(all_before, all_steps, update_every, learn_from,
                                           vector_step)):  # fmt: skip
                    self._update(phase, self.shares)
            if crossed(state.phase_env_steps, state.env_steps - before, cfg.target_update_interval):
                learner.sync_target(cfg.tau)
            now = time.perf_counter()
            state.wall_time_s += now - last_time  # kept current: checkpoints save it
            last_time = now
            sps = (all_steps - start_steps) / max(now - started, 1e-9)
            self._periodic(epsilon, sps, before, evaluate)
            if now - last_progress > PROGRESS_EVERY_S:
                self._recording.tracker.progress(state.env_steps, sps, collector.recent_returns())
                last_progress = now
            if self._stop.requested:
                self._interrupt()
            if not self.callback.on_step(self):
                return False
        self._recording.tracker.progress(state.env_steps, sps, collector.recent_returns())
        return True

    def _interrupt(self) -> None:
        """Saves a checkpoint at this consistent point and raises Interrupted."""
        self.checkpoint()
        raise self._stop.interrupted(
            f"stopped by {signal_name(self._stop.signal_number)} at {self._where()}; "
            f"a checkpoint was saved in {self.run_dir}: {self._resume_hint()}"
        )

    def collector_record(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(meta, tensors) of the live collector and the schedule's shares; None between
        phases."""
        if self.collector is None:
            return None
        meta, tensors = self.collector.record()
        if self.shares is not None:
            meta["shares"] = np.asarray(self.shares, dtype=np.float64).tolist()
        return meta, tensors

    def sample(self, by_name: Mapping[str, int]) -> dict[str, Any]:
        """Task name -> a batch of that many stored transitions (drawn with the run's RNG)."""
        return self.replay.sample(by_name, self.rng)

    def _phase_total(self) -> int:
        return sum(self.state.phase_task_env_steps.values())

    def _end_phase(self, phase: Phase, evaluate: bool) -> None:
        state = self.state
        if evaluate and state.last_eval_step != state.env_steps:
            self._evaluate()
        for action in phase.end_actions:
            self.context.on_phase_end(action, self)
        state.phase_log[-1]["end_step"] = state.env_steps
        state.phase_index += 1
        if phase.end_actions or self.phase is not None:
            self.checkpoint()  # a kill between phases resumes at the next one, actions done

    def _update(self, phase: Phase, shares: np.ndarray) -> None:
        """`gradient_steps` gradient steps, each on a batch split between tasks by `shares`."""
        cfg, state = self.cfg, self.state
        by_name = self._sample_counts(phase, shares)
        self.learner.set_progress(state.phase_env_steps / phase.steps_per_task)
        for _ in range(cfg.gradient_steps):
            probe = cfg.interference_freq > 0 and state.updates % cfg.interference_freq == 0
            try:
                metrics = self.learner.update(self.replay.sample(by_name, self.rng), probe)
            except NonFiniteError:
                self._poisoned = True
                raise
            self._recording.add_update(metrics, by_name)
            state.updates += 1

    def _sample_counts(self, phase: Phase, shares: np.ndarray) -> dict[str, int]:
        """Task name -> samples of one update: `batch_size` per learned task in all, the
        rehearsed tasks (those with data) `rehearsal_share` of it in equal parts, the active
        ones the rest by the schedule's `shares`."""
        batch = self.cfg.batch_size
        rehearse = [n for n in phase.rehearse if len(self.replay.buffers[n])]
        total = batch * (len(phase.tasks) + len(rehearse))
        old = round(total * phase.rehearsal_share) if rehearse else 0
        old = min(max(old, len(rehearse)), total - len(phase.tasks))
        counts = sample_counts(shares, total - old).tolist()
        by_name = dict(zip(phase.tasks, counts, strict=True))
        if rehearse:
            even = sample_counts(np.ones(len(rehearse)), old).tolist()
            by_name.update(zip(rehearse, even, strict=True))
        return by_name

    def _shares(self) -> np.ndarray:
        """[T] the schedule's current shares of env steps and replay samples."""
        stats = self._collecting.stats(self.state, self._weights, self.cfg.schedule_window)
        return self.schedule.shares(stats)

    def _periodic(self, epsilon: float, sps: float, before: int, evaluate: bool) -> None:
        """Logs, evaluates and checkpoints when the step count crosses their intervals."""
        cfg, steps = self.cfg, self.state.env_steps
        increment = steps - before
        if crossed(steps, increment, cfg.log_interval):
            self._log_training(epsilon, sps)
        if evaluate and crossed(steps, increment, cfg.eval_freq):
            self._evaluate()
        if crossed(steps, increment, cfg.checkpoint_freq):
            self.checkpoint()

    def _log_training(self, epsilon: float, sps: float) -> None:
        diagnostics = self.learner.diagnostics()
        recent = self._collecting.recent_returns()
        self._recording.log_training(epsilon, sps, recent, diagnostics)

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, episodes: int, epsilon: float) -> dict[str, dict[str, Any]]:
        """Task name -> {return_mean, return_std, episodes} of the current policy, every task."""
        return self._recording.evaluate(self.learner.policy, self.tasks, episodes, epsilon)

    def _evaluate(self) -> None:
        cfg = self.cfg
        results = self._recording.record_evaluation(
            self.learner.policy, self.tasks, cfg.eval_episodes, cfg.eval_epsilon
        )
        self.callback.on_evaluation(self, results)

    # --- end of training -----------------------------------------------------------------------

    def _finish(self, evaluate: bool) -> dict[str, Any]:
        if evaluate and self.state.last_eval_step != self.state.env_steps:
            self._evaluate()  # a run stopped early by a callback still ends with an evaluation
        self.callback.on_training_end(self)
        self.checkpoint()
        if not evaluate:
            return {}
        summary = self.summary()
        ckpt.atomic_write(
            self.run_dir / SUMMARY_FILE, lambda f: f.write(json.dumps(summary, indent=2).encode())
        )
        return summary

    def summary(self) -> dict[str, Any]:
        """summary.json (schema: `multiq.runio.layout`)."""
        summary = self._recording.summary(self.cfg.task_schedule, self.phase_records())
        return {**summary, **self.summary_extra}

    def phase_records(self) -> list[dict[str, Any]]:
        """Each started phase with its place on the step axis (summary.json's `phases`)."""
        records = []
        for phase, log in zip(self.phases, self.state.phase_log, strict=False):
            records.append(
                {
                    "name": phase.name,
                    "tasks": list(phase.tasks),
                    **log,
                    "steps_per_task": phase.steps_per_task,
                    "terms": [dict(t) for t in phase.terms],
                }
            )
        return records
