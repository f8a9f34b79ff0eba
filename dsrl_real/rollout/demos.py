"""Scripted-expert demonstrations recorded in simulation."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, ConfigError
from ..data.episodes import save_episode
from ..envs.make import build_env
from ..recording import RunRecorder, is_recording
from ..run_folder import TRAINING_FILES, present
from .hooks import Transitions
from .loop import run_episode
from .policies import scripted_expert
from .record import record_episode

DEMO_FORMATS = ("lerobot", "npz")


def _check_format_of_folder(folder: Path, demo_format: str) -> None:
    """Demos go on in the format a folder already holds: pretraining reads a folder's recording, or
    else its .npz files, never both, so a mixed folder would hide one kind."""
    npz = folder.is_dir() and any(folder.glob("episode_*.npz"))
    if demo_format == "lerobot" and npz:
        raise ConfigError(f"demos.out_dir '{folder}' holds .npz demos; add to them with demos.format=npz, or choose another "
                          "demos.out_dir for a LeRobot recording.")
    if demo_format == "npz" and is_recording(folder):
        raise ConfigError(f"demos.out_dir '{folder}' holds a LeRobot recording; add to it with demos.format=lerobot, or choose "
                          "another demos.out_dir for .npz demos.")


def collect_demos(cfg: Config, progress=None) -> list[Path]:
    """Record `demos.episodes` expert episodes (seeds from `run.seed`) into `demos.out_dir`; returns
    the file of each kept demo (with `demos.format=lerobot`: its parquet table)."""
    if cfg.demos.format not in DEMO_FORMATS:
        raise ConfigError(f"Unknown demos.format '{cfg.demos.format}'; choose one of: {', '.join(DEMO_FORMATS)}.")
    held = present(cfg.demos.out_dir, TRAINING_FILES)  # its recording files are what a LeRobot demo folder holds too
    if held:
        raise ConfigError(f"demos.out_dir '{cfg.demos.out_dir}' holds a training run ({', '.join(held)}); demonstrations "
                          "go into a folder of their own: choose another demos.out_dir.")
    _check_format_of_folder(Path(cfg.demos.out_dir), cfg.demos.format)
    env = build_env(cfg)
    act = scripted_expert(env, cfg.demos.expert_noise, seed=cfg.run.seed)
    task = progress.add_task("collecting demos", total=cfg.demos.episodes) if progress else None
    recorder = None
    if cfg.demos.format == "lerobot":
        recorder = RunRecorder(cfg.demos.out_dir, [cam.name for cam in env.cameras], env.control_hz,
                               {"robot_type": cfg.robot.robot_model, "task": env.task.name, "source": "scripted_expert",
                                "expert_noise": cfg.demos.expert_noise, "successful_only": cfg.demos.successful_only})
    paths, seed = [], cfg.run.seed
    try:
        while len(paths) < cfg.demos.episodes:
            if recorder is not None:
                record = record_episode(env, act, recorder, kind="demo", seed=seed)  # failed attempts are kept too
                success, path = record["success"], recorder.layout.data_path(record["episode_index"])
            else:
                transitions = Transitions()
                success, path = run_episode(env, act, seed=seed, hooks=[transitions]).success, None
                if success or not cfg.demos.successful_only:
                    path = save_episode(cfg.demos.out_dir, transitions.episode)
            seed += 1
            if success or not cfg.demos.successful_only:
                paths.append(path)
                if progress:
                    progress.update(task, advance=1)
    finally:
        if recorder is not None:
            recorder.close()
        env.close()
    return paths
