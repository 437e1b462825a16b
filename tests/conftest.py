"""Shared test settings."""

import os

# One intra-op thread: the test networks are tiny, and OpenMP threads that spin-wait for a core
# busy with another process (a parallel test, CI neighbours) turn milliseconds into seconds.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
