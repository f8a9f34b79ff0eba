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
starts no transition, so sampling never pairs an observation with another episode's. Storage for
`capacity` slots is reserved on the first insert from the shapes seen, as zero-filled arrays whose
memory the operating system commits only as slots are written, so memory grows as the buffer fills.
When the ring is full, new episodes
overwrite the oldest slots; the surviving tail of a partly overwritten episode stays usable
(its transitions still end on its own observations).

`terminated` / `truncated` belong to the episode's last transition only: terminated is a true
end (no bootstrap), truncated a time limit (bootstrap from the final observation).

API::

    buf = ReplayBuffer(capacity: int, segment_slots=SEGMENT_SLOTS)  # capacity in time indices (sum of T + 1)
    buf.add_episode(observations: dict[str, (T+1, ...)], features: (T+1, F), noise: (T, H, A) | None,
                    chunks: (T, H, A), rewards: (T,), terminated: bool, truncated: bool) -> episode id
    buf.sample(batch_size, rng: np.random.Generator, num_batches: int | None = None,
               include_obs: bool = True, n_step: int = 1, gamma: float = 1.0) -> dict
        obs, next_obs (dicts), features, next_features, noise, has_noise, actions (the chunk),
        reward, bootstrap_steps, terminated, truncated, episode_id, index; leading axes (B,) or
        (num_batches, B).
    len(buf) (transitions available), buf.num_time_indices, buf.num_episodes_started,
    buf.storage_bytes() -> dict, buf.take(other); on disk: data/replay_files.py's save(buf, folder) and load(path)

n-step returns (`n_step` > 1): `reward` is sum_j gamma^j r_{t+j} over the next up-to-n transitions of
the same episode, `next_obs` / `next_features` the observation after the last of them,
`bootstrap_steps` how many were summed (the learner discounts its bootstrap by gamma to that power),
and `terminated` / `truncated` those of the last one; near an episode's end fewer are summed. With
n_step = 1 this is the plain transition (`bootstrap_steps` 1).

Sampling is uniform with replacement over available transitions and a deterministic function of
the rng and the buffer contents; saving and loading (data/replay_files.py) round-trips exactly, so
a resumed run draws the same next batch. On disk the buffer is a folder of segments, `segment_slots` time indices each
(data/replay_segments.py): a checkpoint rewrites only the segments written since the previous one and
hard-links the rest; the single replay.npz of earlier checkpoints still loads (data/replay_npz.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import UserError

SEGMENT_SLOTS = 512  # time indices per segment file: 12.6 MB with two 64x64 RGB cameras


class ReplayFileError(UserError, ValueError):
    """A replay buffer file that cannot be read; the message names it."""


class ReplayBuffer:
    def __init__(self, capacity: int, segment_slots: int = SEGMENT_SLOTS):
        if capacity < 2:
            raise ValueError("The replay buffer needs a capacity of at least 2 time indices.")
        if segment_slots < 1:
            raise ValueError(f"segment_slots must be at least 1, got {segment_slots}.")
        self.capacity = int(capacity)
        self.segment_slots = int(segment_slots)
        self._allocated = False
        self._ptr = 0  # next slot to write
        self._size = 0  # filled slots
        self._next_episode_id = 0
        self._written = 0  # slots ever written
        self._seg_gen = np.zeros(-(-self.capacity // self.segment_slots), np.int64)  # see segments()
        self._valid_idx = np.zeros(0, np.int64)

    # -- allocation ---------------------------------------------------------------------------------
    def _allocate(self, obs_specs: dict[str, tuple[tuple[int, ...], np.dtype]], feature_dim: int, chunk_shape, noise_shape):
        n = self.capacity
        self._obs = {k: np.zeros((n, *shape), dtype) for k, (shape, dtype) in obs_specs.items()}
        self._features = np.zeros((n, feature_dim), np.float32)
        self._noise = np.zeros((n, *noise_shape), np.float32)  # NaN where written without noise (add_episode)
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
            self._has_noise[steps] = np.isfinite(noise).all(axis=(1, 2))  # a NaN row carries no noise (seeding.fill_noise)
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
        self._written += T + 1
        self._seg_gen[np.unique(slots // self.segment_slots)] = self._written
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
    def layout(self) -> dict[str, Any]:
        """The buffer's bookkeeping as plain values (its files' formats store it): capacity, ring pointer,
        filled slots, episode ids, slots ever written, segment size and each column's per-slot shape and dtype."""
        columns = {k: {"shape": list(v.shape[1:]), "dtype": v.dtype.str} for k, v in self.columns().items()}
        return {"capacity": self.capacity, "ptr": self._ptr, "size": self._size, "next_episode_id": self._next_episode_id,
                "written": self._written, "segment_slots": self.segment_slots, "columns": columns}

    def columns(self) -> dict[str, np.ndarray]:
        """Every stored array by name, observations as 'obs/<key>' (the live storage; empty before the first episode)."""
        if not self._allocated:
            return {}
        return {**{f"obs/{k}": v for k, v in sorted(self._obs.items())}, **self._arrays()}

    def segments(self) -> list[tuple[int, int, int]]:
        """The filled segments: (first slot, filled slots, generation). A segment is `segment_slots` consecutive
        slots; its generation is the count of slots ever written when a write last touched it, so two
        segments of one run with the same index and generation hold the same contents."""
        S = self.segment_slots
        return [(k * S, min(S, self._size - k * S), int(self._seg_gen[k])) for k in range(-(-self._size // S))]

    def adopt(self, layout: dict[str, Any], fill: Callable[[dict[str, np.ndarray]], None],
              generations: list[int] | None = None) -> None:
        """Take `layout` (as `layout()` gives it), storage allocated for its columns, which `fill(columns)`
        fills (the filled slots, by column name). `generations`: the segments' (default: all `written`).
        A column the layout names wrongly raises ValueError."""
        self.capacity, self.segment_slots = int(layout["capacity"]), int(layout["segment_slots"])
        self._ptr, self._size = int(layout["ptr"]), int(layout["size"])
        self._next_episode_id, self._written = int(layout["next_episode_id"]), int(layout["written"])
        self._seg_gen = np.zeros(-(-self.capacity // self.segment_slots), np.int64)
        self._allocated = False
        specs = {name: (tuple(int(n) for n in c["shape"]), np.dtype(c["dtype"])) for name, c in layout["columns"].items()}
        self._valid_idx = np.zeros(0, np.int64)
        if not specs:
            return
        self._allocate({k[len("obs/"):]: spec for k, spec in specs.items() if k.startswith("obs/")}, specs["features"][0][0],
                       specs["chunks"][0], specs["noise"][0])
        filled = -(-self._size // self.segment_slots)
        self._seg_gen[:filled] = generations if generations is not None else self._written
        columns = self.columns()
        if set(columns) != set(specs):
            raise ValueError(f"the columns {sorted(specs)} are not those a replay buffer stores ({sorted(columns)})")
        for name, (shape, dtype) in specs.items():
            if name not in columns or columns[name].dtype != dtype or columns[name].shape[1:] != shape:
                raise ValueError(f"the column '{name}' ({shape}, {dtype}) is not one a replay buffer stores")
        fill(columns)
        self._refresh()

    def take(self, other: "ReplayBuffer") -> None:
        """Replace this buffer's contents (its capacity included) with `other`'s, e.g. a buffer loaded from a
        checkpoint (data/replay_files.py), keeping this object."""
        self.__dict__.update(other.__dict__)
