"""A transfer target's own exploration: `transfer_initial_eps` and `transfer_prefill_steps`.

The schedule is unit-tested against hand-computed values; the prefill end to end on a tiny
CartPole source fine-tuned on a CartPole variant named as the source task (so the target keeps
the source's head and its policy is the source's): before the first update the replay holds a
transition of every prefill step but the autoreset ones (which store nothing), acted greedily by
the source (`exploration_final_eps` 0), and a run killed during the prefill resumes to the
uninterrupted run's weights.
"""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import numpy as np
import pytest
import tiny_config
import torch

from multiq.agents.learner import Learner, LearnerSettings
from multiq.api import MultiTaskDQN
from multiq.collect.sequential import Collector
from multiq.config import Config
from multiq.errors import ConfigError
from multiq.phases.phase import Phase
from multiq.recipes.adapt import SCRATCH, Init, adapt_config, prefill_steps
from multiq.tasks import make_taskset
from multiq.train.callbacks import Callback
from multiq.train.inner import InnerLoop
from multiq.train.loop import linear_epsilon, phase_epsilon
from multiq.train.stop import Interrupted

TARGET = [{"id": "gym:CartPole-v1", "name": "CartPole", "kwargs": {"sutton_barto_reward": True}}]
SETTINGS = tiny_config.TINY_RUN | {"learning_starts": 50, "n_step": 1, "n_envs": 1}
PREFILL = 100
TARGET_SETTINGS = {
    "total_steps_per_task": 250,
    "exploration_final_eps": 0.0,
    "transfer_prefill_steps": PREFILL,
    "log_interval": 50,
}


def schedule_config(**changes) -> Config:
    base = {"exploration_initial_eps": 1.0, "exploration_final_eps": 0.05}
    return Config(**{**base, "exploration_fraction": 0.5, **changes})


def test_the_phase_schedule_prefills_warms_up_and_decays_from_its_initial_eps():
    cfg = schedule_config()
    phase = Phase("t", ("a",), 1000, initial_eps=0.1, prefill_steps=100)
    assert phase_epsilon(cfg, phase, 0, learning=False) == 0.05  # prefill: final epsilon
    assert phase_epsilon(cfg, phase, 99, learning=False) == 0.05
    assert phase_epsilon(cfg, phase, 100, learning=False) == 0.1  # warm-up at its own epsilon
    # then linear from 0.1 to 0.05 over 0.5 * 1000 steps, counted from the phase's start
    assert phase_epsilon(cfg, phase, 200, learning=True) == pytest.approx(0.1 - 0.4 * 0.05)
    assert phase_epsilon(cfg, phase, 500, learning=True) == pytest.approx(0.05)
    assert phase_epsilon(cfg, phase, 900, learning=True) == pytest.approx(0.05)


def test_without_its_own_values_a_phase_keeps_the_configs_schedule_bit_for_bit():
    cfg = schedule_config(exploration_initial_eps=0.7)
    phase = Phase("t", ("a",), 1000)
    assert phase_epsilon(cfg, phase, 0, learning=False) == 1.0  # random warm-up, as before
    for step in (0, 1, 137, 499, 500, 999):
        old = cfg.exploration_initial_eps + min(step / 500, 1.0) * (
            cfg.exploration_final_eps - cfg.exploration_initial_eps
        )
        assert phase_epsilon(cfg, phase, step, learning=True) == old
        assert linear_epsilon(cfg, step, 1000) == old


def test_a_phase_refuses_a_bad_epsilon_or_a_prefill_that_leaves_no_training():
    with pytest.raises(ConfigError, match="initial_eps must be null or in"):
        Phase("t", ("a",), 100, initial_eps=1.5)
    with pytest.raises(ConfigError, match="lower transfer_prefill_steps"):
        Phase("t", ("a",), 100, prefill_steps=100)


def test_a_phase_saved_before_the_new_fields_loads_with_todays_behaviour():
    saved = Phase("t", ("a",), 100, initial_eps=0.2, prefill_steps=10).to_dict()
    assert Phase.from_dict(saved) == Phase("t", ("a",), 100, initial_eps=0.2, prefill_steps=10)
    old = {k: v for k, v in saved.items() if k not in ("initial_eps", "prefill_steps")}
    loaded = Phase.from_dict(old)
    assert (loaded.initial_eps, loaded.prefill_steps) == (None, 0)


def test_adapt_gives_saved_models_the_transfer_epsilon_and_scratch_the_configs():
    cfg = schedule_config(transfer_initial_eps=0.1)
    assert adapt_config(Init("m", object()), cfg).exploration_initial_eps == 0.1
    assert adapt_config(Init(SCRATCH, None), cfg).exploration_initial_eps == 1.0
    assert adapt_config(Init("m", object()), schedule_config()) == schedule_config()


def test_adapt_prefills_for_saved_models_only_and_refuses_a_prefill_past_the_largest_k():
    cfg = schedule_config(transfer_prefill_steps=10)
    assert prefill_steps(Init("m", object()), cfg, [0, 50]) == 10
    assert prefill_steps(Init(SCRATCH, None), cfg, [0, 50]) == 0
    assert prefill_steps(Init("m", object()), schedule_config(), [0, 50]) == 0
    with pytest.raises(ConfigError, match="leaves no training before the largest k \\(10\\)"):
        prefill_steps(Init("m", object()), cfg, [0, 10])


def inner_run(prefill: int, monkeypatch) -> tuple[list[tuple[int, float]], list[int], int]:
    """A 120-step headless run from fresh weights: (env steps, epsilon) of every collector
    step, the env steps at which updates ran, and the update count."""
    cfg = Config(**{**tiny_config.TINY_META, "n_envs": 1, "train_freq": 1,
                    "inner_learning_starts": 20, "exploration_final_eps": 0.05})  # fmt: skip
    (spec,) = list(make_taskset([{"id": "gym:CartPole-v1", "name": "t"}]))
    learner = Learner([spec], LearnerSettings(hidden_size=16))
    loop = InnerLoop(learner, cfg, "t")
    steps, updates = [], []
    step = Collector.step

    def record_step(self, epsilon, shares, state):
        steps.append((state.env_steps, epsilon))
        return step(self, epsilon, shares, state)

    update = learner.update

    def record_update(batch, *args, **kwargs):
        updates.append(steps[-1][0] + 1)
        return update(batch, *args, **kwargs)

    monkeypatch.setattr(Collector, "step", record_step)
    monkeypatch.setattr(learner, "update", record_update)
    result = loop.train(spec, 120, seed=3, prefill_steps=prefill)
    return steps, updates, result.updates


def test_the_headless_loop_prefills_at_the_final_epsilon_and_updates_only_after(monkeypatch):
    steps, updates, count = inner_run(50, monkeypatch)
    assert [eps for step, eps in steps if step < 50] == [0.05] * 50
    assert all(eps != 0.05 for step, eps in steps[50:60])  # then the schedule, from its start
    assert min(updates) == 50 and count == len(updates) == 120 - 50 + 1
    steps, updates, count = inner_run(0, monkeypatch)  # no prefill: as before
    assert steps[0][1] == 1.0 and min(updates) == 20 and count == 120 - 20 + 1
    with pytest.raises(ConfigError, match="leaves no training"):
        inner_run(120, monkeypatch)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("transfer_exploration") / "source"
    MultiTaskDQN("classic:CartPole", run_dir=run_dir, **SETTINGS).learn(evaluate=False)
    return run_dir


def finetune(source: Path, run_dir: Path, **changes) -> MultiTaskDQN:
    return MultiTaskDQN.from_pretrained(
        source, TARGET, mode="finetune", run_dir=run_dir, **{**TARGET_SETTINGS, **changes}
    )


def test_the_target_phase_takes_the_transfer_keys_and_scratch_does_not(source, tmp_path):
    (phase,) = finetune(source, tmp_path / "ft", transfer_initial_eps=0.2).phases
    assert (phase.initial_eps, phase.prefill_steps) == (0.2, PREFILL)
    scratch = MultiTaskDQN.from_pretrained(
        source, TARGET, mode="scratch", run_dir=tmp_path / "s", transfer_initial_eps=0.2,
        **TARGET_SETTINGS,
    )  # fmt: skip
    assert (scratch.phases[0].initial_eps, scratch.phases[0].prefill_steps) == (None, 0)


class PrefillProbe(Callback):
    """Through the prefill: the env steps that stored no transition, each after an episode's
    end (autoreset) or not; at its end the target replay's obs and actions and the updates."""

    def __init__(self):
        self.stored, self.resets, self.other_misses, self.at_prefill = 0, 0, 0, None

    def on_step(self, trainer) -> bool:
        state, buffer = trainer.state, trainer.replay.buffers["CartPole"]
        if state.phase_env_steps > PREFILL:
            return True
        size = len(buffer)
        if size == self.stored:  # this step stored nothing: an autoreset after `done`
            after_end = bool(buffer.done[size - 1, 0])
            self.resets += after_end
            self.other_misses += not after_end
        self.stored = size
        if state.phase_env_steps == PREFILL:
            obs, actions = buffer.obs[:size, 0].copy(), buffer.actions[:size, 0].copy()
            self.at_prefill = (size, obs, actions, state.updates)
        return True


def logged_epsilons(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = csv.DictReader(f)
        return {int(r["step"]): float(r["value"]) for r in rows if r["key"] == "rollout/epsilon"}


def test_prefill_fills_the_replay_with_the_sources_greedy_actions_before_any_update(
    source, tmp_path
):
    model = finetune(source, tmp_path / "ft", transfer_initial_eps=0.5)
    probe = PrefillProbe()
    model.learn(callbacks=probe, evaluate=False)
    size, obs, actions, updates = probe.at_prefill
    assert (size + probe.resets, probe.other_misses, updates) == (PREFILL, 0, 0)
    assert probe.resets > 0  # this weak source's episodes end within the prefill
    q = MultiTaskDQN.load(source).policy.q_values({"CartPole": obs})
    np.testing.assert_array_equal(actions, q.argmax(dim=1).numpy())
    assert model.state.updates > 0  # it trained after the prefill
    # logged at steps 50, 100, ...: prefill at 0, then 0.5 decaying over 0.1 * 250 = 25 steps
    epsilons = logged_epsilons(tmp_path / "ft")
    assert epsilons[50] == 0.0
    assert epsilons[150] == 0.0  # past the schedule's decay: exploration_final_eps
    (phase,) = model.phases
    assert phase_epsilon(model.config, phase, PREFILL, learning=True) == 0.0
    assert phase_epsilon(model.config, phase, PREFILL, learning=False) == 0.5


class StopAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step(self, trainer) -> bool:
        if trainer.state.phase_env_steps >= self.step and not trainer._stop.requested:
            trainer._stop.signal_number = signal.SIGINT
        return True


def same_weights(a: MultiTaskDQN, b: MultiTaskDQN) -> bool:
    sa, sb = a.learner.online.state_dict(), b.learner.online.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_run_killed_during_the_prefill_resumes_to_the_uninterrupted_weights(source, tmp_path):
    whole = finetune(source, tmp_path / "whole", save_replay=True)
    whole.learn(evaluate=False)
    cut = finetune(source, tmp_path / "cut", save_replay=True)
    with pytest.raises(Interrupted):
        cut.learn(callbacks=StopAt(60), evaluate=False)
    assert cut.state.updates == 0
    resumed = MultiTaskDQN.resume(tmp_path / "cut")
    assert resumed.phases == whole.phases
    resumed.learn(evaluate=False)
    assert resumed.state.updates == whole.state.updates
    assert resumed.state.task_env_steps == whole.state.task_env_steps
    assert same_weights(resumed, whole)


class FirstUpdate(Callback):
    def __init__(self):
        self.step = None

    def on_step(self, trainer) -> bool:
        if self.step is None and trainer.state.updates:
            self.step = trainer.state.phase_env_steps
        return True


def test_a_resume_without_replay_during_the_prefill_still_waits_for_it(source, tmp_path):
    cut = finetune(source, tmp_path / "cut", transfer_prefill_steps=150)
    with pytest.raises(Interrupted):
        cut.learn(callbacks=StopAt(60), evaluate=False)
    resumed = MultiTaskDQN.resume(tmp_path / "cut")
    # refilling learning_starts (50) steps would end inside the prefill (150)
    assert resumed.state.learning_starts_at == resumed.state.phase_env_steps + 50 < 150
    first = FirstUpdate()
    resumed.learn(callbacks=first, evaluate=False)
    assert first.step is not None and first.step > 150
