"""Upper limits of config values and of YAML documents.

Far above any sensible run, low enough that a typo such as an extra zero fails when the config
is built, with a message, instead of exhausting memory or time (or raising deep inside numpy or
torch).
"""

from __future__ import annotations

MAX_SEED = 2**31 - 1  # numpy's legacy seeding (MinAtar) takes 32-bit seeds: room for offsets
MAX_N_ENVS = 1024
MAX_HIDDEN_SIZE = 65_536
MAX_MLP_LAYERS = 64
MAX_CONV_FILTERS = 4096
MAX_TASK_EMBEDDING_DIM = 65_536
MAX_ROUTING_MODULES = 1024
MAX_GRADIENT_STEPS = 10_000
MAX_SCHEDULE_WINDOW = 1_000_000
MAX_EVAL_EPISODES = 10_000
MAX_YAML_NODES = 100_000  # nodes of a YAML document with every alias expanded
MAX_NESTING_DEPTH = 64  # levels of a YAML document or of a task's kwargs
