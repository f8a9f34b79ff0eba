"""Shared fixtures: a tiny trainer on the simulator, and a fingerprint of every file in a folder."""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

# The tests compile the same tiny agents' XLA programs again and again, in this process and in their Ray and
# subprocess workers. One compilation cache for the session, set before JAX is imported and inherited by every
# child process, compiles each program once: the suite went from 17.3 to 12.4 min on a 2-core machine.
# A fresh folder each session, so nothing carries over between runs or code versions.
_JAX_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _JAX_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="dsrl-real-tests-jax-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import numpy as np  # noqa: E402 - after the JAX cache settings
import pytest  # noqa: E402 - after the JAX cache settings

from dsrl_real.config.observations import observation_overrides  # noqa: E402 - after the JAX cache settings
from dsrl_real.runlock import LOCK_FILE  # noqa: E402 - after the JAX cache settings

# Observation mode `state` (no cameras; the simulator's object state, privileged): the fast tests' choice, so that
# no frame is rendered or encoded. The defaults (pixels) need cameras.
STATE = observation_overrides("state")
# A tiny DSRL run: no cameras, a scaled-noise base policy, 12-step episodes of 3 chunks, 2 warm-start episodes.
FAST_TRAIN = [*STATE, "policy.external=dsrl_real.policies.examples:scaled_noise_policy", "train.wandb=disabled",
              "train.eval_episodes=2", "train.eval_every_steps=100000", "train.warm_start_episodes=2", "agent.hidden_dim=32",
              "agent.batch_size=16", "agent.utd=2", "task.max_steps=12"]


@pytest.fixture
def fast_trainer():
    """`fast_trainer(out_dir, *overrides, policy=None)`: a DSRLTrainer of the tiny run writing into out_dir."""
    from dsrl_real.config import load_config
    from dsrl_real.train.trainer import DSRLTrainer

    made = []

    def make(out_dir, *overrides, policy=None):
        trainer = DSRLTrainer(load_config(overrides=[*FAST_TRAIN, f"train.out_dir={out_dir}", *overrides]), policy=policy)
        made.append(trainer)
        return trainer

    yield make
    for trainer in made:
        trainer.close()


def file_hashes(folder: str | Path) -> dict[str, str]:
    """sha256 of every file under `folder` by relative path; the run folder's lock file is left out
    (it holds whoever writes now, not data)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


@pytest.fixture
def hashes():
    return file_hashes


def config_refusal(overrides=(), path=None) -> str:
    """The one sentence load_config refuses `overrides` (on the config file `path`) with; fails if it accepts them."""
    from dsrl_real.config import ConfigError, load_config

    with pytest.raises(ConfigError) as refused:
        load_config(path, list(overrides))
    return str(refused.value)


def assert_same_batch(got: dict, expected: dict) -> None:
    """Two replay samples hold the same arrays under the same keys (one level of nesting: obs, next_obs)."""
    for key, value in expected.items():
        if isinstance(value, dict):
            for k in value:
                np.testing.assert_array_equal(got[key][k], value[k])
        else:
            np.testing.assert_array_equal(got[key], value)


def pytest_unconfigure(config):
    if _JAX_CACHE is not None:
        shutil.rmtree(_JAX_CACHE, ignore_errors=True)
