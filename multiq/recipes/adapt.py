"""Adapt-k evaluation: how fast does each initialisation learn tasks it has never seen?

For every initialisation (a saved model, or ``scratch``), every task and every seed, one headless
run (`multiq.train.inner`) trains the task for max(k) env steps and evaluates it after each k of
`ks` (k = 0: the initialisation itself). All initialisations see the same tasks, seeds, env
seeds and training settings (the adapt config), so the comparison is paired.

How a task gets its weights from a saved model: every saved weight is kept; a task the model
holds under the same name keeps its head; any other task is added (`Learner.add_task`) with
`head_init` (default here ``mean``: the mean of the model's heads, e.g. the one head of a
meta-trained model or the average of a multi-task model's heads), and a new input layer only if
its observations differ from every held task's. ``scratch`` builds a fresh network with the
network settings of the first saved model (or the adapt config's when there is none).

A saved model's runs explore from `transfer_initial_eps` where it is set (null: the config's
`exploration_initial_eps`, as scratch always does), so that a good initialisation is not thrown
into random exploration, and first fill their replay for `transfer_prefill_steps` env steps
acting with the model's policy (counted in k, as a transfer target's prefill); scratch never
prefills.

Results go to a folder: adapt.json (`rows`: init, task, seed, k, return), adapt.md and
adapt.png. Rows are written after every run, and a folder that already holds rows for the same
tasks and ks is continued (its finished runs are kept).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.agents.learner import Learner, LearnerSettings
from multiq.config import Config
from multiq.errors import ConfigError
from multiq.recipes.transfer import load_source
from multiq.report.meta import write_adapt_report
from multiq.runio.files import atomic_write_text, make_folder
from multiq.runio.layout import ADAPT_FILE, claim_run_dir
from multiq.tasks.families import check_family, resolve_options
from multiq.tasks.spec import TaskSpec
from multiq.threads import torch_threads
from multiq.train.device import resolve_device
from multiq.train.inner import InnerLoop

SCRATCH = "scratch"
MAX_K = 100_000_000
log = logging.getLogger(__name__)


@dataclass
class Init:
    """An initialisation: a label and a saved model (None: scratch)."""

    label: str
    model: Any | None


def parse_ks(text: str | Sequence[int]) -> list[int]:
    """`"0,2000,10000"` -> [0, 2000, 10000] (sorted, unique).

    Raises:
        ConfigError: an entry that is not an integer, or k < 0.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    ks = []
    for part in parts:
        try:
            k = int(str(part).strip())
        except ValueError:
            raise ConfigError(f"k must be integers such as 0,2000,10000, got {part!r}") from None
        if not 0 <= k <= MAX_K:
            raise ConfigError(f"k must be in [0, {MAX_K}] env steps, got {k}")
        ks.append(k)
    if not ks:
        raise ConfigError("give at least one k, e.g. --k 0,2000,10000")
    return sorted(set(ks))


def load_inits(cls, sources: Sequence[str]) -> list[Init]:
    """`scratch`, a run folder or a model.pt, each optionally `LABEL=SOURCE`.

    Raises:
        MultiqError: a source that is not a finished run folder or model file.
        ConfigError: two initialisations with one label.
    """
    inits = []
    for source in sources:
        label, _, where = source.rpartition("=") if "=" in source else ("", "", source)
        if where == SCRATCH:
            inits.append(Init(label or SCRATCH, None))
            continue
        path = Path(where)
        inits.append(Init(label or (path.name if path.is_dir() else path.parent.name),
                          load_source(cls, path)))  # fmt: skip
    labels = [i.label for i in inits]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"initialisations need distinct labels, got {labels}; use LABEL=PATH")
    return inits


def learner_settings(network: Config, training: Config) -> LearnerSettings:
    """The network keys of `network` with the optimisation keys of `training`."""
    optimisation = ("learning_rate", "gamma", "double_q", "max_grad_norm")
    changes = {key: getattr(training, key) for key in optimisation}
    return LearnerSettings.from_config(network, **changes, balancer="fixed")


def adapt_learner(init: Init, spec: TaskSpec, cfg: Config, network: Config, seed: int) -> Learner:
    """A learner holding `spec` with the initialisation's weights (see the module docstring).
    Fresh weights are drawn from torch's generator seeded with `seed`, inside `fork_rng`."""
    device = resolve_device(cfg.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if init.model is None:
            return Learner([spec], learner_settings(network, cfg), device)
        model = init.model
        learner = Learner(model.task_specs, learner_settings(model.config, cfg), device)
        learner.online.load_state_dict(model.learner.online.state_dict())
        learner.load_balance_state_dict(model.learner.balance_state_dict())
        if spec.name in learner.specs:
            learner.replace_task_env(spec)
        else:
            learner.add_task(spec, head_init=cfg.head_init)
        learner.sync_target(1.0)
        return learner


def run_seed(seed: int, task_index: int) -> int:
    """The env and sampling seed of one (seed, task) pair: the same for every init."""
    return int(np.random.SeedSequence([seed, task_index]).generate_state(1)[0]) % (2**31 - 2**20)


def adapt_runs(
    inits: Sequence[Init],
    tasks: Sequence[TaskSpec],
    ks: Sequence[int],
    seeds: Sequence[int],
    cfg: Config,
    done: Sequence[Mapping[str, Any]] = (),
    on_rows=None,
) -> list[dict[str, Any]]:
    """Rows (init, task, seed, k, return) of every run not in `done`; `on_rows(rows)` is called
    with all rows so far after each run.

    Raises:
        ConfigError: a prefill that leaves no training (checked before the first run).
    """
    for init in inits:
        prefill_steps(init, cfg, ks)
    rows = [dict(row) for row in done]
    finished = {(r["init"], r["task"], r["seed"]) for r in rows}
    network = next((i.model.config for i in inits if i.model is not None), cfg)
    for seed in seeds:
        for index, spec in enumerate(tasks):
            for init in inits:
                if (init.label, spec.name, seed) in finished:
                    continue
                rows += _one_run(init, spec, ks, seed, index, cfg, network)
                if on_rows is not None:
                    on_rows(rows)
    return rows


def adapt_config(init: Init, cfg: Config) -> Config:
    """The training settings of one run: a saved model explores from `transfer_initial_eps`
    (where set) so that it keeps acting as it learned; scratch keeps the config's schedule."""
    if init.model is None or cfg.transfer_initial_eps is None:
        return cfg
    return cfg.replace(exploration_initial_eps=cfg.transfer_initial_eps)


def prefill_steps(init: Init, cfg: Config, ks: Sequence[int]) -> int:
    """The env steps a run first fills its replay with: `transfer_prefill_steps` for a saved
    model, 0 for scratch.

    Raises:
        ConfigError: a prefill that leaves no training before the largest k.
    """
    if init.model is None or not cfg.transfer_prefill_steps:
        return 0
    if cfg.transfer_prefill_steps >= max(ks):
        raise ConfigError(
            f"transfer_prefill_steps={cfg.transfer_prefill_steps} leaves no training before the "
            f"largest k ({max(ks)}): set it below {max(ks)}, or 0 for no prefill"
        )
    return cfg.transfer_prefill_steps


def _one_run(init, spec, ks, seed, index, cfg, network) -> list[dict[str, Any]]:
    learner = adapt_learner(init, spec, cfg, network, seed)
    loop = InnerLoop(learner, adapt_config(init, cfg), spec.name)
    inner_seed = run_seed(seed, index)
    prefill = prefill_steps(init, cfg, ks)
    result = loop.train(spec, max(ks), inner_seed, eval_at=ks, prefill_steps=prefill)
    log.info("adapt %s on %s seed %d: %s", init.label, spec.name, seed, result.evaluations)
    return [
        {"init": init.label, "task": spec.name, "seed": seed, "k": k,
         "return": result.evaluations[k]}
        for k in ks
    ]  # fmt: skip


def family_options(inits: Sequence[Init], family: str) -> dict[str, Any]:
    """The family options the saved models were trained with (their `tasks` / `meta_tasks`
    entries of `family`), so that the held-out split is the one they never saw.

    Raises:
        ConfigError: two models trained on the family with different options.
    """
    found: dict[str, Any] | None = None
    for init in inits:
        if init.model is None:
            continue
        config = init.model.config
        for entry in _entries(config.tasks) + _entries(config.meta_tasks):
            if entry["id"].split(":")[:2] != ["family", family]:
                continue
            options = resolve_options(check_family(family), entry["kwargs"])
            if found is not None and options != found:
                raise ConfigError(
                    f"the models were trained on family {family!r} with different options "
                    f"({found} and {options}); compare models of one split"
                )
            found = options
    return dict(found or {})


def _entries(tasks: Any) -> list[dict[str, Any]]:
    items = tasks if isinstance(tasks, list) else [tasks]
    entries = []
    for item in items:
        if isinstance(item, str):
            entries += [{"id": p.strip(), "kwargs": {}} for p in item.split(",") if p.strip()]
        else:
            entries.append({"id": item["id"], "kwargs": dict(item.get("kwargs") or {})})
    return entries


def run_adapt(
    inits: Sequence[Init],
    tasks: Sequence[TaskSpec],
    ks: Sequence[int],
    seeds: Sequence[int],
    cfg: Config,
    out_dir: str | Path | None = None,
    title: str = "",
) -> Path:
    """Runs adapt-k into `out_dir` (continuing its finished runs) and writes the report.

    Returns:
        The folder.
    """
    folder = Path(out_dir) if out_dir is not None else claim_run_dir("adapt")
    make_folder(folder)
    header = {
        "title": title,
        "ks": list(ks),
        "seeds": list(seeds),
        "tasks": [t.name for t in tasks],
        "inits": [i.label for i in inits],
        "config": cfg.to_dict(),
    }
    done = _finished_rows(folder, header)

    def write(rows: list[dict[str, Any]]) -> None:
        atomic_write_text(folder / ADAPT_FILE, json.dumps({**header, "rows": rows}, indent=1))

    with torch_threads(cfg.torch_threads):
        write(adapt_runs(inits, tasks, ks, seeds, cfg, done, write))
    write_adapt_report(folder)
    return folder


def _finished_rows(folder: Path, header: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier adapt.json in `folder` with the same tasks and ks."""
    path = folder / ADAPT_FILE
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    if old.get("tasks") != header["tasks"] or old.get("ks") != header["ks"]:
        raise ConfigError(
            f"{path} holds adapt-k results for other tasks or ks ({old.get('tasks')}, "
            f"k={old.get('ks')}); give another --out folder"
        )
    runs = Counter((r["init"], r["task"], r["seed"]) for r in old["rows"])
    complete = {run for run, count in runs.items() if count == len(header["ks"])}
    return [r for r in old["rows"] if (r["init"], r["task"], r["seed"]) in complete]
