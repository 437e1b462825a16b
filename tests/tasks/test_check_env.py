"""Gymnasium's own env checker on every env multiq builds (one per suite member and family).

`gymnasium.utils.env_checker.check_env` runs on the env as the task's `make_env` builds it,
wrappers and all; it also rebuilds the env from its spec (`env.spec.make()`), which needs every
wrapper to record its arguments (`RecordConstructorArgs`). Render modes are not checked (multiq
never renders; rendering opens windows). MinAtar's own Gymnasium env fails the checker on its
own: its `reset` does not seed `np_random` (MinAtar draws from its own generator, which multiq
seeds through `reset(seed=...)`), so its cases assert that failure of the base env and skip; the
spec rebuild of multiq's MinAtar wrappers is still checked (`test_every_env_multiq_builds_...`).
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from multiq.errors import TaskError
from multiq.tasks.families import FAMILIES
from multiq.tasks.suites import SUITES, make_taskset

# The open `gym` suite: ids whose envs get multiq's observation adapters (a Dict with an image
# reduced to it, then channel-first) besides the suites' own wrappers.
GYM_IDS = ("gym:MiniGrid-Empty-5x5-v0",)
# ALE games share one base env class and multiq's wrappers; each check takes seconds: one game.
MEMBERS_CHECKED = {"atari": 1}
ENTRIES = (
    *(
        f"{suite.name}:{member}"
        for suite in SUITES.values()
        for member in suite.members[: MEMBERS_CHECKED.get(suite.name)]
    ),
    *(f"family:{name}:train:1" for name in FAMILIES),
    *GYM_IDS,
)
# Base envs that fail check_env on their own: env id prefix -> (what the checker says, why)
BASE_FAILURES = {
    "MinAtar/": (
        "Expects the random number generator to have been generated given a seed",
        "MinAtar's own Gymnasium env does not seed its np_random in reset (it draws from its "
        "own generator, which reset(seed=...) does seed)",
    ),
}


def build(entry: str) -> gym.Env:
    """The env the entry's (first) task builds, as training builds it."""
    try:
        spec = make_taskset([entry])[0]
    except TaskError as error:  # an optional env package (ale-py, minigrid) is missing
        pytest.skip(f"{entry}: {error}")
    return spec.make_env()


def checker_error(env: gym.Env) -> str | None:
    """check_env's error for `env` (None: it passes); render modes are left out."""
    try:
        check_env(env, skip_render_check=True)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def known_base_failure(env: gym.Env) -> tuple[str, str] | None:
    env_id = env.unwrapped.spec.id if env.unwrapped.spec else ""
    return next((v for k, v in BASE_FAILURES.items() if env_id.startswith(k)), None)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the checker's advice (e.g. infinite bounds)
@pytest.mark.parametrize("entry", ENTRIES)
def test_gymnasiums_env_checker_passes_on_every_env_multiq_builds(entry):
    env = build(entry)
    try:
        known = known_base_failure(env)
        if known is not None:
            said, why = known
            base_error = checker_error(env.unwrapped)
            assert base_error is not None and said in base_error, base_error
            pytest.skip(f"{entry}: the base env fails check_env on its own: {why}")
        assert checker_error(env) is None, checker_error(env)
    finally:
        env.close()


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_env_multiq_builds_can_be_rebuilt_from_its_spec(entry):
    """What Gymnasium's `RecordConstructorArgs` is for: `env.spec.make()` gives the same env
    (same wrappers, spaces and first observation for a seed)."""
    env = build(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rebuilt = env.spec.make()
    try:
        assert str(rebuilt) == str(env)
        assert rebuilt.observation_space == env.observation_space
        assert rebuilt.action_space == env.action_space
        assert (rebuilt.reset(seed=5)[0] == env.reset(seed=5)[0]).all()
    finally:
        env.close()
        rebuilt.close()
