"""Transfer recipes: from a trained source agent to new target tasks, one mode per registry entry.

Every mode gives the target tasks the same budget (`total_steps_per_task` env steps per target
task) and evaluates every task the agent holds at the start of the target phase (jumpstart, the
source tasks' return before), every `eval_freq` steps and at the end (their return after).

Modes (`MODES`):
- ``scratch``: the baseline: a fresh agent on the targets with the source's settings.
- ``finetune``: the source agent takes the targets on (`add_task`): every transferable weight
  comes from the source; input layers where the targets' observations differ and heads for
  their actions are new; only the targets step and learn. A target named as a source task
  (e.g. the source's ``CartPole`` with other env kwargs) keeps that task's head and input layer
  (loading by name) and counts as a target, not a source.
- ``freeze``: as finetune, with the trunk and the source's input layers frozen.
- ``joint``: the source tasks keep stepping and learning beside the targets with
  `L = L_source + lambda * L_target` (means over source and over target tasks; `transfer_lambda`).
- ``distill``: the source agent, frozen, teaches the student on the source tasks' states with
  `distill_weight * KL(softmax(Q_T / tau) || softmax(Q_S / tau))` (Rusu et al. 2016); the
  student learns the targets by TD; the source envs step to supply those states.
- ``progressive``: each target gets a new column with adapters from the source's columns, which
  freeze (Rusu et al. 2016, `multiq.nets.progressive`); a source of scheme shared or independent
  becomes a progressive net first (a column per source task). Targets need names of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiq.agents.learner import Learner, LearnerSettings
from multiq.errors import ConfigError, MultiqError
from multiq.nets.progressive import SOURCE_SCHEMES, ProgressiveQNet, column_groups
from multiq.phases.phase import Phase
from multiq.registry import lookup
from multiq.runio.layout import claim_run_dir
from multiq.tasks import make_taskset, task_entries

SOURCE_TEACHER = "source"
# config keys that shape the network: a mode that starts from the source's weights keeps them
NETWORK_KEYS = (
    "scheme", "hidden_size", "mlp_layers", "conv_filters", "cnn_hidden_size", "dueling",
    "task_embedding", "task_embedding_dim", "private_merge", "routing", "routing_modules",
    "popart",
)  # fmt: skip


@dataclass
class TransferSetup:
    """What a recipe is given: source and target task names, the target budget, the config."""

    source_names: list[str]
    target_names: list[str]
    steps_per_task: int
    config: Any


def _target_phase(setup: TransferSetup, mode: str, **fields: Any) -> Phase:
    """The phase on the targets; it explores from `transfer_initial_eps` and first fills the
    replay for `transfer_prefill_steps` with the agent's policy as it starts (the source's where
    a task's head comes from the source: `head_init` mean or a target named as a source task)."""
    fields.setdefault("initial_eps", setup.config.transfer_initial_eps)
    fields.setdefault("prefill_steps", setup.config.transfer_prefill_steps)
    return Phase(
        name=f"transfer-{mode}",
        tasks=tuple(fields.pop("tasks", setup.target_names)),
        steps_per_task=setup.steps_per_task,
        eval_at_start=True,
        **fields,
    )


def _finetune(model, setup: TransferSetup, old_groups: Sequence[str]) -> Phase:
    return _target_phase(setup, "finetune", terms=_l2_init_terms(model, setup, old_groups))


def _l2_init_terms(model, setup: TransferSetup, old_groups: Sequence[str]) -> tuple:
    """With `l2_init` > 0: anchors the source's trunk and input layers (the groups it had
    before the targets joined) at their weights now, the start of the phase (the anchors go
    into checkpoints with the learner), and returns the phase's L2-SP term; else ()."""
    beta = setup.config.l2_init
    if beta <= 0:
        return ()
    if "trunk" not in old_groups:
        raise ConfigError(
            f"l2_init pulls the shared trunk towards the source's, but scheme "
            f"{model.config.scheme!r} has none; set l2_init=0, or use a scheme with a trunk "
            "(shared, conditioned, shared-private, routed)"
        )
    groups = ["trunk", *[g for g in old_groups if g.startswith("inputs/")]]
    model.learner.anchor_groups(groups)
    return ({"kind": "l2_init", "weight": beta},)


def _freeze(model, setup: TransferSetup, old_groups: Sequence[str]) -> Phase:
    if "trunk" not in old_groups:
        raise ConfigError(
            f"transfer mode 'freeze' freezes the shared trunk, but scheme "
            f"{model.config.scheme!r} has none; use mode 'finetune', or a scheme with a trunk "
            "(shared, conditioned, shared-private, routed)"
        )
    frozen = ("trunk", *[g for g in old_groups if g.startswith("inputs/")])
    return _target_phase(setup, "freeze", frozen=frozen)


def _joint(model, setup: TransferSetup, old_groups: Sequence[str]) -> Phase:
    lam = setup.config.transfer_lambda
    weights = {n: 1.0 / len(setup.source_names) for n in setup.source_names}
    weights.update({n: lam / len(setup.target_names) for n in setup.target_names})
    tasks = (*setup.source_names, *setup.target_names)
    terms = _l2_init_terms(model, setup, old_groups)
    return _target_phase(setup, "joint", tasks=tasks, task_weights=weights, terms=terms)


def _distill(model, setup: TransferSetup, old_groups: Sequence[str]) -> Phase:
    cfg = setup.config
    weights = {n: 1.0 / len(setup.source_names) for n in setup.source_names}
    weights.update({n: 1.0 / len(setup.target_names) for n in setup.target_names})
    term = {
        "kind": "distill",
        "teachers": {n: SOURCE_TEACHER for n in setup.source_names},
        "weight": cfg.distill_weight,
        "temperature": cfg.distill_temperature,
    }
    tasks = (*setup.source_names, *setup.target_names)
    return _target_phase(
        setup, "distill", tasks=tasks, task_weights=weights,
        td_tasks=tuple(setup.target_names), terms=(term,),
    )  # fmt: skip


def _progressive(model, setup: TransferSetup, old_groups: Sequence[str]) -> Phase:
    """Each target gets a new column with adapters from the source's columns, which freeze (a
    source of scheme shared or independent first becomes a progressive net: a column per
    source task, its weights the source's)."""
    reused = [n for n in setup.target_names if f"head/{n}" in old_groups]
    if reused:
        raise ConfigError(
            f"transfer mode 'progressive' gives each target a new column, but target(s) "
            f"{reused} are named as source tasks; give them another name ({{id: ..., name: ...}})"
        )
    if model.config.scheme != "progressive":
        _to_progressive(model, setup.target_names)
    net = model.learner.online
    sources = [n for n in net.specs if n not in setup.target_names]
    model.run_info["progressive"] = {"column_parameters": net.column_parameters()}
    return _target_phase(setup, "progressive", frozen=column_groups(sources))


def _to_progressive(model, targets: Sequence[str]) -> None:
    """Rebuilds the model's learner as a progressive net: the source tasks' columns take the
    source's weights (`ProgressiveQNet.load_source`), then each target joins with its column."""
    scheme, old = model.config.scheme, model.learner
    if scheme not in SOURCE_SCHEMES or model.config.popart:
        raise ConfigError(
            f"transfer mode 'progressive' builds columns from a source of scheme "
            f"{' / '.join(SOURCE_SCHEMES)} without popart; the source has scheme {scheme!r}"
            f"{' with popart' if model.config.popart else ''}: use another mode"
        )
    config = model.config.replace(scheme="progressive")
    sources = [spec for name, spec in old.specs.items() if name not in targets]
    learner = Learner(sources, LearnerSettings.from_config(config), model.device)
    net = learner.online
    assert isinstance(net, ProgressiveQNet)  # the scheme of `config`
    net.load_source(scheme, old.online.state_dict())
    learner.sync_target(1.0)
    for name in targets:
        learner.add_task(old.specs[name], head_init=config.head_init)
    learner.load_balance_state_dict(old.balance_state_dict())
    model.learner, model.config = learner, config


Recipe = Callable[[Any, TransferSetup, Sequence[str]], Phase]
MODES: dict[str, Recipe | None] = {
    "scratch": None,
    "finetune": _finetune,
    "freeze": _freeze,
    "joint": _joint,
    "distill": _distill,
    "progressive": _progressive,
}


def load_source(cls, source) -> Any:
    """The source model: a MultiTaskDQN, a model.pt file or a run folder holding one."""
    if isinstance(source, cls):
        return source
    path = Path(source)
    model_file = path / "model.pt" if path.is_dir() else path
    if not model_file.is_file():
        where = f"run folder {path} has no model.pt" if path.is_dir() else f"no file at {path}"
        raise MultiqError(
            f"transfer source: {where}; give a finished run folder (multiq train writes "
            "RUN_DIR/model.pt at the end) or a model.pt file"
        )
    return cls.load(model_file)


def prepare_transfer(
    cls,
    source,
    tasks: str | Sequence[Any],
    mode: str,
    run_dir: str | Path | None,
    hyperparameters: Mapping[str, Any],
):
    """Builds the model and plans the transfer phase of `mode` (see the module docstring)."""
    recipe = lookup(MODES, mode, "transfer mode", "transfer modes")
    source_model = load_source(cls, source)
    config = source_model.config.replace(**hyperparameters)
    if recipe is not None:
        check_network_kept(mode, source_model.config, config)
    config = config.replace(task_weights=None)
    run_dir = run_dir if run_dir is not None else claim_run_dir(f"transfer-{mode}")
    if recipe is None:  # scratch: a fresh agent with the same settings, on the targets only
        model = cls(tasks, config=config, run_dir=run_dir)
        setup = TransferSetup(source_model.task_names, model.task_names, _budget(model), config)
        # no source to keep: the config's exploration schedule and an empty replay
        phase = _target_phase(setup, "scratch", initial_eps=None, prefill_steps=0)
    else:
        model = cls(config=config, task_specs=source_model.task_specs, run_dir=run_dir)
        model.copy_weights_from(source_model)
        old_groups = list(model.learner.online.param_groups())
        if mode == "distill":
            model.add_teacher(SOURCE_TEACHER, source_model)
        targets = _add_targets(model, tasks, source_model.task_names)
        sources = [n for n in source_model.task_names if n not in targets]
        if not sources and mode in ("joint", "distill"):
            raise ConfigError(f"transfer mode {mode!r} needs source tasks besides the targets")
        setup = TransferSetup(sources, targets, _budget(model), config)
        phase = recipe(model, setup, old_groups)
    model.add_phase(phase)
    model.run_info["transfer"] = {
        "mode": mode,
        "source": "<model>" if isinstance(source, cls) else str(source),
        "source_tasks": setup.source_names,
        "target_tasks": setup.target_names,
    }
    return model


def _budget(model) -> int:
    return model.config.total_steps_per_task


def check_network_kept(mode: str, source: Any, config: Any) -> None:
    """Raises ConfigError when a mode that starts from the source's weights changes its shape."""
    changed = [k for k in NETWORK_KEYS if getattr(config, k) != getattr(source, k)]
    if changed:
        given = ", ".join(f"{k}={getattr(config, k)!r}" for k in changed)
        kept = ", ".join(f"{k}={getattr(source, k)!r}" for k in changed)
        raise ConfigError(
            f"transfer mode {mode!r} starts from the source's network, so its shape keys cannot "
            f"change: {given} (the source has {kept}); drop them, or use mode 'scratch'"
        )


def _add_targets(model, tasks: str | Sequence[Any], source_names: Sequence[str]) -> list[str]:
    """Adds the target tasks to a copy of the source; returns their names.

    A target named as a source task keeps that task's weights (loading by name): it only gets
    the new env, and counts as a target.
    """
    targets = list(make_taskset(tasks))
    for spec in targets:
        if spec.name in source_names:
            model.learner.replace_task_env(spec)
        else:
            model.add_task(spec)
    model.config = model.config.replace(tasks=task_entries(model.task_specs))
    return [s.name for s in targets]


def prepare_distillation(
    cls, sources: Sequence[Any], run_dir: str | Path | None, hyperparameters: Mapping[str, Any]
):
    """A student that learns every task of several trained agents from their Q-values.

    Policy distillation (Rusu et al. 2016): the student's loss on each task is only the KL term
    to that task's teacher, on states the student collects itself (epsilon-greedy) into its
    replay. The teachers' returns, measured with the student's evaluation settings, go to
    summary.json (`distill.teacher_returns`) so the student is reported against each teacher.

    Raises:
        ConfigError: fewer than one source, or two teachers holding tasks of one name.
    """
    if not sources:
        raise ConfigError("distillation needs at least one trained run (teacher)")
    teachers = [load_source(cls, s) for s in sources]
    source_of: dict[str, int] = {}
    for index, teacher in enumerate(teachers):
        for name in teacher.task_names:
            if name in source_of:
                raise ConfigError(
                    f"task {name!r} is in teachers {sources[source_of[name]]} and "
                    f"{sources[index]}; each task needs one teacher"
                )
            source_of[name] = index
    owner = {name: f"teacher{index}" for name, index in source_of.items()}
    specs = [s for t in teachers for s in t.task_specs]
    config = teachers[0].config.replace(task_weights=None, **hyperparameters)
    if run_dir is None:
        run_dir = claim_run_dir("distill")
    student = cls(config=config, task_specs=specs, run_dir=run_dir)
    for index, teacher in enumerate(teachers):
        student.add_teacher(f"teacher{index}", teacher)
    cfg = student.config
    term = {
        "kind": "distill",
        "teachers": owner,
        "weight": cfg.distill_weight,
        "temperature": cfg.distill_temperature,
    }
    names = tuple(owner)
    student.add_phase(Phase("distill", names, cfg.total_steps_per_task, td_tasks=(), terms=(term,)))
    teacher_returns = {}
    for teacher in teachers:
        results = teacher.evaluate(cfg.eval_episodes, cfg.eval_epsilon)
        teacher_returns.update({n: r["return_mean"] for n, r in results.items()})
    student.run_info["distill"] = {
        "teachers": {f"teacher{i}": str(s) for i, s in enumerate(sources)},
        "teacher_of": owner,
        "teacher_returns": teacher_returns,
    }
    return student
