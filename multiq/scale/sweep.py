"""`multiq sweep`: a base config and a grid of overrides, each trial a run, as Ray Tune trials.

A sweep file (YAML):

    name: schemes                   # the sweep folder's name (default: the file's stem)
    base: configs/classic.yaml      # optional: a config file the trials start from
    config: {total_steps_per_task: 20000}   # optional: keys on top of the base
    grid:                           # every combination of these values
      scheme: [shared, independent]
      seed: [0, 1, 2]
    trials:                         # optional: more trials, each its own overrides
      - {scheme: routed, routing: gumbel}

Each trial is a normal run folder `SWEEP_DIR/<trial name>` (the name lists its overrides), so
`multiq compare SWEEP_DIR` compares them and `multiq train --resume` continues one. The sweep
folder keeps `sweep.yaml` (the file with its base config written out, so a resume needs no
other file) and `sweep.json` (each trial's state
and error). Trials run as Ray Tune trials (one CPU and one torch thread each, at most
`max_concurrent` at once) on a local Ray started with this machine's cores, or on the cluster
at `address`. A trial that fails is reported with its error and the others go on. Run again
(or `--resume SWEEP_DIR`), a sweep keeps its finished trials and resumes the others from their
checkpoints.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from multiq.collect.cluster import check_address, start_ray
from multiq.config import CONFIG_KEYS, Config, reject_unknown
from multiq.errors import ConfigError
from multiq.runio.files import atomic_write_text, make_folder
from multiq.runio.layout import CHECKPOINT_FILE, MODEL_FILE, RUNS_DIR, SUMMARY_FILE

SWEEP_KEYS = ("name", "base", "config", "grid", "trials")
SWEEP_FILE, STATE_FILE = "sweep.yaml", "sweep.json"


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: its name (its folder's) and its config."""

    name: str
    overrides: Mapping[str, Any]
    config: Config


def read_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep file as a dict with every key present (see the module docstring).

    Raises:
        ConfigError: unreadable YAML, an unknown sweep key, a grid that is not a mapping of
            non-empty lists, or no trial at all.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read sweep file {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file {path} must be a mapping with keys {', '.join(SWEEP_KEYS)}")
    reject_unknown(data, SWEEP_KEYS, "sweep key")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(
            f"sweep file {path}: `grid` must map config keys to non-empty lists of values, "
            f"got {grid!r}"
        )
    trials = data.get("trials") or []
    if not isinstance(trials, list) or any(not isinstance(t, dict) for t in trials):
        raise ConfigError(f"sweep file {path}: `trials` must be a list of mappings")
    if not grid and not trials:
        raise ConfigError(
            f"sweep file {path} has an empty grid and no trials: give `grid: {{key: [values]}}`"
        )
    return {
        "name": str(data.get("name") or path.stem),
        "base": data.get("base"),
        "config": dict(data.get("config") or {}),
        "grid": grid,
        "trials": trials,
    }


def plan_trials(sweep: Mapping[str, Any], root: Path = Path(".")) -> list[Trial]:
    """Every trial of a sweep with its validated config (grid combinations, then `trials`).

    Raises:
        ConfigError: a key that is not a config key (with did-you-mean) or a bad value,
            naming the trial.
    """
    for key in [*sweep["grid"], *sweep["config"], *(k for t in sweep["trials"] for k in t)]:
        reject_unknown({key: None}, CONFIG_KEYS, "config key in the sweep")
    base = base_config(sweep, root)
    keys = list(sweep["grid"])
    combinations = itertools.product(*sweep["grid"].values()) if keys else ()  # no grid: none
    overrides = [dict(zip(keys, values, strict=True)) for values in combinations]
    overrides += [dict(t) for t in sweep["trials"]]
    trials, names = [], set()
    for change in overrides:
        name = trial_name(change)
        if name in names:
            continue
        names.add(name)
        try:
            config = base.replace(**change)
        except ConfigError as error:
            raise ConfigError(f"sweep trial {name}: {error}") from error
        trials.append(Trial(name, change, config))
    return trials


def base_config(sweep: Mapping[str, Any], root: Path = Path(".")) -> Config:
    """The config every trial starts from: `base` (a path relative to `root`) and `config`."""
    base = Config.from_yaml(root / sweep["base"]) if sweep["base"] else Config()
    return base.replace(**sweep["config"]) if sweep["config"] else base


def trial_name(overrides: Mapping[str, Any]) -> str:
    """`scheme=shared,seed=0`, made safe for a folder name (`base` for no overrides)."""
    text = ",".join(f"{k}={_short(v)}" for k, v in overrides.items()) or "base"
    return re.sub(r"[^A-Za-z0-9_.,=+-]+", "-", text)[:120]


def _short(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def trial_state(run_dir: Path) -> str:
    """`finished` (summary.json and model.pt), `resumable` (checkpoint.pt) or `new`."""
    if (run_dir / SUMMARY_FILE).is_file() and (run_dir / MODEL_FILE).is_file():
        return "finished"
    return "resumable" if (run_dir / CHECKPOINT_FILE).is_file() else "new"


def run_trial(trial: Trial, run_dir: Path) -> dict[str, Any]:
    """Trains (or resumes) one trial in `run_dir`; returns its summary. Runs inside a worker."""
    import torch

    from multiq.api import MultiTaskDQN

    torch.set_num_threads(1)
    if trial_state(run_dir) == "resumable":
        model = MultiTaskDQN.resume(run_dir)
    else:
        model = MultiTaskDQN(config=trial.config, run_dir=run_dir)
    model.learn()
    return model.summary


def run_sweep(
    sweep_file: str | Path | None,
    sweep_dir: str | Path | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Runs (or resumes) a sweep; returns its folder and trial name -> {state, error}.

    Args:
        sweep_file: the sweep YAML; None to resume `sweep_dir` from its saved sweep.yaml.
        sweep_dir: the sweep folder (default runs/sweeps/<name>).
        address: a Ray cluster's address (None: a local Ray on this machine's cores).
        max_concurrent: trials at once (None: one per CPU).

    Raises:
        ConfigError: a bad sweep file; MultiqError: an unreachable address.
    """
    if sweep_file is None:
        if sweep_dir is None:
            raise ConfigError("give a sweep file, or --resume SWEEP_DIR")
        sweep_file = Path(sweep_dir) / SWEEP_FILE
    sweep = read_sweep(sweep_file)
    root = Path(sweep_file).parent
    trials = plan_trials(sweep, root)
    folder = Path(sweep_dir) if sweep_dir is not None else RUNS_DIR / "sweeps" / sweep["name"]
    make_folder(folder)
    # no paths; only the keys set, so that a resumed sweep's trials follow their tasks as well
    saved = {**sweep, "base": None, "config": base_config(sweep, root).given_values()}
    atomic_write_text(folder / SWEEP_FILE, yaml.safe_dump(saved, sort_keys=False))
    if address is not None:
        check_address(address)
    states = {t.name: {"state": trial_state(folder / t.name), "error": None} for t in trials}
    todo = [t for t in trials if states[t.name]["state"] != "finished"]
    if todo:
        states.update(_tune(todo, folder, address, max_concurrent))
    atomic_write_text(folder / STATE_FILE, json.dumps(states, indent=2))
    return folder, states


def _tune(
    trials: Sequence[Trial], folder: Path, address: str | None, max_concurrent: int | None
) -> dict[str, dict[str, Any]]:
    """Runs the trials as Ray Tune trials; returns their states and errors."""
    import ray
    from ray import tune

    by_name = {t.name: t for t in trials}
    start_ray(address)
    try:

        def trainable(params: dict[str, Any]) -> dict[str, Any]:
            name = params["trial"]
            summary = run_trial(by_name[name], folder.resolve() / name)
            return {"env_steps_per_s": float(summary.get("env_steps_per_s", 0.0))}

        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"trial": tune.grid_search(list(by_name))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or 0),
            run_config=tune.RunConfig(
                storage_path=str((folder / ".tune").resolve()), name="trials", verbose=0
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    states: dict[str, dict[str, Any]] = {}
    for index in range(len(results)):  # a ResultGrid indexes, it does not declare __iter__
        result = results[index]
        name = (result.config or {})["trial"]
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        states[name] = {"state": trial_state(folder / name) if error is None else "failed",
                        "error": error}  # fmt: skip
    return states
