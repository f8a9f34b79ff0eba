"""The agent's input features of an observation."""

from __future__ import annotations

import numpy as np

from ..config import ConfigError
from ..envs.robot_env import RobotEnv
from ..policies import BasePolicy


class FeatureFn:
    """Agent features: the float vector observations, plus the base policy's frozen embedding
    (policy_embedding) or, with agent.features=observation and cameras, the camera frames that the
    agent's own image encoder reads (`image_keys`: `image_keys` given, else every uint8 image key)."""

    def __init__(self, policy: BasePolicy, env: RobotEnv, mode: str, image_keys: list[str] | tuple[str, ...] = ()):
        if mode not in ("policy_embedding", "observation"):
            raise ConfigError(f"Unknown agent.features '{mode}'; choose policy_embedding or observation.")
        spaces = env.observation_space.spaces
        self.vector_keys = [k for k, s in spaces.items() if s.dtype == np.float32]
        cameras = [k for k, s in spaces.items() if s.dtype == np.uint8 and len(s.shape) == 3]
        self.image_keys: list[str] = []
        if mode == "observation":
            unknown = [k for k in image_keys if k not in cameras]
            if unknown:
                raise ConfigError(f"agent.encoder_image_keys {unknown} are not camera observations; use some of: {', '.join(cameras)}.")
            self.image_keys = list(image_keys) or cameras
            other = [k for k in spaces if k not in self.vector_keys and k not in cameras]
            if other:
                raise ConfigError(f"agent.features=observation reads float vectors and uint8 camera frames; {other} are neither.")
        self.policy, self.use_embedding = policy, mode == "policy_embedding"

    def __call__(self, obs_batch: dict[str, np.ndarray]) -> np.ndarray:
        parts = [np.asarray(obs_batch[k], np.float32) for k in self.vector_keys]
        if self.use_embedding:
            parts.append(np.asarray(self.policy.embed(obs_batch), np.float32))
        return np.concatenate(parts, axis=-1)

    def agent_input(self, features: np.ndarray, obs_batch: dict[str, np.ndarray]):
        """What `choose_noise` gets for one observation: the feature vector, or with the agent's own
        encoder {"features": vector, "images": {key: uint8 frame}} (`DSRLAgent.act` takes either)."""
        if not self.image_keys:
            return features
        return {"features": features, "images": {k: obs_batch[k][0] for k in self.image_keys}}
