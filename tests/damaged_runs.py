"""A small recorded sim run with a camera, human labels and a shadow backend, and the damage `report` and
`audit` must name: one episode's parquet table deleted, another's mp4 overwritten with garbage."""

from pathlib import Path

import numpy as np

from dsrl_real.envs.make import make_sim_env
from dsrl_real.recording import RunRecorder
from dsrl_real.rewards.base import EpisodeClip, SimTruthBackend
from dsrl_real.rollout import random_policy, scripted_expert
from dsrl_real.rollout.record import record_episode

EPISODES = 4
TABLE = "data/chunk-000/file-001.parquet"
VIDEO = "videos/observation.images.wrist/chunk-000/file-002.mp4"
PROBLEMS = [
    f"'{TABLE}' is missing; restore it from a copy of the run.",
    f"'{VIDEO}' is unreadable (InvalidDataError); restore it from a copy of the run.",
]


def human(clip: EpisodeClip) -> dict:
    final = clip.truth[-1]
    return {"score": int(np.rint(1 + 4 * final.progress)), "success": bool(final.success), "reward": float(final.success)}


def record_damaged_run(run_dir: Path) -> Path:
    env = make_sim_env(task="drawer", cameras=("wrist",), image_size=16, seed=0, max_steps=8)
    with RunRecorder(run_dir, ["wrist"], env.control_hz) as rec:
        for seed in range(EPISODES):
            act = scripted_expert(env, 0.3, seed=seed) if seed % 2 == 0 else random_policy(env, seed=seed)
            record_episode(env, act, rec, kind="baseline", seed=seed, backends=[SimTruthBackend()], human=human)
    env.close()
    (run_dir / TABLE).unlink()
    (run_dir / VIDEO).write_bytes(b"not an mp4 any more" * 100)
    return run_dir


def flat(text: str) -> str:
    """Console output with its line wrapping undone."""
    return " ".join(text.split())
