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
| `curves.png`, `routing.png`, `conflicts.png` | plots rebuilt by `multiq report` |
| `matrix.png`, `sequence.png` | continual runs: the evaluation matrix; all tasks over the run |
| `meta.csv`, `meta.png` | meta runs: one row per outer iteration (`META_KEYS`) and its plot |
| `adapt.json`, `adapt.md`, `adapt.png` | `multiq adapt` folders: returns after k steps per init |
| `run.json` | what each session used: device, versions, git commit, host; the run's `run_id` |
| `.lock` | held by the process writing the folder (`multiq.runio.folder.RunFolder`) |
| `.<name>.<hex>.tmp` | a write in progress; a killed run's is removed by the next lock holder |

Folder names: `new_run_dir` only picks a free name (the caller creates the folder later, so two
runs started in the same second can pick the same name); `claim_run_dir` picks it and creates
the folder in one step (`mkdir` that fails when the name is taken), so every caller gets its own.

summary.json (`SUMMARY_KEYS`):
- `tasks`: name -> {return_mean, return_std, return_min, return_max, episodes, random_return_mean,
  random_return_std}
  for every task the agent holds (the last evaluation);
- `env_steps_per_task`: the step axis at the end (phases' env steps per active task, summed);
- `task_env_steps`: name -> env steps that task took over the whole run;
- `task_schedule`, `wall_time_s`, `env_steps_per_s`;
- `phases`: one entry per phase (`PHASE_KEYS`): name, active tasks, start and end on the step
  axis, budget, trainable groups, loss terms;
- `transfer` (transfer runs only, `TRANSFER_KEYS`): mode, source, source_tasks, target_tasks;
- `continual` (continual runs only, `CONTINUAL_KEYS`): method, sequence, cycles, steps_per_task.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from multiq.errors import RunDirError

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
CONFLICTS_FILE = "conflicts.png"
MATRIX_FILE = "matrix.png"
SEQUENCE_FILE = "sequence.png"
META_FILE = "meta.csv"
META_PLOT_FILE = "meta.png"
ADAPT_FILE = "adapt.json"
ADAPT_PLOT_FILE = "adapt.png"
ADAPT_TABLE_FILE = "adapt.md"
# meta.csv's columns: one row per outer iteration; the returns are means over the iteration's
# tasks (inner: training episodes; pre / post: evaluations of theta and of the adapted weights,
# NaN in iterations without an evaluation)
META_KEYS = ("iteration", "env_steps", "wall_time_s", "inner_return", "pre_return", "post_return")
RUN_RECORD_FILE = "run.json"
LOCK_FILE = ".lock"

RUN_FILES = (
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    CHECKPOINT_FILE,
    REPLAY_FILE,
    MODEL_FILE,
    CURVES_FILE,
    ROUTING_FILE,
    CONFLICTS_FILE,
    MATRIX_FILE,
    SEQUENCE_FILE,
    META_FILE,
    META_PLOT_FILE,
    ADAPT_FILE,
    ADAPT_PLOT_FILE,
    ADAPT_TABLE_FILE,
    RUN_RECORD_FILE,
    TENSORBOARD_DIR,
)
"""The names multiq writes in a run folder (`RunFolder` refuses a symbolic link at any)."""

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
CONTINUAL_KEYS = ("method", "sequence", "cycles", "steps_per_task")


def return_key(task: str) -> str:
    """The metrics.csv key of a task's evaluation return."""
    return f"task/{task}/return"


def training_return_key(task: str) -> str:
    """The metrics.csv key of a task's running training-episode return (the mean of its last
    `multiq.envs.multi.RECENT_EPISODES` epsilon-greedy episodes)."""
    return f"rollout/{task}/ep_return"


def random_return_key(task: str) -> str:
    """The metrics.csv key of a task's random-policy return."""
    return f"task/{task}/random_return"


def new_run_dir(label: str, root: Path = RUNS_DIR) -> Path:
    """`root/<date-time>-<label>`, e.g. runs/20261122-101500-minatar, with `-2`, `-3`, ... added
    when that name is taken. The folder is not created: two runs that pick a name before either
    creates its folder can pick the same one (`claim_run_dir` cannot)."""
    base = root / _run_name(label)
    path, number = base, 1
    while path.exists():
        number += 1
        path = base.with_name(f"{base.name}-{number}")
    return path


def claim_run_dir(label: str, root: Path = RUNS_DIR) -> Path:
    """Creates and returns a new folder `root/<date-time>-<label>` (`-2`, `-3`, ... when taken).

    Each name is claimed with a `mkdir` that fails when the name exists, so runs started in the
    same second, in other threads or processes, never share a folder.

    Args:
        label: what the run trains (e.g. the task suite); characters other than letters,
            digits, `-` and `_` become `-`, and it is cut to 40 characters.
        root: the folder that holds the runs; created if missing.

    Raises:
        RunDirError: `root` cannot be created or written.
    """
    base = Path(root) / _run_name(label)
    path, number = base, 1
    while True:
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            return path
        except FileExistsError:
            number += 1
            path = base.with_name(f"{base.name}-{number}")
        except OSError as error:
            raise RunDirError(
                f"cannot create a run folder in {root}: {error.strerror or error}; "
                "make it writable or choose another --run-dir"
            ) from error


def _run_name(label: str) -> str:
    """`<date-time>-<label>` with the label made safe for a folder name."""
    label = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
    return f"{datetime.now():%Y%m%d-%H%M%S}-{label}"
