"""`dsrl-real bench detector`: the success detector and stage tracker on recorded simulated episodes."""

from __future__ import annotations

import numpy as np

from ..config import load_config
from ..envs.make import build_env
from ..rewards.base import EpisodeClip, ProgressScore
from ..rewards.detection import StageTracker, SuccessDetector
from ..rewards.registry import build_reward_backend
from ..rollout import scripted_expert


class _NoisyProgress:
    """Bench-only stand-in for a learned progress/success model: it sees 1 on success and 0.8 x the
    simulator's progress for the asked stage otherwise, plus Gaussian noise; its success probability
    is a steep sigmoid of that around `centre`. Nearly finished failures then sometimes look
    successful, as they do to reward models."""

    def __init__(self, inner, noise: float, seed: int, centre: float = 0.9, width: float = 0.05):
        self.inner, self.noise, self.centre, self.width = inner, noise, centre, width
        self.rng = np.random.default_rng(seed)
        self.name, self.offers = "noisy_sim_truth", inner.offers

    def score_prefix(self, clip):
        truth = self.inner.score_prefix(clip)
        seen = 1.0 if truth.success_prob >= 1 else 0.8 * float(truth.progress[-1])
        seen += self.rng.normal(0.0, self.noise)
        return ProgressScore(truth.progress, float(1 / (1 + np.exp(-(seen - self.centre) / self.width))))


def bench_detector(episodes: int = 60, expert_noise: float = 0.5, noise: float = 0.1, windows: tuple[int, ...] = (1, 3, 5)) -> dict:
    """The success detector and stage tracker on recorded simulated episodes (monkey task, 2 stages;
    the scripted expert with heavy noise, so many episodes fail near the goal): how often a failed
    episode is wrongly detected as a success (false triggers), and how often and how late successes
    are detected, per majority window, for simulator truth and for a noisy stand-in of a learned model."""
    cfg = load_config(overrides=["cameras=[]", "policy.image_keys=[]"])  # no frames to render: the detector reads the sim's truth
    env = build_env(cfg)
    env.terminate_on_success = False
    truth_backend = build_reward_backend(cfg)
    recorded = []
    for i in range(episodes):
        act = scripted_expert(env, expert_noise, seed=i)
        obs, info = env.reset(seed=i)
        truth, done = [info["task_status"]], False
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            truth.append(info["task_status"])
            done = terminated or truncated
        recorded.append(truth)

    def replay(backend, window: int) -> dict:
        on_failed = early = failed = detected = succeeded = 0
        delays = []
        for truth in recorded:
            tracker = StageTracker(env.task.stages, SuccessDetector(0.6, window))
            first_success = next((t for t, s in enumerate(truth) if s.success), None)
            for t in range(1, len(truth)):
                clip = EpisodeClip({}, tracker.instruction, env.control_hz, tuple(truth[tracker.stage_start:t + 1]))
                change = tracker.report(tracker.stage, backend.score_prefix(clip).success_prob, t)
                if change is not None and change.done:
                    on_failed += first_success is None
                    early += first_success is not None and not truth[t].success
                    detected += truth[t].success
                    if truth[t].success and first_success is not None:
                        delays.append(t - first_success)
                    break
            failed += first_success is None
            succeeded += first_success is not None
        return {"false_trigger_rate_on_failed": round(on_failed / max(failed, 1), 3), "false_triggers_on_failed": on_failed,
                "early_trigger_rate_on_successful": round(early / max(succeeded, 1), 3),
                "detection_rate_on_successful": round(detected / max(succeeded, 1), 3),
                "mean_detection_delay_steps": round(float(np.mean(delays)), 2) if delays else None}

    result: dict = {"episodes": episodes, "task": env.task.name, "stages": len(env.task.stages), "threshold": 0.6,
                    "expert_noise": expert_noise, "noisy_model_noise": noise,
                    "successful_episodes": sum(any(s.success for s in t) for t in recorded)}
    result["failed_episodes"] = episodes - result["successful_episodes"]
    for window in windows:
        result[f"window_{window}"] = {"sim_truth": replay(truth_backend, window),
                                      "noisy_model": replay(_NoisyProgress(truth_backend, noise, seed=window), window)}
    return result
