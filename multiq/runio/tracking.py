"""Run tracking: metrics.csv (long format), TensorBoard, Weights & Biases and a progress bar.

`RUN_DIR/metrics.csv` has the header `step,wall_time_s,key,value`, one row per scalar. It is
the file `multiq.report` reads; TensorBoard (`RUN_DIR/tb`) and W&B (`RUN_DIR/wandb`, the same
keys and steps) are optional extra views.
metrics.csv is never written through a symbolic link, and a write that fails (full disk,
read-only folder) raises `RunDirError` naming the file.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from multiq.config import Config
from multiq.errors import ConfigError
from multiq.runio.files import make_folder, open_append_nofollow, run_dir_error
from multiq.runio.folder import run_id
from multiq.runio.layout import CSV_HEADER, METRICS_FILE, TENSORBOARD_DIR

__all__ = [
    "CSV_HEADER",
    "METRICS_FILE",
    "TENSORBOARD_DIR",
    "ScalarViews",
    "Tracker",
    "WandbSettings",
    "format_postfix",
    "tensorboard_wanted",
    "wandb_settings",
]


@dataclass(frozen=True)
class WandbSettings:
    """A W&B run: its project, group (None: none), id (the run folder's run_id, so a resumed run
    continues the same W&B run) and the config shown beside it."""

    project: str
    group: str | None
    run_id: str | None
    config: Mapping[str, Any]


def _make_wandb_run(run_dir: Path, settings: WandbSettings):
    """Starts (or resumes) the W&B run; its files go to RUN_DIR/wandb.

    Raises:
        ConfigError: the wandb package is not installed.
    """
    try:
        import wandb
    except ImportError as error:
        raise ConfigError(
            f"loggers lists wandb but the wandb package is missing ({error}): pip install wandb, "
            "or drop wandb from loggers"
        ) from error
    return wandb.init(
        project=settings.project, group=settings.group, id=settings.run_id, resume="allow",
        dir=str(run_dir), config=dict(settings.config),
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
    )  # fmt: skip


def wandb_settings(cfg: Config, run_dir: Path) -> WandbSettings | None:
    """The W&B run of a run folder when `loggers` lists wandb (id: the folder's run_id)."""
    if "wandb" not in cfg.loggers:
        return None
    group = cfg.wandb_group or None
    return WandbSettings(cfg.wandb_project, group, run_id(run_dir), cfg.to_dict())


def tensorboard_wanted(cfg: Config) -> bool:
    """Whether a run writes TensorBoard events: `tensorboard` on and listed in `loggers`."""
    return cfg.tensorboard and "tensorboard" in cfg.loggers


class ScalarViews:
    """The optional views of a run's scalars: TensorBoard (RUN_DIR/tb) and W&B.

    Args:
        run_dir: the run folder.
        tensorboard: write each scalar to `RUN_DIR/tb`.
        start_step: the step a resumed run starts from: TensorBoard drops events an earlier
            session logged after it (those at the step stay).
        wandb: settings of a W&B run to log the same scalars to, or None.

    Raises:
        ConfigError: W&B is asked for and the wandb package is missing.
    """

    def __init__(
        self,
        run_dir: Path,
        tensorboard: bool,
        start_step: int = 0,
        wandb: WandbSettings | None = None,
    ) -> None:
        tb_dir = run_dir / TENSORBOARD_DIR
        self._tb = _make_summary_writer(tb_dir, start_step) if tensorboard else None
        self._wandb = None
        if wandb is not None:
            try:
                self._wandb = _make_wandb_run(run_dir, wandb)
            except BaseException:
                self.close()
                raise

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Logs each scalar at `step` (flushed)."""
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, float(value), int(step))
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({key: float(value) for key, value in metrics.items()}, step=int(step))

    def close(self) -> None:
        """Closes the TensorBoard writer and finishes the W&B run (once)."""
        tb, wandb_run, self._tb, self._wandb = self._tb, self._wandb, None, None
        if tb is not None:
            tb.close()
        if wandb_run is not None:
            wandb_run.finish()


class Tracker:
    """Writes metrics of one run to its run folder and shows training progress.

    Usable as a context manager; `close()` is idempotent.

    Args:
        run_dir: the run folder; created if missing.
        task_names: the tasks of the run, in the order the progress bar shows them.
        total_steps_per_task: env steps per task the run trains for (the progress bar's total).
        tensorboard: also write each scalar to `RUN_DIR/tb` with a TensorBoard SummaryWriter.
        progress_bar: show a tqdm bar on stderr; when False, `progress()` does nothing.
        start_step: env steps per task already done (resume); the bar starts there and
            TensorBoard drops events an earlier session logged after this step (those at
            the step, such as the evaluation saved with the checkpoint, stay).
        start_wall_s: wall time of earlier sessions (resume); the `wall_time_s` column
            continues from it.
        wandb: settings of a W&B run to log the same scalars to (`WandbSettings`), or None.

    Raises:
        RunDirError: the run folder or metrics.csv cannot be written, or metrics.csv is a
            symbolic link.
    """

    def __init__(
        self,
        run_dir: str | Path,
        task_names: Sequence[str],
        total_steps_per_task: int,
        tensorboard: bool = True,
        progress_bar: bool = True,
        start_step: int = 0,
        start_wall_s: float = 0.0,
        wandb: WandbSettings | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        make_folder(self.run_dir)
        self.task_names = list(task_names)
        self._start_time = time.monotonic()
        self._start_wall_s = float(start_wall_s)
        self._csv_file = _open_metrics_csv(self.run_dir / METRICS_FILE)
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        self._views = ScalarViews(self.run_dir, tensorboard, start_step, wandb)
        self._bar = _make_bar(total_steps_per_task, start_step) if progress_bar else None
        self._closed = False

    @property
    def metrics_path(self) -> Path:
        """The CSV file `log()` appends to."""
        return self.run_dir / METRICS_FILE

    @property
    def wall_time_s(self) -> float:
        """Wall time of the run so far: earlier sessions' plus this session's."""
        return self._start_wall_s + time.monotonic() - self._start_time

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Appends one row per metric to metrics.csv (flushed) and to TensorBoard.

        Args:
            step: env steps per task at which the metrics were measured.
            metrics: key -> scalar, e.g. `{"task/Breakout/return": 3.0, "train/loss": 0.1}`.
                Non-finite values are written as `nan` / `inf`.

        Raises:
            RunDirError: metrics.csv cannot be written (e.g. the disk is full).
        """
        wall_time = f"{self.wall_time_s:.3f}"
        rows = [(int(step), wall_time, key, repr(float(value))) for key, value in metrics.items()]
        try:
            self._csv.writerows(rows)
            self._csv_file.flush()
        except OSError as error:
            raise run_dir_error(self.metrics_path, error) from error
        self._views.log(step, metrics)

    def progress(self, step: int, sps: float, recent_returns: Mapping[str, float]) -> None:
        """Moves the progress bar to `step` and shows steps/s and recent returns per task.

        Args:
            step: env steps per task done so far.
            sps: env steps per second (all tasks together, as the trainer measures it).
            recent_returns: task name -> mean return of recent training episodes; a task
                missing here (or nan) shows as `-`.
        """
        if self._bar is None:
            return
        self._bar.n = int(step)
        returns = {name: recent_returns.get(name, math.nan) for name in self.task_names}
        self._bar.set_postfix_str(format_postfix(sps, returns), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        """Closes the progress bar, the CSV file, the TensorBoard writer and the W&B run."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        self._views.close()
        try:
            self._csv_file.close()
        except OSError as error:
            raise run_dir_error(self.metrics_path, error) from error

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def format_postfix(sps: float, recent_returns: Mapping[str, float]) -> str:
    """The progress bar's postfix, e.g. `1,950 step/s Breakout=3.1 Freeway=12.0`.

    Args:
        sps: env steps per second.
        recent_returns: task name -> recent training-episode return; non-finite shows as `-`.

    Returns:
        The postfix text.
    """
    parts = [f"{sps:,.0f} step/s" if math.isfinite(sps) else "- step/s"]
    for name, value in recent_returns.items():
        shown = f"{value:.1f}" if math.isfinite(value) else "-"
        parts.append(f"{name}={shown}")
    return " ".join(parts)


def _open_metrics_csv(path: Path) -> TextIO:
    """Opens metrics.csv for appending; writes the header only when the file is new or empty.

    A last line cut short by a crash (no trailing newline) is dropped so the file stays valid.
    """
    handle = open_append_nofollow(path)
    try:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        if size > 0:
            size = _last_newline_end(path, size)
            os.ftruncate(fd, size)
        if size == 0:
            csv.writer(handle, lineterminator="\n").writerow(CSV_HEADER)
            handle.flush()
    except BaseException as error:
        with contextlib.suppress(OSError):
            handle.close()
        if isinstance(error, OSError):
            raise run_dir_error(path, error) from error
        raise
    return handle


def _last_newline_end(path: Path, size: int, chunk_bytes: int = 65536) -> int:
    """The offset just after the last newline of the first `size` bytes of `path` (0: none)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        end = size
        while end > 0:
            start = max(0, end - chunk_bytes)
            index = os.pread(fd, end - start, start).rfind(b"\n")
            if index >= 0:
                return start + index + 1
            end = start
        return 0
    finally:
        os.close(fd)


def _make_summary_writer(log_dir: Path, start_step: int) -> Any:
    """A TensorBoard SummaryWriter (imported here: torch is only loaded when asked for).

    On a resume, TensorBoard drops the events logged at or after the purge step, so the purge
    step is one past `start_step`: the events at the checkpoint's step stay.
    """
    from torch.utils.tensorboard import SummaryWriter

    purge_step = start_step + 1 if start_step > 0 else None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _make_bar(total: int, start_step: int) -> Any:
    """A tqdm bar over env steps per task, starting at `start_step`."""
    from tqdm import tqdm

    return tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True, smoothing=0.1)
