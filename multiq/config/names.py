"""The names a text key may take, declared here once as plain strings.

Most are the keys of a registry that imports torch or the env modules (`multiq.nets.SCHEMES`,
`multiq.mtl.BALANCERS`, ...): declaring them here lets a config refuse a misspelt name when it
is built, without importing torch, and tests/config/test_declarations.py holds each tuple equal
to its registry. They are sorted, as ``multiq config`` lists them, except the env backends, which
keep their registry's order (from the plainest to the fastest).
"""

from __future__ import annotations

# Registries: `multiq.nets.SCHEMES`, `multiq.mtl.BALANCERS`, `multiq.mtl.schedules.SCHEDULES`,
# `multiq.recipes.meta.ALGORITHMS`, `multiq.recipes.meta.OUTER_OPTIMIZERS`,
# `multiq.envs.backends.ENV_BACKENDS`,
# `multiq.recipes.transfer.MODES` and `multiq.recipes.continual.METHODS`.
SCHEME_NAMES = (
    "conditioned", "independent", "progressive", "routed", "shared", "shared-private",
)  # fmt: skip
BALANCER_NAMES = ("fixed", "gradnorm", "pcgrad", "uncertainty")
SCHEDULE_NAMES = ("progress", "resample", "uniform", "weighted")
META_ALGORITHM_NAMES = ("fomaml", "reptile")
META_OUTER_OPTIMIZER_NAMES = ("adam", "sgd")
ENV_BACKEND_NAMES = ("inprocess", "subprocess", "envpool")
TRANSFER_MODE_NAMES = ("distill", "finetune", "freeze", "joint", "progressive", "scratch")
CONTINUAL_METHOD_NAMES = ("distill", "ewc", "finetune", "progressive", "rehearsal")

# Scheme options (`multiq.nets` reads them from here).
TASK_EMBEDDINGS = ("onehot", "learned")
PRIVATE_MERGES = ("sum", "concat")
ROUTINGS = ("softmax", "gumbel")

HEAD_INITS = ("fresh", "mean")  # how a task added to a trained agent gets its head
ENV_ERROR_ACTIONS = ("stop", "restart")  # `on_env_error`
LOGGERS = ("csv", "tensorboard", "wandb")  # `loggers` entries (multiq.runio.tracking writes them)
