"""Meta-learning for DQN over a task pool: Reptile and first-order MAML, one registry entry each.

The meta-weights theta are the online network of a model holding one task, `META_TASK`, with the
pool's spaces (every pool task must have them). One outer iteration draws `meta_batch_size` pool
tasks without replacement (from `seed` and the iteration number alone, so a resumed run draws
the same ones) and runs an inner loop on each: `inner_steps` env steps of DQN from theta
(`multiq.train.inner`, headless: its own replay, the target starting at theta, fresh Adam
moments). Then:
- ``reptile`` (Nichol et al. 2018): theta <- theta + epsilon * mean_i (phi_i - theta), with
  epsilon `meta_step_size` and phi_i the weights after task i's inner loop;
- ``fomaml`` (Finn et al. 2017, first order): the adapted weights collect `meta_query_steps`
  fresh env steps of task i, g_i is the gradient of the TD loss at phi_i on them, and the mean
  gradient, clipped to norm `max_grad_norm`, moves theta by the outer optimiser
  `meta_outer_optimizer` (`OUTER_OPTIMIZERS`): ``adam`` (the default, as in MAML: Adam's
  moments of theta are kept across iterations and in the checkpoint, so every parameter moves
  at most about `meta_lr`, default 1e-3, per iteration) or ``sgd`` (theta <- theta - `meta_lr`
  * g, whose step grows with the gradient: at `meta_lr` 0.05 its Q-values on CartPole drifted
  to several times any return). The outer gradient at phi_i says "raise Q" iteration after
  iteration (a short inner loop leaves Q below its bootstrapped target), so theta's Q grows
  with the total step taken; Adam bounds that step per parameter.

Only parameters move (buffers keep theta's values). The outer loop's env steps (inner loops and
queries; evaluations excluded) are counted, so pretraining budgets can be matched.
The run folder gets config.yaml, run.json, meta.csv (one row per iteration, `rundir.META_KEYS`;
the same values go to TensorBoard and W&B as `meta/<key>` at the iterations done, as `loggers`
asks),
checkpoint.pt (kind ``meta``, written after every iteration), model.pt (a `MultiTaskDQN` holding
`META_TASK` with theta, which `multiq transfer` and `multiq adapt` start from; its config has
`head_init: mean`, so a task added to it starts from the meta-learned head) and summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.config import Config
from multiq.errors import ConfigError, EnvError, NonFiniteError, TaskError
from multiq.registry import lookup
from multiq.runio.config_file import save_config
from multiq.runio.files import atomic_write_text
from multiq.runio.folder import RunFolder, write_run_record
from multiq.runio.layout import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    META_FILE,
    META_KEYS,
    MODEL_FILE,
    SUMMARY_FILE,
    claim_run_dir,
)
from multiq.runio.tracking import ScalarViews, tensorboard_wanted, wandb_settings
from multiq.tasks import make_taskset, task_entries
from multiq.tasks.gym_ids import import_env_modules
from multiq.tasks.spec import TaskSpec
from multiq.threads import torch_threads
from multiq.train import checkpoint as ckpt
from multiq.train.inner import InnerLoop, InnerResult, clone_weights
from multiq.train.stop import StopRequests

META_TASK = "meta"
META_CHECKPOINT_KIND = "meta"
log = logging.getLogger(__name__)
Weights = dict[str, torch.Tensor]


# --- the outer updates (pure) -------------------------------------------------------------------


def reptile_step(theta: Weights, adapted: Sequence[Weights], step_size: float) -> Weights:
    """theta + step_size * mean_i (adapted_i - theta), for every entry of `theta`.

    Args:
        theta: name -> tensor, the meta-weights.
        adapted: per task, name -> tensor of the same shapes (the inner loops' results).
        step_size: epsilon.
    """
    if not adapted:
        raise ValueError("reptile_step needs at least one adapted set of weights")
    return {
        name: value + step_size * (torch.stack([a[name] for a in adapted]).mean(0) - value)
        for name, value in theta.items()
    }


def mean_gradient(
    names: Sequence[str], grads: Sequence[Weights], max_norm: float | None = None
) -> Weights:
    """mean_i grads_i of each name, scaled as a whole to global L2 norm `max_norm` if larger.

    Args:
        names: the parameters to average.
        grads: per task, name -> gradient at the adapted weights (same shapes).
        max_norm: clip of the mean's global L2 norm (None: no clip).
    """
    if not grads:
        raise ValueError("the outer step needs at least one gradient")
    mean = {name: torch.stack([g[name] for g in grads]).mean(0) for name in names}
    if max_norm is None:
        return mean
    norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in mean.values()])))
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return {name: scale * g for name, g in mean.items()}


def fomaml_step(
    theta: Weights, grads: Sequence[Weights], lr: float, max_norm: float | None = None
) -> Weights:
    """theta - lr * mean_i grads_i, the mean gradient first scaled to norm `max_norm` if larger
    (the ``sgd`` outer optimiser).

    Args:
        theta: name -> tensor, the meta-weights.
        grads: per task, name -> gradient at the adapted weights (same shapes).
        lr: the outer SGD step size.
        max_norm: clip of the mean gradient's global L2 norm (None: no clip).
    """
    mean = mean_gradient(list(theta), grads, max_norm)
    return {name: value - lr * mean[name] for name, value in theta.items()}


@dataclass
class AdamMoments:
    """The outer Adam's state of theta (PyTorch's Adam without weight decay or amsgrad).

    Attributes:
        step: outer steps taken.
        first: name -> exponential mean of the gradient (empty before the first step).
        second: name -> exponential mean of the squared gradient.
    """

    step: int = 0
    first: dict[str, torch.Tensor] = field(default_factory=dict)
    second: dict[str, torch.Tensor] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Nested dicts of tensors and numbers (a checkpoint's ``meta_outer`` entry)."""
        return {"step": self.step, "first": self.first, "second": self.second}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> AdamMoments:
        """The moments `state_dict` wrote (an empty mapping: no step yet)."""
        if not state:
            return cls()
        return cls(int(state["step"]), dict(state["first"]), dict(state["second"]))


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def adam_step(
    theta: Weights, grad: Weights, moments: AdamMoments, lr: float
) -> tuple[Weights, AdamMoments]:
    """One Adam step of theta on `grad`, as `torch.optim.Adam` (betas `ADAM_BETAS`, eps
    `ADAM_EPS`): m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2, and with t steps done,
    theta <- theta - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). Each entry moves
    by about lr at most, whatever the gradient's scale (exactly lr * sign(g) at the first step;
    below 1.01 lr over the first four).

    Args:
        theta: name -> tensor, the meta-weights.
        grad: name -> the outer gradient (same shapes).
        moments: the state before the step (not modified).
        lr: the step size.

    Returns:
        (the new theta, the new moments).
    """
    b1, b2 = ADAM_BETAS
    t = moments.step + 1
    first, second, new = {}, {}, {}
    for name, value in theta.items():
        g = grad[name]
        m = moments.first.get(name, torch.zeros_like(g)) * b1 + (1 - b1) * g
        v = moments.second.get(name, torch.zeros_like(g)) * b2 + (1 - b2) * g * g
        denom = (v / (1 - b2**t)).sqrt() + ADAM_EPS
        new[name] = value - lr * (m / (1 - b1**t)) / denom
        first[name], second[name] = m, v
    return new, AdamMoments(t, first, second)


# --- the algorithms -------------------------------------------------------------------------


@dataclass
class TaskOutcome:
    """One inner loop of an outer iteration: what the algorithm combines, and what it did."""

    contribution: Weights
    inner: InnerResult
    env_steps: int


Contribute = Callable[[InnerLoop, TaskSpec, int, Config, Sequence[int]], TaskOutcome]
OuterState = dict[str, Any]
"""An algorithm's state across outer iterations (nested dicts of tensors and numbers; kept in
the checkpoint as ``meta_outer``; empty for a new run and for reptile)."""
Combine = Callable[[Weights, list[Weights], Config, OuterState], tuple[Weights, OuterState]]


@dataclass(frozen=True)
class MetaAlgorithm:
    """A meta-learning algorithm: what each task's inner loop contributes, and how
    contributions update theta (names of parameters only) and the algorithm's `OuterState`."""

    name: str
    contribute: Contribute
    combine: Combine


def _adapt(loop: InnerLoop, spec: TaskSpec, seed: int, cfg: Config, eval_at) -> InnerResult:
    rng = np.random.default_rng(seed)
    return loop.train(spec, cfg.inner_steps, seed, eval_at=eval_at, rng=rng)


def _reptile_contribution(loop, spec, seed, cfg, eval_at) -> TaskOutcome:
    inner = _adapt(loop, spec, seed, cfg, eval_at)
    return TaskOutcome(loop.weights(), inner, inner.env_steps)


def _fomaml_contribution(loop, spec, seed, cfg, eval_at) -> TaskOutcome:
    inner = _adapt(loop, spec, seed, cfg, eval_at)
    rng = np.random.default_rng([seed, 1])
    grads, query_steps = loop.query_gradient(spec, cfg.meta_query_steps, seed + 1, rng)
    return TaskOutcome(grads, inner, inner.env_steps + query_steps)


def _reptile_combine(theta: Weights, parts: list[Weights], cfg: Config, state: OuterState):
    return reptile_step(theta, parts, cfg.meta_step_size), state


OuterStep = Callable[[Weights, Weights, OuterState, float], tuple[Weights, OuterState]]


def _sgd(theta: Weights, grad: Weights, state: OuterState, lr: float):
    return {name: value - lr * grad[name] for name, value in theta.items()}, state


def _adam(theta: Weights, grad: Weights, state: OuterState, lr: float):
    new, moments = adam_step(theta, grad, AdamMoments.from_state_dict(state), lr)
    return new, moments.state_dict()


OUTER_OPTIMIZERS: dict[str, OuterStep] = {"adam": _adam, "sgd": _sgd}
"""fomaml's outer optimisers (`meta_outer_optimizer`): (theta, clipped mean gradient, state,
`meta_lr`) -> (new theta, new state)."""


def _fomaml_combine(theta: Weights, parts: list[Weights], cfg: Config, state: OuterState):
    step = lookup(OUTER_OPTIMIZERS, cfg.meta_outer_optimizer, "outer optimiser", "optimisers")
    return step(theta, mean_gradient(list(theta), parts, cfg.max_grad_norm), state, cfg.meta_lr)


ALGORITHMS: dict[str, MetaAlgorithm] = {
    "reptile": MetaAlgorithm("reptile", _reptile_contribution, _reptile_combine),
    "fomaml": MetaAlgorithm("fomaml", _fomaml_contribution, _fomaml_combine),
}


# --- the pool ---------------------------------------------------------------------------------


def build_pool(entries: Any) -> list[TaskSpec]:
    """The meta-training tasks of `meta_tasks` entries; all must share spaces.

    Raises:
        TaskError: an empty pool, or tasks whose observations or actions differ.
    """
    pool = list(make_taskset(entries))
    first = pool[0]
    for spec in pool[1:]:
        if (spec.obs_shape, spec.obs_dtype, spec.num_actions) != (
            first.obs_shape, first.obs_dtype, first.num_actions,
        ):  # fmt: skip
            raise TaskError(
                f"meta_tasks: task {spec.name!r} has observations {spec.obs_shape} "
                f"{spec.obs_dtype} and {spec.num_actions} actions, {first.name!r} has "
                f"{first.obs_shape} {first.obs_dtype} and {first.num_actions}; a meta pool's "
                "tasks must share spaces (use one task family)"
            )
    return pool


def as_meta_task(spec: TaskSpec) -> TaskSpec:
    """`spec` under the name `META_TASK` (the meta-weights' one task)."""
    source = {**spec.source, "name": META_TASK} if spec.source else {}
    return dataclasses.replace(spec, name=META_TASK, source=source)


def iteration_tasks(seed: int, iteration: int, pool_size: int, batch: int) -> list[int]:
    """The pool indices an outer iteration trains on: drawn from (seed, iteration) alone."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, iteration]))
    return rng.choice(pool_size, size=min(batch, pool_size), replace=False).tolist()


def inner_seed(seed: int, iteration: int, slot: int) -> int:
    """The env and sampling seed of one inner loop (below 2**31 for MinAtar's numpy seeding)."""
    state = np.random.SeedSequence([seed, iteration, slot]).generate_state(1)[0]
    return int(state) % (2**31 - 2**20)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class MetaState:
    """Where a meta run stands (JSON in its checkpoint).

    Attributes:
        iteration: outer iterations done.
        env_steps: env steps of the inner loops and queries so far.
        wall_time_s: seconds of meta training over all sessions.
        rows: meta.csv's rows so far (`rundir.META_KEYS`).
    """

    iteration: int = 0
    env_steps: int = 0
    wall_time_s: float = 0.0
    rows: list[dict[str, float]] = field(default_factory=list)


class MetaRun:
    """The outer loop of `multiq meta` over a run folder (see the module docstring).

    Args:
        model: a `MultiTaskDQN` holding `META_TASK` (its online net is theta).
        pool: the meta-training tasks.
        state: where a resumed run stands (None: a new run).
        outer: the algorithm's `OuterState` of a resumed run (None: a new run).
    """

    def __init__(
        self,
        model,
        pool: Sequence[TaskSpec],
        state: MetaState | None = None,
        outer: OuterState | None = None,
    ):
        self.model, self.cfg = model, model.config
        self.outer: OuterState = dict(outer or {})
        self.algorithm = lookup(ALGORITHMS, self.cfg.meta_algo, "meta algorithm", "algorithms")
        self.pool_entries = task_entries(pool)  # their own names: they rebuild the pool
        self.pool = [as_meta_task(spec) for spec in pool]
        self.state = state or MetaState()
        self.run_dir = Path(model.run_dir)
        inner_learner = type(model.learner)(
            [self.pool[0]], model.learner.settings, model.learner.device
        )
        self.loop = InnerLoop(inner_learner, self.cfg, META_TASK)
        self._stop = StopRequests()

    @property
    def finished(self) -> bool:
        """True when every outer iteration is done and the run folder holds the finished run
        (its summary.json, written last, is this state's): `run` has nothing to do."""
        if self.state.iteration < self.cfg.meta_iterations:
            return False
        path = self.run_dir / SUMMARY_FILE
        return path.is_file() and path.read_text() == summary_text(self.summary())

    def run(self) -> dict[str, Any]:
        """Runs the remaining outer iterations; returns the summary. SIGINT/SIGTERM stop it
        after a checkpoint of the last whole iteration (`Interrupted`). A finished run (see
        `finished`) is left as it is."""
        if self.finished:
            log.info("%s: the meta run is finished; nothing to train", self.run_dir)
            return self.summary()
        with RunFolder(self.run_dir), torch_threads(self.cfg.torch_threads):
            write_run_record(self.run_dir, self.model.runtime_record())
            save_config(self.cfg, self.run_dir / CONFIG_FILE)
            self._views = ScalarViews(
                self.run_dir, tensorboard_wanted(self.cfg), self.state.iteration,
                wandb_settings(self.cfg, self.run_dir),
            )  # fmt: skip
            try:
                with self._stop:
                    if not (self.run_dir / CHECKPOINT_FILE).is_file():
                        self.checkpoint()
                    while self.state.iteration < self.cfg.meta_iterations:
                        self._iteration()
                summary = self._finish()
            finally:
                self._views.close()
        return summary

    def _iteration(self) -> None:
        cfg, state = self.cfg, self.state
        started = time.perf_counter()
        theta = clone_weights(self.model.learner.online.state_dict())
        evaluate = self._evaluates(state.iteration)
        eval_at = (0, cfg.inner_steps) if evaluate else ()
        indices = iteration_tasks(cfg.seed, state.iteration, len(self.pool), cfg.meta_batch_size)
        outcomes = []
        for slot, index in enumerate(indices):
            self.loop.load(theta)
            seed = inner_seed(cfg.seed, state.iteration, slot)
            try:
                outcomes.append(
                    self.algorithm.contribute(self.loop, self.pool[index], seed, cfg, eval_at)
                )
            except (NonFiniteError, EnvError) as error:
                raise type(error)(f"{error}; {self._kept()}") from error
            if self._stop.requested:
                raise self._stop.interrupted(
                    f"meta run stopped by a signal in iteration {state.iteration}; {self._kept()}"
                )
        params = [name for name, _ in self.model.learner.online.named_parameters()]
        update, outer = self.algorithm.combine(
            {n: theta[n] for n in params}, [o.contribution for o in outcomes], cfg, self.outer
        )
        self._set_theta(update)
        self.outer = outer
        state.env_steps += sum(o.env_steps for o in outcomes)
        state.wall_time_s += time.perf_counter() - started
        state.rows.append(self._row(outcomes, evaluate))
        state.iteration += 1
        self._views.log(state.iteration, view_scalars(state.rows[-1]))
        self.checkpoint()

    def _evaluates(self, iteration: int) -> bool:
        every, last = self.cfg.meta_eval_freq, self.cfg.meta_iterations - 1
        return iteration == last or (every > 0 and iteration % every == 0)

    def _set_theta(self, update: Mapping[str, torch.Tensor]) -> None:
        if not all(bool(torch.isfinite(t).all()) for t in update.values()):
            raise NonFiniteError(
                f"the meta update of iteration {self.state.iteration} is not finite; "
                f"{self._kept()}. Lower meta_step_size, meta_lr or learning_rate"
            )
        learner = self.model.learner
        with torch.no_grad():
            for name, param in learner.online.named_parameters():
                param.copy_(update[name])
        learner.sync_target(1.0)

    def _row(self, outcomes: Sequence[TaskOutcome], evaluated: bool) -> dict[str, float]:
        returns = [r for o in outcomes for r in o.inner.returns]
        k = self.cfg.inner_steps
        pre = [o.inner.evaluations[0] for o in outcomes] if evaluated else []
        post = [o.inner.evaluations[k] for o in outcomes] if evaluated else []
        row = {
            "iteration": self.state.iteration,
            "env_steps": self.state.env_steps,
            "wall_time_s": round(self.state.wall_time_s, 3),
            "inner_return": _mean(returns),
            "pre_return": _mean(pre),
            "post_return": _mean(post),
        }
        return {key: row[key] for key in META_KEYS}

    def _kept(self) -> str:
        return (
            f"the checkpoint of iteration {self.state.iteration} in {self.run_dir} is kept: "
            f"resume with `multiq meta --resume {self.run_dir}`"
        )

    def checkpoint(self) -> None:
        """Writes checkpoint.pt (theta, config, tasks, the meta state, the algorithm's outer
        state as ``meta_outer``) and meta.csv."""
        meta, tensors = self.model.model_record()
        meta["meta_state"] = dataclasses.asdict(self.state)
        meta["pool"] = self.pool_entries
        tensors = {**tensors, "meta_outer": self.outer}
        ckpt.save_tensors(self.run_dir / CHECKPOINT_FILE, META_CHECKPOINT_KIND, meta, tensors)
        write_meta_csv(self.run_dir / META_FILE, self.state.rows)

    def _finish(self) -> dict[str, Any]:
        self.model.save(self.run_dir / MODEL_FILE)
        summary = self.summary()
        atomic_write_text(self.run_dir / SUMMARY_FILE, summary_text(summary))
        from multiq.report.meta import plot_meta

        plot_meta(self.run_dir)
        return summary

    def summary(self) -> dict[str, Any]:
        """summary.json of the run as it stands."""
        last = self.state.rows[-1] if self.state.rows else {}
        return {
            "meta": {
                "algorithm": self.cfg.meta_algo,
                "pool": [entry["name"] for entry in self.pool_entries],
                "iterations": self.state.iteration,
                "env_steps": self.state.env_steps,
                "wall_time_s": self.state.wall_time_s,
                "inner_steps": self.cfg.inner_steps,
                "final": last,
            }
        }


def summary_text(summary: Mapping[str, Any]) -> str:
    """summary.json's text of a meta run's summary."""
    return json.dumps(summary, indent=2, allow_nan=True)


def view_scalars(row: Mapping[str, float]) -> dict[str, float]:
    """A meta.csv row as TensorBoard/W&B scalars, `meta/<key>` (logged at the iterations done;
    the returns before and after adaptation only on evaluated iterations)."""
    return {f"meta/{k}": v for k, v in row.items() if k != "iteration" and math.isfinite(v)}


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def write_meta_csv(path: Path, rows: Sequence[Mapping[str, float]]) -> None:
    """meta.csv: a header of `META_KEYS`, one row per outer iteration."""
    lines = [",".join(META_KEYS)]
    lines += [",".join(repr(float(row[k])) if k not in ("iteration", "env_steps")
                       else str(int(row[k])) for k in META_KEYS) for row in rows]  # fmt: skip
    atomic_write_text(path, "\n".join(lines) + "\n")


# --- building and resuming ------------------------------------------------------------------


def prepare_meta(cls, run_dir: str | Path | None, config: Config) -> MetaRun:
    """A new meta run: the pool of `config.meta_tasks`, a model holding `META_TASK`.

    Raises:
        ConfigError: an unknown algorithm (with did-you-mean).
        TaskError: a bad pool.
    """
    lookup(ALGORITHMS, config.meta_algo, "meta algorithm", "algorithms")
    import_env_modules(config.env_imports)
    pool = build_pool(config.meta_tasks)
    slot = as_meta_task(pool[0])
    # settled: the inner loops keep the Config defaults, with which the inner_* keys were tuned
    config = config.replace(tasks=task_entries([slot]), head_init="mean").settled()
    run_dir = run_dir if run_dir is not None else claim_run_dir(f"meta-{config.meta_algo}")
    model = cls(config=config, task_specs=[slot], run_dir=run_dir)
    return MetaRun(model, pool)


def resume_meta(cls, run_dir: str | Path, overrides: Mapping[str, Any]) -> MetaRun:
    """The meta run of `run_dir` where its checkpoint stands; `overrides` may raise
    `meta_iterations` (or change settings that do not shape the network).

    Raises:
        CheckpointError: no readable meta checkpoint.
        ConfigError: an override that reshapes the network.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    meta, payload = ckpt.load_tensors(
        path, META_CHECKPOINT_KIND, required=("online", "config", "tasks", "meta_state", "pool")
    )
    from multiq.recipes.transfer import NETWORK_KEYS

    shaping = sorted(set(overrides) & {*NETWORK_KEYS, "meta_tasks", "seed"})
    if shaping:
        raise ConfigError(
            f"a resumed meta run keeps its network, pool and seed: cannot change {shaping}"
        )
    model = cls.from_record(meta, payload)
    if "meta_outer_optimizer" not in meta["config"] and "meta_outer_optimizer" not in overrides:
        # written before issue 27: its fomaml stepped by SGD (and its meta_lr is SGD's)
        overrides = {**overrides, "meta_outer_optimizer": "sgd"}
    model.config = model.config.replace(**overrides)
    model.run_dir = Path(run_dir)
    import_env_modules(model.config.env_imports)
    pool = list(make_taskset(meta["pool"]))
    state = MetaState(**meta["meta_state"])
    if state.iteration > model.config.meta_iterations:
        raise ConfigError(
            f"the run has done {state.iteration} iterations, more than meta_iterations="
            f"{model.config.meta_iterations}; raise it to train further"
        )
    # a checkpoint written before the outer state was kept starts fresh Adam moments
    return MetaRun(model, pool, state, payload.get("meta_outer") or {})
