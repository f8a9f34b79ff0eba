"""The replay buffer: whole episodes of chunk steps, observations stored once per time index.

One *transition* is one chunk step: the agent sees observation o_t (features f_t), picks noise w_t
(H, A), the base policy turns it into the chunk c_t (H, A), the robot executes the chunk, and the
episode moves on to o_{t+1}. An episode of T chunk steps has T + 1 observations (the final one
included) and T transitions.

Storage is a ring of `capacity` *time indices* (observation slots), each holding the policy
observation (a dict of arrays: float vectors as float32, camera frames in their own dtype, uint8,
never converted), the agent features (float32) and, if the slot starts a transition, its noise
(NaN when the episode carries none, e.g. demos or teleop; `has_noise` False), chunk, reward,
terminated and truncated flags, plus the episode id of every slot. An episode occupies T + 1
consecutive slots (mod capacity), so the next observation of the transition at slot i is slot
i + 1: frames are stored once and no next-observation copies exist. The final slot of an episode
starts no transition, so sampling never pairs an observation with another episode's. Arrays are
preallocated on the first insert from the shapes seen. When the ring is full, new episodes
overwrite the oldest slots; the surviving tail of a partly overwritten episode stays usable
(its transitions still end on its own observations).

`terminated` / `truncated` belong to the episode's last transition only: terminated is a true
end (no bootstrap), truncated a time limit (bootstrap from the final observation).

API::

    buf = ReplayBuffer(capacity: int)                  # capacity in time indices (sum of T + 1)
    buf.add_episode(observations: dict[str, (T+1, ...)], features: (T+1, F), noise: (T, H, A) | None,
                    chunks: (T, H, A), rewards: (T,), terminated: bool, truncated: bool) -> episode id
    buf.sample(batch_size, rng: np.random.Generator, num_batches: int | None = None,
               include_obs: bool = True, n_step: int = 1, gamma: float = 1.0) -> dict
        obs, next_obs (dicts), features, next_features, noise, has_noise, actions (the chunk),
        reward, bootstrap_steps, terminated, truncated, episode_id, index; leading axes (B,) or
        (num_batches, B).
    len(buf) (transitions available), buf.num_time_indices, buf.num_episodes_started,
    buf.storage_bytes() -> dict, buf.save(path), buf.load(path), ReplayBuffer.from_file(path)

n-step returns (`n_step` > 1): `reward` is sum_j gamma^j r_{t+j} over the next up-to-n transitions of
the same episode, `next_obs` / `next_features` the observation after the last of them,
`bootstrap_steps` how many were summed (the learner discounts its bootstrap by gamma to that power),
and `terminated` / `truncated` those of the last one; near an episode's end fewer are summed. With
n_step = 1 this is the plain transition (`bootstrap_steps` 1).

Sampling is uniform with replacement over available transitions and a deterministic function of
the rng and the buffer contents; `save`/`load` round-trips exactly (npz written to a temp file,
fsync'd and os.replace'd into place), so a resumed run draws the same next batch.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..storage import atomic_file

FORMAT = "dsrl_real.data.replay.v1"


class ReplayFileError(UserError, ValueError):
    """A replay buffer file that cannot be read; the message names it."""


class ReplayBuffer:
    def __init__(self, capacity: int):
        if capacity < 2:
            raise ValueError("The replay buffer needs a capacity of at least 2 time indices.")
        self.capacity = int(capacity)
        self._allocated = False
        self._ptr = 0  # next slot to write
        self._size = 0  # filled slots
        self._next_episode_id = 0
        self._valid_idx = np.zeros(0, np.int64)

    # -- allocation ---------------------------------------------------------------------------------
    def _allocate(self, obs_specs: dict[str, tuple[tuple[int, ...], np.dtype]], feature_dim: int, chunk_shape, noise_shape):
        n = self.capacity
        self._obs = {k: np.zeros((n, *shape), dtype) for k, (shape, dtype) in obs_specs.items()}
        self._features = np.zeros((n, feature_dim), np.float32)
        self._noise = np.full((n, *noise_shape), np.nan, np.float32)
        self._chunks = np.zeros((n, *chunk_shape), np.float32)
        self._reward = np.zeros(n, np.float32)
        self._terminated = np.zeros(n, bool)
        self._truncated = np.zeros(n, bool)
        self._has_noise = np.zeros(n, bool)
        self._starts = np.zeros(n, bool)  # slot starts a transition (its next obs is slot + 1)
        self._episode = np.full(n, -1, np.int64)
        self._allocated = True

    @staticmethod
    def _obs_dtype(x: np.ndarray) -> np.dtype:
        return np.dtype(np.float32) if np.issubdtype(x.dtype, np.floating) else x.dtype

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "features": self._features,
            "noise": self._noise,
            "chunks": self._chunks,
            "reward": self._reward,
            "terminated": self._terminated,
            "truncated": self._truncated,
            "has_noise": self._has_noise,
            "starts": self._starts,
            "episode": self._episode,
        }

    # -- inserting --------------------------------------------------------------------------------------
    def add_episode(
        self,
        observations: Mapping[str, np.ndarray],
        features: np.ndarray,
        noise: np.ndarray | None,
        chunks: np.ndarray,
        rewards: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> int:
        """Store one episode of T chunk steps; returns its episode id. See the module docstring."""
        rewards = np.asarray(rewards, np.float32).reshape(-1)
        T = len(rewards)
        if T < 1:
            raise ValueError("An episode needs at least one chunk step to be stored.")
        if T + 1 > self.capacity:
            raise ValueError(f"An episode of {T} chunk steps needs {T + 1} time indices, more than the buffer's capacity {self.capacity}.")
        observations = {k: np.asarray(v) for k, v in observations.items()}
        features = np.asarray(features, np.float32)
        chunks = np.asarray(chunks, np.float32)
        for name, arr, length in [*((f"observations['{k}']", v, T + 1) for k, v in observations.items()),
                                  ("features", features, T + 1), ("chunks", chunks, T)]:
            if len(arr) != length:
                raise ValueError(f"{name} has {len(arr)} entries; an episode of {T} chunk steps needs {length}.")
        if features.ndim != 2 or chunks.ndim != 3:
            raise ValueError(f"features must be (T+1, F) and chunks (T, H, A); got {features.shape} and {chunks.shape}.")
        if noise is not None:
            noise = np.asarray(noise, np.float32)
            if noise.shape != chunks.shape[:1] + noise.shape[1:] or noise.ndim != 3:
                raise ValueError(f"noise must be (T, H, A) = ({T}, H, A); got {noise.shape}.")
        if not self._allocated:
            specs = {k: (v.shape[1:], self._obs_dtype(v)) for k, v in observations.items()}
            self._allocate(specs, features.shape[1], chunks.shape[1:], noise.shape[1:] if noise is not None else chunks.shape[1:])
        self._check_shapes(observations, features, noise, chunks)

        slots = (self._ptr + np.arange(T + 1)) % self.capacity
        steps = slots[:-1]
        for k, v in observations.items():
            self._obs[k][slots] = v
        self._features[slots] = features
        self._starts[slots] = False
        self._starts[steps] = True
        self._noise[slots] = np.nan
        self._has_noise[slots] = False
        if noise is not None:
            self._noise[steps] = noise
            self._has_noise[steps] = True
        self._chunks[slots] = 0.0
        self._chunks[steps] = chunks
        self._reward[slots] = 0.0
        self._reward[steps] = rewards
        self._terminated[slots] = False
        self._truncated[slots] = False
        self._terminated[steps[-1]] = bool(terminated)
        self._truncated[steps[-1]] = bool(truncated)
        episode_id = self._next_episode_id
        self._episode[slots] = episode_id
        self._next_episode_id += 1
        self._ptr = int((self._ptr + T + 1) % self.capacity)
        self._size = min(self.capacity, self._size + T + 1)
        self._refresh()
        return episode_id

    def _check_shapes(self, observations, features, noise, chunks):
        if set(observations) != set(self._obs):
            raise ValueError(f"Observation keys {sorted(observations)} differ from the buffer's {sorted(self._obs)}.")
        for k, v in observations.items():
            if v.shape[1:] != self._obs[k].shape[1:]:
                raise ValueError(f"observations['{k}'] has per-step shape {v.shape[1:]}; the buffer stores {self._obs[k].shape[1:]}.")
        checks = [("features", features.shape[1:], self._features.shape[1:]), ("chunks", chunks.shape[1:], self._chunks.shape[1:])]
        if noise is not None:
            checks.append(("noise", noise.shape[1:], self._noise.shape[1:]))
        for name, got, want in checks:
            if got != want:
                raise ValueError(f"{name} has per-step shape {got}; the buffer stores {want}.")

    def _refresh(self):
        """Indices of usable transitions: a start slot whose next slot holds the same episode."""
        nxt = (np.arange(self.capacity) + 1) % self.capacity
        ok = self._starts & (self._episode == self._episode[nxt]) & (self._episode >= 0)
        self._valid_idx = np.flatnonzero(ok)

    # -- sampling ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(len(self._valid_idx))

    @property
    def num_time_indices(self) -> int:
        return self._size

    @property
    def num_episodes_started(self) -> int:
        return self._next_episode_id

    def storage_bytes(self) -> dict[str, int]:
        """Bytes held per stored array (observations as 'obs/<key>')."""
        if not self._allocated:
            return {}
        out = {f"obs/{k}": v.nbytes for k, v in self._obs.items()}
        out.update({k: v.nbytes for k, v in self._arrays().items()})
        return out

    def sample(self, batch_size: int, rng: np.random.Generator, num_batches: int | None = None, include_obs: bool = True,
               n_step: int = 1, gamma: float = 1.0) -> dict[str, Any]:
        if len(self) == 0:
            raise ValueError("The replay buffer holds no transitions yet; add an episode before sampling.")
        if n_step < 1:
            raise ValueError(f"n_step must be at least 1, got {n_step}.")
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        idx = self._valid_idx[rng.integers(0, len(self._valid_idx), size=shape)]
        reward, last, steps = self._n_step(idx, n_step, gamma)
        nxt = (last + 1) % self.capacity
        batch: dict[str, Any] = {
            "features": self._features[idx],
            "next_features": self._features[nxt],
            "noise": self._noise[idx],
            "has_noise": self._has_noise[idx],
            "actions": self._chunks[idx],
            "reward": reward,
            "bootstrap_steps": steps,
            "terminated": self._terminated[last],
            "truncated": self._truncated[last],
            "episode_id": self._episode[idx],
            "index": idx,
        }
        if include_obs:
            batch["obs"] = {k: v[idx] for k, v in self._obs.items()}
            batch["next_obs"] = {k: v[nxt] for k, v in self._obs.items()}
        return batch

    def _n_step(self, idx: np.ndarray, n_step: int, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For transitions at `idx`: the discounted reward sum over the next up-to-`n_step` transitions
        of the same episode, sum_j gamma^j r_{t+j} (float32), the slot of the last transition summed,
        and how many were summed (float32; the bootstrap discount is gamma to that power). The sum
        stops early at the episode's last transition, whose terminated / truncated flags then apply."""
        reward = self._reward[idx].astype(np.float32)
        last = idx.copy()
        steps = np.ones(idx.shape, np.float32)
        for j in range(1, n_step):
            after = (last + 1) % self.capacity
            more = self._starts[after] & (self._episode[after] == self._episode[idx])
            last = np.where(more, after, last)
            reward = reward + np.where(more, np.float32(gamma**j) * self._reward[after], 0.0).astype(np.float32)
            steps = steps + more
        return reward, last, steps

    # -- persistence ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the buffer to an .npz file atomically (temp file in the same folder, then os.replace)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._obs) if self._allocated else []
        meta = {
            "format": FORMAT,
            "capacity": self.capacity,
            "ptr": self._ptr,
            "size": self._size,
            "next_episode_id": self._next_episode_id,
            "allocated": self._allocated,
            "obs_keys": keys,
        }
        arrays: dict[str, np.ndarray] = {"meta": np.asarray(json.dumps(meta))}
        if self._allocated:
            n = self._size  # slots [0, size) are the filled ones (writing starts at 0)
            arrays.update({f"obs_{i}": self._obs[k][:n] for i, k in enumerate(keys)})
            arrays.update({k: v[:n] for k, v in self._arrays().items()})
            # Shapes and dtypes of the full arrays, so an empty prefix still allocates correctly.
            arrays.update({f"shape_obs_{i}": np.asarray(self._obs[k].shape[1:], np.int64) for i, k in enumerate(keys)})
            arrays.update({f"shape_{k}": np.asarray(v.shape[1:], np.int64) for k, v in self._arrays().items()})
        with atomic_file(path) as f:
            np.savez(f, **arrays)
        return path

    def load(self, path: str | Path) -> None:
        """Replace this buffer's contents with the file's (its capacity included); a file that cannot
        be read (truncated, corrupt, not a buffer) raises `ReplayFileError` and changes nothing."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No replay buffer file at '{path}'; check the path or start with an empty buffer.")
        fresh = type(self)(2)
        try:
            fresh._read(path)
        except ReplayFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, TypeError, ValueError, OSError) as err:
            raise ReplayFileError(f"The replay buffer file '{path}' is truncated or corrupt ({type(err).__name__}); "
                                  "restore it from a copy.") from err
        self.__dict__.update(fresh.__dict__)

    def _read(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise ReplayFileError(f"'{path}' is not a dsrl_real replay buffer (format {found!r}).")
            self.capacity = int(meta["capacity"])
            self._ptr, self._size = int(meta["ptr"]), int(meta["size"])
            self._next_episode_id = int(meta["next_episode_id"])
            self._allocated = False
            if meta["allocated"]:
                keys = meta["obs_keys"]
                specs = {k: (tuple(data[f"shape_obs_{i}"]), data[f"obs_{i}"].dtype) for i, k in enumerate(keys)}
                self._allocate(specs, int(data["shape_features"][0]), tuple(data["shape_chunks"]), tuple(data["shape_noise"]))
                n = self._size
                for i, k in enumerate(keys):
                    self._obs[k][:n] = data[f"obs_{i}"]
                for k, v in self._arrays().items():
                    v[:n] = data[k]
        if self._allocated:
            self._refresh()
        else:
            self._valid_idx = np.zeros(0, np.int64)

    @classmethod
    def from_file(cls, path: str | Path) -> "ReplayBuffer":
        buf = cls(2)
        buf.load(path)
        return buf
