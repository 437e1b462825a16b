"""`HostBatch`: a batch's arrays in one host-to-device copy, with their values, shapes, dtypes."""

from __future__ import annotations

import copy

import numpy as np
import torch

from multiq.agents.host_batch import ALIGN_BYTES, HostBatch, layout
from multiq.api import MultiTaskDQN


def arrays(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.integers(0, 2, (3, 4, 10, 10)).astype(bool),  # a MinAtar task's obs
        rng.integers(0, 256, (3, 4, 84, 84)).astype(np.uint8)[:, :, ::2],  # not contiguous
        rng.random(5).astype(np.float32),
        rng.integers(0, 6, 7),  # int64
        rng.random((2, 3)),  # float64
    ]


def test_the_layout_aligns_every_array_and_leaves_no_overlap():
    items = arrays(np.random.default_rng(0))
    offsets, size = layout(items)
    assert all(offset % ALIGN_BYTES == 0 for offset in offsets)
    ends = [o + a.nbytes for o, a in zip(offsets, items, strict=True)]
    assert all(end <= start for end, start in zip(ends, offsets[1:], strict=False))
    assert size == ends[-1]


def test_packed_tensors_equal_the_arrays_and_survive_the_next_batch():
    rng = np.random.default_rng(1)
    host = HostBatch(torch.device("cpu"), pack=True)
    first = arrays(rng)
    got = host.to_device(first)
    host.to_device(arrays(rng))  # reuses the staging buffer
    for array, tensor in zip(first, got, strict=True):
        assert tensor.shape == array.shape
        assert tensor.dtype == torch.from_numpy(np.empty(0, array.dtype)).dtype
        assert np.array_equal(tensor.numpy(), array)


def test_on_the_cpu_the_arrays_are_wrapped_without_a_copy():
    array = np.arange(6, dtype=np.float32)
    (tensor,) = HostBatch(torch.device("cpu")).to_device([array])
    assert tensor.data_ptr() == array.ctypes.data


def test_an_update_from_a_packed_batch_is_bit_identical(tmp_path):
    model = MultiTaskDQN(
        "minatar:Breakout,minatar:Freeway", run_dir=tmp_path, seed=0, learning_starts=100
    )
    model.learn(300, evaluate=False)
    batch = model.trainer.replay.sample({"Breakout": 8, "Freeway": 8}, np.random.default_rng(2))
    plain, packed = model.learner, copy.deepcopy(model.learner)
    packed._host = HostBatch(torch.device("cpu"), pack=True)
    a, b = plain.update(batch), packed.update(batch)
    assert torch.equal(a["task_losses"], b["task_losses"])
    for (name, x), y in zip(plain.online.state_dict().items(), packed.online.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(x, y), name
