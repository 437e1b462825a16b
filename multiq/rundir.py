"""The run-folder format: file names, the metrics.csv header and the summary.json schema.

One module owns it: tracking and the trainer write run folders, `multiq.report` reads them.
It never imports torch, so a report can be rebuilt anywhere from the folder alone.

A run folder holds:

| name | content |
|---|---|
| `config.yaml` | the resolved config |
| `metrics.csv` | `step,wall_time_s,key,value`, one row per scalar (`step`: env steps per task) |
| `tb/` | the same scalars for TensorBoard |
| `summary.json` | see `SUMMARY_KEYS`; written when a run ends |
| `checkpoint.pt` (+ `replay.npz`) | everything a resume needs |
| `model.pt` | the final model |
| `curves.png`, `routing.png` | plots rebuilt by `multiq report` |

summary.json (`SUMMARY_KEYS`):
- `tasks`: name -> {return_mean, return_std, episodes, random_return_mean, random_return_std}
  for every task the agent holds (the last evaluation);
- `env_steps_per_task`: the step axis at the end (phases' env steps per active task, summed);
- `task_env_steps`: name -> env steps that task took over the whole run;
- `task_schedule`, `wall_time_s`, `env_steps_per_s`;
- `phases`: one entry per phase (`PHASE_KEYS`): name, active tasks, start and end on the step
  axis, budget, trainable groups, loss terms;
- `transfer` (transfer runs only, `TRANSFER_KEYS`): mode, source, source_tasks, target_tasks.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

RUNS_DIR = Path("runs")
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tb"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
REPLAY_FILE = "replay.npz"
MODEL_FILE = "model.pt"
CURVES_FILE = "curves.png"
ROUTING_FILE = "routing.png"

CSV_HEADER = ("step", "wall_time_s", "key", "value")

SUMMARY_KEYS = (
    "tasks",
    "env_steps_per_task",
    "task_env_steps",
    "task_schedule",
    "wall_time_s",
    "env_steps_per_s",
    "phases",
)
PHASE_KEYS = ("name", "tasks", "start_step", "end_step", "steps_per_task", "trainable", "terms")
TRANSFER_KEYS = ("mode", "source", "source_tasks", "target_tasks")


def return_key(task: str) -> str:
    """The metrics.csv key of a task's evaluation return."""
    return f"task/{task}/return"


def random_return_key(task: str) -> str:
    """The metrics.csv key of a task's random-policy return."""
    return f"task/{task}/random_return"


def new_run_dir(label: str, root: Path = RUNS_DIR) -> Path:
    """`root/<date-time>-<label>`, e.g. runs/20261122-101500-minatar, with `-2`, `-3`, ... added
    when that name is taken (runs started in the same second get distinct folders)."""
    label = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
    base = root / f"{datetime.now():%Y%m%d-%H%M%S}-{label}"
    path, number = base, 1
    while path.exists():
        number += 1
        path = base.with_name(f"{base.name}-{number}")
    return path
