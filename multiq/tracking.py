"""Run tracking: metrics.csv (long format), TensorBoard scalars and a tqdm progress bar.

`RUN_DIR/metrics.csv` has the header `step,wall_time_s,key,value`, one row per scalar. It is
the file `multiq.report` reads; TensorBoard (`RUN_DIR/tb`) is an optional extra view.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from multiq.rundir import CSV_HEADER, METRICS_FILE, TENSORBOARD_DIR

__all__ = ["CSV_HEADER", "METRICS_FILE", "TENSORBOARD_DIR", "Tracker", "format_postfix"]


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
            TensorBoard drops events it logged after this step in an earlier session.
    """

    def __init__(
        self,
        run_dir: str | Path,
        task_names: Sequence[str],
        total_steps_per_task: int,
        tensorboard: bool = True,
        progress_bar: bool = True,
        start_step: int = 0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.task_names = list(task_names)
        self._start_time = time.monotonic()
        self._csv_file = _open_metrics_csv(self.run_dir / METRICS_FILE)
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        tb_dir = self.run_dir / TENSORBOARD_DIR
        self._tb = _make_summary_writer(tb_dir, start_step) if tensorboard else None
        self._bar = _make_bar(total_steps_per_task, start_step) if progress_bar else None
        self._closed = False

    @property
    def metrics_path(self) -> Path:
        """The CSV file `log()` appends to."""
        return self.run_dir / METRICS_FILE

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Appends one row per metric to metrics.csv (flushed) and to TensorBoard.

        Args:
            step: env steps per task at which the metrics were measured.
            metrics: key -> scalar, e.g. `{"task/Breakout/return": 3.0, "train/loss": 0.1}`.
                Non-finite values are written as `nan` / `inf`.
        """
        wall_time = f"{time.monotonic() - self._start_time:.3f}"
        for key, value in metrics.items():
            number = float(value)
            self._csv.writerow((int(step), wall_time, key, repr(number)))
            if self._tb is not None:
                self._tb.add_scalar(key, number, int(step))
        self._csv_file.flush()
        if self._tb is not None:
            self._tb.flush()

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
        """Closes the progress bar, the CSV file and the TensorBoard writer."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        self._csv_file.close()
        if self._tb is not None:
            self._tb.close()

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
    if path.exists() and path.stat().st_size > 0:
        _drop_partial_last_line(path)
    is_new = not path.exists() or path.stat().st_size == 0
    handle = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
    if is_new:
        csv.writer(handle, lineterminator="\n").writerow(CSV_HEADER)
        handle.flush()
    return handle


def _drop_partial_last_line(path: Path) -> None:
    """Truncates `path` after its last newline when it does not end with one."""
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _make_summary_writer(log_dir: Path, start_step: int) -> Any:
    """A TensorBoard SummaryWriter (imported here: torch is only loaded when asked for)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir), purge_step=start_step if start_step > 0 else None)


def _make_bar(total: int, start_step: int) -> Any:
    """A tqdm bar over env steps per task, starting at `start_step`."""
    from tqdm import tqdm

    return tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True, smoothing=0.1)
