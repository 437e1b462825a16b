"""Every config key, declared once, in its section.

Each declaration gives the key's type (its annotation), default, allowed values, meaning and,
where good values differ between kinds of tasks, its default per observation family
(`by_family`). `multiq.config.Config` adds validation and construction to these fields; `multiq
config` lists them by section. Step counts ending in "per task" count environment steps of one
task (summed over its `n_envs` copies); when a task schedule steps tasks unequally, they count
the mean over tasks (a run's budget is `T * total_steps_per_task` env steps in all).

Defaults that follow the tasks (as rl-zoo keeps hyperparameters per env): a run whose tasks all
share an observation family (`multiq.tasks.obs_family`) with values here takes them for every
such key not set explicitly (`multiq.tasks.defaults`). The families:

- ``minatar`` (MinAtar's 10x10 grids): the MinAtar paper's DQN (Young & Tian 2019); the base
  family, whose values are the defaults, which tasks of several families (or of a family
  without values) keep.
- ``vector`` (classic control): configs/classic.yaml, at the train_freq 4 that
  tests/test_learning.py calibrated (CartPole and Acrobot far above random in 20k steps).
- ``atari`` (4x84x84 frame stacks): rl-zoo's Atari DQN (10M steps, 100k replay and learning
  starts, Adam 1e-4, target copy every 1k steps); evaluation every 100k as configs/atari.yaml.
- ``minigrid`` (MiniGrid's 3x7x7 index grids): the vector family's values, chosen by
  benchmarks/minigrid_defaults.py (candidates on DoorKey-5x5 and LavaGapS5, 3 seeds each;
  benchmarks/results/minigrid_defaults.md): the base values learned neither layout in 100k
  steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from multiq.config import convert, names
from multiq.config.declare import (
    Requirement,
    Section,
    above,
    at_least,
    between,
    declarations,
    fraction,
)
from multiq.config.limits import (
    MAX_CONV_FILTERS,
    MAX_EVAL_EPISODES,
    MAX_GRADIENT_STEPS,
    MAX_HIDDEN_SIZE,
    MAX_MLP_LAYERS,
    MAX_N_ENVS,
    MAX_ROUTING_MODULES,
    MAX_SCHEDULE_WINDOW,
    MAX_SEED,
    MAX_TASK_EMBEDDING_DIM,
)

BASE_FAMILY = "minatar"
"""The observation family whose values are the defaults (the other families: `by_family`)."""

SECTIONS = (
    run := Section("run", "tasks, seed, devices and envs"),
    net := Section("net", "the network and its sharing scheme"),
    dqn := Section("dqn", "DQN updates and the training length"),
    mtl := Section("mtl", "multi-task losses and the parameter groups that train"),
    exploration := Section("exploration", "epsilon-greedy exploration"),
    replay := Section("replay", "replay and the task schedule"),
    evaluation := Section("evaluation", "evaluation, checkpoints and logging"),
    scale := Section("scale", "Ray collectors"),
    transfer := Section("transfer", "transfer and distillation"),
    continual := Section("continual", "continual learning"),
    meta := Section("meta", "meta-learning and its inner loops"),
)

_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")


def _non_empty(what: str) -> Requirement:
    return Requirement(lambda v: bool(v.strip()), f"a non-empty {what} name")


@dataclass(frozen=True)
class ConfigKeys:
    """The config keys as dataclass fields, by section (`multiq.config.Config` validates them)."""

    # --- run: tasks, seed, devices and envs -----------------------------------------------------
    tasks: str | list[str | dict[str, Any]] = run(
        "minatar",
        "which tasks to learn. A string: a suite name (`minatar`) or comma-separated task ids "
        "(`gym:CartPole-v1,gym:Acrobot-v1`); or a list whose entries are task id strings or "
        "mappings with keys `id` (required), `name` and `kwargs` (passed to the env "
        "constructor).",
        convert=convert.to_tasks,
    )
    env_imports: list[str] = run(
        [],
        "Python modules imported before the tasks are built, so that the envs they register "
        "exist (e.g. `[my_package.envs]`); `gym:<module>:<EnvId>` does the same for one id.",
        convert=convert.name_list("a list of Python module names, e.g. [my_package.envs]"),
    )
    seed: int = run(
        0,
        "random seed for envs, networks and sampling (at most 2**31 - 1: room for the offsets "
        "added per env and evaluation below MinAtar's 32-bit limit).",
        bounds=between(0, MAX_SEED),
    )
    device: str = run(
        "auto",
        "`auto` (cuda if available, else cpu), `cpu`, `cuda`, `cuda:<index>` or `mps`.",
        requirement=Requirement(
            lambda v: _DEVICE.fullmatch(v) is not None, "one of auto, cpu, cuda, cuda:<index>, mps"
        ),
        resume_may_change=True,
    )
    torch_threads: int = run(
        1,
        "intra-op threads of torch's CPU ops while multiq trains or evaluates (`multiq.threads`; "
        "the previous setting is restored after); 0 keeps torch's own (one per core).",
        bounds=between(0, 1024),
        resume_may_change=True,
    )
    n_envs: int = run(1, "envs per task, stepped together.", bounds=between(1, MAX_N_ENVS))
    env_backend: str = run(
        "inprocess",
        "how each task's envs run (`multiq.envs.backends`): `inprocess` (in the training "
        "process), `subprocess` (split over `env_workers` worker processes per task; the same "
        "transitions as in process) or `envpool` (Atari tasks on EnvPool with `env_workers` "
        "threads per task, other tasks in process; needs `pip install 'multiq[envpool]'`). It "
        "applies to a run's training and evaluation envs; the inner loops of meta-learning and "
        "adapt-k stay in process. Not with `collectors`; `subprocess` not with "
        "`async_updates: true` (`auto` then steps them from the training process).",
        choices=names.ENV_BACKEND_NAMES,
        resume_may_change=True,
    )
    env_workers: int = run(
        1,
        "processes (`subprocess`) or EnvPool threads (`envpool`) per task, each stepping a slice "
        "of the task's `n_envs` envs (at most `n_envs`).",
        bounds=between(1, 1024),
        resume_may_change=True,
    )
    async_updates: bool | str = run(
        "auto",
        "act and learn side by side (`multiq.collect.child`): a child process steps the envs one "
        "chunk of `async_chunk` vector steps ahead while the learner updates, with the "
        "sequential loop's replay ratio and a policy at most 2 * async_chunk - 1 vector steps "
        "behind the learner's. `true` always (a Python script that trains must then start under "
        '`if __name__ == "__main__":`), `false` never (the envs step in the training process '
        "between updates, bit-exact with earlier versions), `auto` where it is measured faster: "
        "runs started by the `multiq` command, on >= 2 cores, for a phase of >= 100,000 env "
        "steps of all tasks (`multiq.collect.choice.collector_kind`). No effect with "
        "`collectors` (Ray actors already act side by side).",
        convert=convert.to_switch,
        resume_may_change=True,
    )
    async_chunk: int = run(
        8,
        "async_updates: vector steps per request to the collector process (its policy is at "
        "most 2 * async_chunk - 1 vector steps behind the learner).",
        bounds=between(1, 1_000_000),
        resume_may_change=True,
    )
    on_env_error: str = run(
        "stop",
        "what an env that raises while training does: `stop` the run (with a checkpoint) or "
        "`restart` it (a new env, a new episode; logged).",
        choices=names.ENV_ERROR_ACTIONS,
    )
    env_restarts: int = run(
        3,
        "with `on_env_error: restart`, envs rebuilt per task per phase before an env error "
        "stops the run anyway.",
        bounds=between(0, 1000),
    )

    # --- net: the network and its sharing scheme ------------------------------------------------
    scheme: str = net(
        "shared",
        "parameter-sharing scheme (`multiq.nets.SCHEMES`).",
        choices=names.SCHEME_NAMES,
    )
    hidden_size: int = net(
        128,
        "units of the hidden layer(s): the vector MLP's layers, the MinAtar net's dense layer, "
        "the `conditioned` scheme's hidden layer.",
        bounds=between(1, MAX_HIDDEN_SIZE),
    )
    mlp_layers: int = net(
        2,
        "hidden layers of the vector MLP (each `hidden_size` units): the first is the per-task "
        "input layer, the others are the shared body.",
        bounds=between(1, MAX_MLP_LAYERS),
    )
    conv_filters: int = net(
        16,
        "filters of the MinAtar net's 3x3 convolution (16 in Young & Tian 2019).",
        bounds=between(1, MAX_CONV_FILTERS),
    )
    cnn_hidden_size: int = net(
        512,
        "units of the Nature CNN's dense layer after its convolutions (512 in Mnih et al. 2015).",
        bounds=between(1, MAX_HIDDEN_SIZE),
    )
    dueling: bool = net(False, "use a dueling head (separate value and advantage streams).")
    dropout: float = net(
        0.0,
        "dropout probability after each hidden layer of the shared trunk while learning (acting "
        "and targets use no dropout); 0 = none. A regulariser for pre-training that transfers "
        "(Farebrother et al. 2018).",
        bounds=fraction(open_high=True),
    )
    task_embedding: str = net(
        "onehot",
        "scheme `conditioned`: the task's embedding, `onehot` or `learned`.",
        choices=names.TASK_EMBEDDINGS,
    )
    task_embedding_dim: int = net(
        16,
        "scheme `conditioned`: size of a learned task embedding.",
        bounds=between(1, MAX_TASK_EMBEDDING_DIM),
    )
    private_merge: str = net(
        "sum",
        "scheme `shared-private`: `sum` or `concat` the shared and private features.",
        choices=names.PRIVATE_MERGES,
    )
    routing: str = net(
        "softmax",
        "scheme `routed`: routing weights by `softmax` over learned logits, or `gumbel` "
        "(Gumbel-softmax with an annealed temperature).",
        choices=names.ROUTINGS,
    )
    routing_modules: int = net(
        4, "scheme `routed`: modules K per routed layer.", bounds=between(1, MAX_ROUTING_MODULES)
    )
    routing_tau_start: float = net(
        1.0, "scheme `routed` with gumbel: temperature at the start.", bounds=above(0)
    )
    routing_tau_end: float = net(
        0.1,
        "scheme `routed` with gumbel: temperature at the end of training (at most "
        "`routing_tau_start`).",
        bounds=above(0),
    )
    routing_hard: bool = net(
        False, "scheme `routed`: one-hot routing forward, soft gradients (straight-through)."
    )
    head_init: str = net(
        "fresh",
        "how a task added to a trained agent (`add_task`, transfer, adapt-k) gets its Q head: "
        "`fresh` (new random weights) or `mean` (the mean of the held heads with the same "
        "number of actions, e.g. the one head of a meta-trained model; `progressive`: the head "
        "of the column the new one copies).",
        choices=names.HEAD_INITS,
    )

    # --- dqn: DQN updates and the training length -----------------------------------------------
    total_steps_per_task: int = dqn(
        80_000,
        "training length in env steps per task; at least `learning_starts + train_freq * "
        "n_envs`, so that an update runs.",
        bounds=at_least(1),
        by_family={"vector": 100_000, "atari": 10_000_000, "minigrid": 100_000},
        resume_may_change=True,
    )
    learning_rate: float = dqn(
        2.5e-4,
        "Adam learning rate.",
        bounds=above(0),
        by_family={"vector": 1e-3, "atari": 1e-4, "minigrid": 1e-3},
    )
    batch_size: int = dqn(
        32,
        "samples per task per gradient step (at most `buffer_size`).",
        bounds=at_least(1),
        by_family={"vector": 64, "atari": 32, "minigrid": 64},
    )
    gamma: float = dqn(0.99, "discount factor.", bounds=fraction(open_low=True))
    n_step: int = dqn(
        1,
        "length of the n-step return (1 = one-step TD; below `buffer_size`).",
        bounds=at_least(1),
        by_family={"vector": 3, "atari": 1, "minigrid": 3},
    )
    double_q: bool = dqn(True, "use Double DQN targets (online net picks, target net evaluates).")
    target_update_interval: int = dqn(
        1_000,
        "env steps per task between target updates.",
        bounds=at_least(1),
        by_family={"vector": 500, "atari": 1_000, "minigrid": 500},
    )
    tau: float = dqn(
        1.0,
        "target update coefficient; 1 copies the online net (hard update).",
        bounds=fraction(open_low=True),
    )
    gradient_steps: int = dqn(
        1, "gradient steps per update.", bounds=between(1, MAX_GRADIENT_STEPS)
    )
    max_grad_norm: float = dqn(10.0, "gradient-norm clipping threshold.", bounds=above(0))
    weight_decay: float = dqn(
        0.0,
        "decoupled weight decay (AdamW, Loshchilov & Hutter 2019) of the network's weights; 0 "
        "= plain Adam. A regulariser for pre-training that transfers (Farebrother et al. 2018).",
        bounds=at_least(0),
    )

    # --- mtl: multi-task losses and the parameter groups that train -----------------------------
    task_weights: dict[str, float] | None = mtl(
        None,
        "loss weight (alpha) per task name, each >= 0 and at least one > 0; null gives every "
        "task weight 1. Names are checked against the tasks at train time.",
        convert=convert.to_task_weights,
    )
    balancer: str = mtl(
        "fixed",
        "how task losses become gradients (`multiq.mtl.BALANCERS`): `fixed` (weights alpha), "
        "`uncertainty`, `gradnorm` or `pcgrad`.",
        choices=names.BALANCER_NAMES,
    )
    gradnorm_alpha: float = mtl(
        1.5, "GradNorm's asymmetry alpha (0 = equal gradient norms).", bounds=at_least(0)
    )
    interference_freq: int = mtl(
        1_000,
        "updates between two measurements of the gradient-conflict map: the cosine of every "
        "pair of tasks' gradients on the shared parameters (`mtl/grad_cos/<a>/<b>`) and each "
        "task's share of their norms (`task/<name>/grad_share`); 0 = never. Skipped where no "
        "parameter is shared (`independent`).",
        bounds=at_least(0),
    )
    popart: bool = mtl(
        False,
        "PopArt per-task normalisation of the Q targets; combines with any balancer, needs "
        "per-task heads without dueling (so not scheme `conditioned`).",
    )
    popart_beta: float = mtl(
        3e-4,
        "step size of PopArt's running target statistics.",
        bounds=fraction(open_low=True),
    )
    frozen_groups: list[str] = mtl(
        [],
        "glob patterns of parameter groups that do not train in any phase, e.g. `[trunk]` or "
        '`["inputs/*"]`. Groups: `trunk`, `inputs/<signature>`, `head/<task>`, and per scheme '
        "`private/<task>`, `routing/<task>`, `embedding/<task>`, `head` (see "
        "`MultiTaskDQN.parameter_groups`).",
        convert=convert.name_list("a list of parameter-group patterns, e.g. [trunk]"),
    )
    lr_scales: dict[str, float] | None = mtl(
        None,
        "glob pattern of parameter groups -> learning-rate multiplier (> 0; the first matching "
        "pattern counts), e.g. `{trunk: 0.1}`; null = 1 for every group.",
        convert=convert.to_lr_scales,
    )

    # --- exploration: epsilon-greedy exploration ------------------------------------------------
    exploration_fraction: float = exploration(
        0.1,
        "fraction of training over which epsilon decays.",
        bounds=fraction(),
        by_family={"vector": 0.2, "atari": 0.1, "minigrid": 0.2},
    )
    exploration_initial_eps: float = exploration(
        1.0, "epsilon at the start of training.", bounds=fraction()
    )
    exploration_final_eps: float = exploration(
        0.01,
        "epsilon after the decay (at most `exploration_initial_eps`).",
        bounds=fraction(),
    )

    # --- replay: replay and the task schedule ---------------------------------------------------
    buffer_size: int = replay(
        100_000,
        "replay capacity in transitions per task (above `n_step`, at least `batch_size`).",
        bounds=at_least(1),
        by_family={"vector": 50_000, "atari": 100_000, "minigrid": 50_000},
    )
    learning_starts: int = replay(
        1_000,
        "env steps per task collected before updates start.",
        bounds=at_least(0),
        by_family={"vector": 1_000, "atari": 100_000, "minigrid": 1_000},
    )
    train_freq: int = replay(
        4,
        "run updates every this many vector steps (precisely: every `train_freq * n_envs * T` "
        "env steps of all tasks together, which is the same under the `uniform` task schedule, "
        "where every vector step steps every task).",
        bounds=at_least(1),
        by_family={"vector": 4, "atari": 4, "minigrid": 4},
    )
    task_schedule: str = replay(
        "uniform",
        "which tasks get env steps and replay samples (`multiq.mtl.schedules.SCHEDULES`): "
        "`uniform`, `weighted` (by alpha), `resample` (over-sample tasks with less data or "
        "fewer episodes) or `progress` (more to tasks whose return is still changing).",
        choices=names.SCHEDULE_NAMES,
    )
    schedule_uniform_mix: float = replay(
        0.2,
        "weight of the uniform share mixed into every schedule's shares: every task keeps a "
        "share >= mix / T, so it keeps stepping and has data.",
        bounds=fraction(open_low=True),
    )
    schedule_window: int = replay(
        20,
        "episodes per task the `progress` schedule compares.",
        bounds=between(4, MAX_SCHEDULE_WINDOW),
    )

    # --- evaluation: evaluation, checkpoints and logging ----------------------------------------
    eval_freq: int = evaluation(
        10_000,
        "env steps per task between evaluations (0 = only at the end).",
        bounds=at_least(0),
        by_family={"vector": 10_000, "atari": 100_000, "minigrid": 10_000},
    )
    eval_episodes: int = evaluation(
        10, "episodes per task per evaluation.", bounds=between(1, MAX_EVAL_EPISODES)
    )
    eval_epsilon: float = evaluation(0.01, "epsilon of the evaluation policy.", bounds=fraction())
    checkpoint_freq: int = evaluation(
        50_000, "env steps per task between checkpoints (0 = only at the end).", bounds=at_least(0)
    )
    save_replay: bool = evaluation(
        False,
        "also save the replay buffers with checkpoints (compressed; MinAtar's five full 100k "
        "buffers take about 3.4 MB); with it a resume is exact (the same numbers as an "
        "uninterrupted run).",
    )
    log_interval: int = evaluation(
        2_000, "env steps per task between rows of metrics.csv / TensorBoard.", bounds=at_least(1)
    )
    loggers: list[str] = evaluation(
        ["csv", "tensorboard"],
        "where metrics go: `csv` (metrics.csv, required: reports read it), `tensorboard` "
        "(RUN_DIR/tb) and `wandb` (Weights & Biases: the run's id is the run folder's, so a "
        "resume continues the same W&B run; offline with `WANDB_MODE=offline`; needs "
        "`pip install wandb`).",
        convert=convert.name_list("a list of loggers, e.g. [csv, tensorboard, wandb]"),
        requirement=Requirement(
            lambda v: set(v) <= set(names.LOGGERS) and "csv" in v,
            f"a list of {', '.join(names.LOGGERS)} that holds csv (reports read metrics.csv)",
        ),
    )
    tensorboard: bool = evaluation(
        True,
        "write TensorBoard event files to the run directory (`false` turns TensorBoard off "
        "even when `loggers` lists it; kept from before `loggers`).",
    )
    wandb_project: str = evaluation(
        "multiq", "the W&B project of `wandb` logging.", requirement=_non_empty("W&B project")
    )
    wandb_group: str = evaluation(
        "", 'the W&B group of `wandb` logging (e.g. a sweep\'s name); "" for none.'
    )
    progress_bar: bool = evaluation(True, "show a progress bar while training.")

    # --- scale: Ray collectors ------------------------------------------------------------------
    collectors: int = scale(
        0,
        "Ray actors that step the envs (`multiq.collect.ray_actors`), each a block of the active "
        "tasks, sending their transitions to the training process's replay; 0 steps them in the "
        "training process. Ray starts on this machine unless `ray_address` names a cluster.",
        bounds=between(0, 1024),
        resume_may_change=True,
    )
    collector_chunk: int = scale(
        64,
        "collectors: vector steps per task an actor takes per request (its transitions arrive "
        "together).",
        bounds=between(1, 1_000_000),
        resume_may_change=True,
    )
    broadcast_interval: int = scale(
        100,
        "collectors: updates between the weight snapshots sent to the actors (their policy is "
        "at most this many updates plus one chunk behind).",
        bounds=at_least(1),
        resume_may_change=True,
    )
    ray_address: str = scale(
        "",
        'collectors: the Ray cluster\'s HOST:PORT (or `auto`); "" starts Ray on this machine.',
        resume_may_change=True,
    )

    # --- transfer: transfer and distillation ----------------------------------------------------
    transfer_lambda: float = transfer(
        1.0,
        "transfer mode `joint`: weight lambda of the target loss in "
        "`L = L_source + lambda * L_target`.",
        bounds=at_least(0),
    )
    distill_weight: float = transfer(
        1.0,
        "weight of the distillation term (transfer mode `distill` and `multiq distill`).",
        bounds=at_least(0),
    )
    distill_temperature: float = transfer(
        1.0, "temperature tau of softmax(Q / tau) in distillation.", bounds=above(0)
    )
    transfer_initial_eps: float | None = transfer(
        None,
        "transfer modes and adapt-k: epsilon at the start of the target's exploration schedule "
        "(it decays to `exploration_final_eps` over `exploration_fraction` of the target's "
        "budget); null = `exploration_initial_eps`. A lower value keeps more of a good source's "
        "behaviour while the target learns.",
        convert=convert.to_optional_float,
        requirement=Requirement(lambda v: v is None or 0 <= v <= 1, "null or a number in [0, 1]"),
    )
    transfer_prefill_steps: int = transfer(
        0,
        "transfer modes and adapt-k: env steps per target task that the source's policy acts "
        "(at `exploration_final_eps`) to fill the target's replay before the target phase "
        "trains; 0 = start from an empty replay.",
        bounds=at_least(0),
    )
    l2_init: float = transfer(
        0.0,
        "transfer modes that fine-tune the source's trunk: weight beta of the L2-SP term "
        "`beta / 2 * ||theta_trunk - theta_source||^2` that pulls the trunk towards the "
        "source's weights (Li et al. 2018); 0 = off.",
        bounds=at_least(0),
    )

    # --- continual: continual learning ----------------------------------------------------------
    rehearsal_share: float = continual(
        0.5,
        "continual methods `rehearsal` and `distill`: the share of each update's samples drawn "
        "from the earlier tasks' stored replay.",
        bounds=fraction(open_low=True, open_high=True),
    )
    ewc_lambda: float = continual(
        100.0, "continual method `ewc`: weight lambda of the EWC penalty.", bounds=at_least(0)
    )
    ewc_decay: float = continual(
        1.0,
        "continual method `ewc`: online EWC's decay of the accumulated Fisher per finished task "
        "(1 = plain sum).",
        bounds=fraction(open_low=True),
    )
    ewc_fisher_states: int = continual(
        1_024,
        "continual method `ewc`: states from a finished task's replay the Fisher is estimated on.",
        bounds=between(1, 100_000),
    )

    # --- meta: meta-learning and its inner loops ------------------------------------------------
    meta_tasks: str | list[str | dict[str, Any]] = meta(
        "family:cartpole-physics:train",
        "`multiq meta`: the task pool the outer loop samples from, as `tasks` (e.g. "
        "`family:cartpole-physics:train`); every task needs the same spaces.",
        convert=convert.to_tasks,
    )
    meta_algo: str = meta(
        "reptile",
        "`multiq meta`: the algorithm (`multiq.recipes.meta.ALGORITHMS`).",
        choices=names.META_ALGORITHM_NAMES,
    )
    meta_iterations: int = meta(100, "outer-loop iterations.", bounds=between(1, 10_000_000))
    meta_batch_size: int = meta(
        4, "tasks per outer iteration (drawn without replacement).", bounds=between(1, 100_000)
    )
    meta_step_size: float = meta(
        0.5,
        "reptile's epsilon in `theta += epsilon * mean_i(phi_i - theta)`.",
        bounds=fraction(open_low=True),
    )
    meta_lr: float = meta(
        0.001,
        "fomaml's outer step size on `mean_i(grad L_i(phi_i))` (`meta_outer_optimizer`: Adam's "
        "lr, as in MAML; or SGD's in `theta -= lr * g`, 0.05 before issue 27). Adam moves every "
        "parameter by about lr per iteration, so keep it far below SGD's.",
        bounds=above(0),
    )
    meta_query_steps: int = meta(
        256,
        "fomaml: env steps the adapted agent collects afresh on each task; the outer gradient "
        "is taken on them.",
        bounds=between(1, 10_000_000),
    )
    meta_eval_freq: int = meta(
        10,
        "outer iterations between evaluations of theta and of the adapted weights on the "
        "iteration's tasks (0 = only at the end).",
        bounds=at_least(0),
    )
    inner_steps: int = meta(
        2_000,
        "env steps K of one inner loop (DQN on one task from the meta-weights; and adapt-k's "
        "largest k); above `inner_learning_starts`.",
        bounds=between(1, 100_000_000),
    )
    inner_learning_starts: int = meta(
        200, "env steps of an inner loop (or adapt-k run) before updates.", bounds=at_least(0)
    )
    inner_buffer_size: int = meta(
        10_000,
        "replay capacity of one inner loop; at least `batch_size` (checked when an inner loop "
        "starts: a run without one may have a larger batch).",
        bounds=between(1, 100_000_000),
    )
    inner_target_update: int = meta(
        500,
        "env steps between target-network copies in an inner loop (the target starts as the "
        "initial weights).",
        bounds=at_least(1),
    )
    meta_outer_optimizer: str = meta(
        "adam",
        "fomaml: the optimiser of theta on the outer gradient "
        "(`multiq.recipes.meta.OUTER_OPTIMIZERS`): `adam` (moments kept across iterations and "
        "in the checkpoint; every parameter moves about `meta_lr` at most per iteration) or "
        "`sgd` (`theta -= meta_lr * g`, a step that grows with the gradient: at `meta_lr` 0.05 "
        "its Q-values drifted far beyond any return on `cartpole-physics`).",
        choices=names.META_OUTER_OPTIMIZER_NAMES,
    )


KEYS = declarations(ConfigKeys, BASE_FAMILY)
"""Key name -> its declaration (`multiq.config.declare.Key`), in declaration order."""

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    family: {name: key.by_family[family] for name, key in KEYS.items() if family in key.by_family}
    for family in dict.fromkeys(family for key in KEYS.values() for family in key.by_family)
}
"""Observation family -> its defaults of the keys that follow the tasks (from `by_family`; the
base family's row holds the defaults). `multiq.tasks.defaults` reads it when a run starts."""
