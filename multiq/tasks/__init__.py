"""Tasks: build a TaskSet from config entries (`minatar`, `classic:CartPole`, `gym:<id>`, ...)."""

from multiq.tasks.spec import TaskSet, TaskSpec
from multiq.tasks.suites import SUITES, Suite, describe_suites, make_taskset, task_entries

__all__ = [
    "SUITES",
    "Suite",
    "TaskSet",
    "TaskSpec",
    "describe_suites",
    "make_taskset",
    "task_entries",
]
