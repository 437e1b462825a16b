"""Tasks: build a TaskSet from config entries (`minatar`, `gym:<id>`, `family:<name>`, ...)."""

from multiq.tasks.families import FAMILIES, Family, check_family, family_params, family_tasks
from multiq.tasks.gym_ids import import_env_modules
from multiq.tasks.spec import TaskSet, TaskSpec
from multiq.tasks.suites import SUITES, Suite, describe_suites, make_taskset, task_entries

__all__ = [
    "FAMILIES",
    "SUITES",
    "Family",
    "Suite",
    "TaskSet",
    "TaskSpec",
    "check_family",
    "describe_suites",
    "family_params",
    "family_tasks",
    "import_env_modules",
    "make_taskset",
    "task_entries",
]
