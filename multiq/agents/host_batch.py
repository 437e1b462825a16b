"""One host-to-device copy per batch: a sampled batch's arrays packed into one staging buffer.

A batch of T tasks is 2T observation arrays (each task's own shape and dtype) plus actions,
returns and discounts. Copying them one by one costs a transfer call each; on a GPU,
`HostBatch` packs them into one pinned buffer, copies it with one non-blocking transfer and
hands out typed views of the device copy. On the CPU the arrays are wrapped without a copy
(`torch.as_tensor`), as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ALIGN_BYTES = 16  # every array starts at a multiple of this (dtype views need alignment)


def layout(arrays: Sequence[np.ndarray]) -> tuple[list[int], int]:
    """(byte offset of each array in the packed buffer, the buffer's size in bytes)."""
    offsets, end = [], 0
    for array in arrays:
        start = -(-end // ALIGN_BYTES) * ALIGN_BYTES
        offsets.append(start)
        end = start + array.nbytes
    return offsets, end


class HostBatch:
    """Moves lists of numpy arrays to a device.

    Args:
        device: where the tensors go.
        pack: pack into one buffer and copy once (default: when the device is not the CPU).
    """

    def __init__(self, device: torch.device, pack: bool | None = None):
        self.device = torch.device(device)
        self.pack = self.device.type != "cpu" if pack is None else pack
        self._staging: torch.Tensor | None = None
        self._copied: torch.cuda.Event | None = None  # the last copy out of the staging buffer

    def to_device(self, arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Tensors on the device with the arrays' values, shapes and dtypes."""
        if not self.pack:
            return [torch.as_tensor(a, device=self.device) for a in arrays]
        arrays = [np.ascontiguousarray(a) for a in arrays]
        offsets, size = layout(arrays)
        staging = self._staging_buffer(size)
        host = staging.numpy()
        for array, offset in zip(arrays, offsets, strict=True):
            host[offset : offset + array.nbytes] = array.reshape(-1).view(np.uint8)
        if self.device.type == "cpu":  # packing on the CPU (tests): a copy the next call keeps
            packed = staging[:size].clone()
        else:
            packed = staging[:size].to(self.device, non_blocking=self.device.type == "cuda")
        if self.device.type == "cuda":
            self._copied = torch.cuda.Event()
            self._copied.record()
        return [_view(packed, a, o) for a, o in zip(arrays, offsets, strict=True)]

    def _staging_buffer(self, size: int) -> torch.Tensor:
        """The reused host buffer (pinned for a GPU), once the last copy out of it is done."""
        if self._copied is not None:
            self._copied.synchronize()
        if self._staging is None or self._staging.numel() < size:
            pinned = self.device.type == "cuda"
            self._staging = torch.empty(max(size, 1), dtype=torch.uint8, pin_memory=pinned)
        return self._staging


def _view(packed: torch.Tensor, array: np.ndarray, offset: int) -> torch.Tensor:
    """The tensor of `array`'s bytes at `offset` of `packed` (a view, no copy)."""
    dtype = torch.from_numpy(np.empty(0, dtype=array.dtype)).dtype
    raw = packed[offset : offset + array.nbytes]
    return raw.view(dtype).view(array.shape)
