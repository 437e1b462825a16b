"""Shared fixtures for the task tests."""

from __future__ import annotations

import pytest

from multiq.tasks import TaskSet, make_taskset


@pytest.fixture(scope="session")
def minatar_tasks() -> TaskSet:
    return make_taskset("minatar")
