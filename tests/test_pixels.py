"""DSRL from pixels, end to end with tiny sizes: both features modes (the base policy's frozen embedding of the camera
frames, or the agent's own encoder of them) with both algorithms. The frames are stored once per time index, as uint8."""

import jax
import numpy as np
import pytest

from dsrl_real.config import PolicyConfig, load_config
from dsrl_real.train.trainer import DSRLTrainer

CAMERA = "cameras=[{name: third_person, width: 16, height: 16}]"
KEYS = "policy.image_keys=[third_person_image]"
FAST = ["train.wandb=disabled", "train.record=false", "train.eval_episodes=1", "train.eval_every_steps=100000",
        "train.warm_start_episodes=1", "task.max_steps=12", "train.env_steps=24", "train.buffer_capacity=64",
        "agent.hidden_dim=16", "agent.num_layers=1", "agent.num_critics=2", "agent.batch_size=8", "agent.utd=2",
        "agent.encoder_channels=[4, 8]", "agent.encoder_dim=8", "agent.na_distill_steps=2", CAMERA, KEYS]
FRAME = (16, 16, 3)


def pixel_policy(env):
    """A tiny diffusion policy that reads the camera frames (and the proprio and object-state vectors)."""
    from dsrl_real.policies.diffusion import DiffusionPolicy, Normalization, init_params

    cfg = PolicyConfig(hidden_dim=16, embed_dim=8, inference_steps=2, conv_channels=[4], image_keys=["third_person_image"])
    low, high = env.action_space.low, env.action_space.high
    obs = {k: np.zeros((1, *s.shape), s.dtype) for k, s in env.observation_space.spaces.items()}
    norm = Normalization.fit({k: obs[k].astype(np.float32) for k in cfg.vector_keys}, np.stack([low, high]), low, high)
    shell = DiffusionPolicy(cfg, 7, norm, None)
    return DiffusionPolicy(cfg, 7, norm, init_params(cfg, 7, shell.prepare(obs), jax.random.PRNGKey(0)))


@pytest.mark.parametrize("features, algorithm, frames_stored", [
    ("policy_embedding", "dsrl_sac", False),  # the embedding of the frames is stored as features; nobody reads frames later
    ("policy_embedding", "dsrl_na", True),  # NA denoises sampled observations again: the policy's frames stay
    ("observation", "dsrl_sac", True),  # the agent's own encoder reads the stored frames
    ("observation", "dsrl_na", True),
])
def test_dsrl_trains_from_pixels_with_frames_stored_once_as_uint8(tmp_path, features, algorithm, frames_stored):
    from dsrl_real.envs.make import make_sim_env

    policy = pixel_policy(make_sim_env(cameras=("third_person",), image_size=16, seed=0))
    cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path}", f"agent.features={features}", f"agent.algorithm={algorithm}"])
    trainer = DSRLTrainer(cfg, policy=policy)
    try:
        result = trainer.run()
        # 2 episodes of 3 chunk steps; from the warm start on, one update of utd 2 steps per chunk step
        assert result["episodes"] == 2 and trainer.agent.step == 2 * 3 * 2
        assert trainer.agent.obs_dim == 7 + (8 if features == "policy_embedding" else 0)
        assert trainer.agent.image_shapes == ({"third_person_image": FRAME} if features == "observation" else {})
        buf = trainer.buffer
        stored = buf.storage_bytes()
        assert sorted(k for k in stored if k.startswith("obs/")) == sorted(
            ["obs/proprio", *(["obs/third_person_image"] if frames_stored else [])])
        assert not any("next" in k for k in stored)  # next observations are the following slots, never copies
        if frames_stored:
            assert stored["obs/third_person_image"] == 64 * 16 * 16 * 3  # one uint8 frame per time index of the capacity
            batch = buf.sample(8, np.random.default_rng(0))
            frames = buf.columns()["obs/third_person_image"]
            assert frames.dtype == np.uint8 and batch["obs"]["third_person_image"].dtype == np.uint8
            np.testing.assert_array_equal(batch["next_obs"]["third_person_image"], frames[batch["index"] + 1])
            # The checkpoint's segment holds each time index's frame once: 2 episodes of 3 chunk steps, 4 time indices each.
            replay = tmp_path / "checkpoints" / "episode_000002" / "replay"
            with np.load(next(replay.glob("segment_*.npz"))) as segment:
                images = [segment[f"c{i}"] for i, name in enumerate(buf.columns()) if name == "obs/third_person_image"]
            assert len(images) == 1 and images[0].dtype == np.uint8 and images[0].shape == (8, *FRAME)
            np.testing.assert_array_equal(images[0], frames[:8])
    finally:
        trainer.close()
