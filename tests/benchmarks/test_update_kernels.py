"""The update-kernels benchmark: each variant runs an update and leaves the learner as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_benchmarks

from multiq.api import MultiTaskDQN


@pytest.fixture(scope="module")
def bench():
    scripts = load_benchmarks(
        speed="speed_common", profile="profile_step", kernels="update_kernels"
    )
    return scripts.kernels


@pytest.fixture(scope="module")
def learner_and_batch(tmp_path_factory):
    model = MultiTaskDQN(
        "minatar:Breakout,minatar:Freeway", run_dir=tmp_path_factory.mktemp("run"),
        learning_starts=100, buffer_size=500, batch_size=8, eval_freq=0, tensorboard=False,
        progress_bar=False, checkpoint_freq=0, async_updates=False,
    )  # fmt: skip
    model.learn(150, evaluate=False)
    replay = model.trainer.replay
    batch = replay.sample(dict.fromkeys(replay.buffers, 8), np.random.default_rng(0))
    return model.learner, batch


def test_every_variant_updates_and_restores_the_nets_and_flags(bench, learner_and_batch):
    learner, batch = learner_and_batch
    onednn = torch.backends.mkldnn.enabled
    for variant in bench.VARIANTS:
        assert bench.timed_ms(learner, [batch] * 3, variant) > 0
        assert torch.backends.mkldnn.enabled == onednn
        assert not torch.is_autocast_cpu_enabled()
        conv = next(m for m in learner.online.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous()


def test_a_variants_loss_comes_from_a_copy_and_is_fp32s_within_bf16_precision(
    bench, learner_and_batch
):
    learner, batch = learner_and_batch
    before = {k: v.clone() for k, v in learner.online.state_dict().items()}
    fp32 = bench.first_loss(learner, batch, "fp32")
    assert bench.first_loss(learner, batch, "fp32 no-onednn") == pytest.approx(fp32, rel=1e-5)
    assert bench.first_loss(learner, batch, "bf16 autocast") == pytest.approx(fp32, rel=0.05)
    after = learner.online.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_report_gives_each_variants_speed_and_the_sb3_bound(bench):
    namespace = type("Args", (), {"updates": 10, "rounds": 2, "threads": 1, "sb3_sps": 1000.0})
    times = {v: [10.0, 10.0] for v in bench.VARIANTS} | {"bf16 autocast": [5.0, 5.0]}
    losses = dict.fromkeys(bench.VARIANTS, 1.0)
    text = bench.render(namespace, times, losses, 60.0)
    assert "| bf16 autocast | 5.00 | 5.00, 5.00 | 2.00x | 4,000 | 4.00 |" in text
    assert "| fp32 | 10.00 | 10.00, 10.00 | 1.00x | 2,000 | 2.00 |" in text
    assert "leaves 5.00 ms per update" in text
