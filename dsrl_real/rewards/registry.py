"""Builds the reward backend a config names. The model backends import torch and transformers only when
they load a model, so only those need them."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..config import Config, ConfigError
from ..tasks import task_spec
from .base import EpisodeClip, EpisodeScore, ProgressScore, RewardBackend, SimTruthBackend
from .http import OpenAIVideoQA
from .human_verifier import KeyboardVerifier, SimulatedHumanVerifier
from .keyboard import KeyboardOracle
from .noisy import NoisyBackend
from .robometer import RobometerBackend
from .roboreward import RoboRewardBackend, TransformersVideoQA
from .simulated_human import SimulatedHuman
from .stand_in import SimRewardModelBackend, StandInParams
from .verify import VERIFY_MODES, Verifier

BACKENDS = ("sim_truth", "roboreward", "robometer", "human", "sim_human", "sim_truth_noisy", "sim_reward_model")
SIM_TRUTH_BACKENDS = ("sim_truth", "sim_human", "sim_truth_noisy", "sim_reward_model")  # they label from simulator truth
HUMAN_SCALES = ("binary", "1-5")


@dataclass
class StagedSimTruthBackend(SimTruthBackend):
    """Simulator truth that also answers for one stage of a multi-stage task: a clip whose
    instruction is the k-th stage's gets that stage's progress and success (1 once the simulator
    has moved past it), like a reward model asked about that stage's instruction."""

    stages: tuple[str, ...] = ()

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        if clip.instruction not in self.stages:
            return super().score_prefix(clip)
        k = self.stages.index(clip.instruction)
        truth = self._truth(clip)
        progress = [1.0 if s.stage > k else s.stage_progress if s.stage == k else 0.0 for s in truth]
        return ProgressScore(np.array(progress, np.float32), float(truth[-1].stage_success[k]))


class SimulatedHumanOracle:
    """The keyboard oracle with a simulated person typing into its terminal (a pseudo-terminal), so
    the human path runs unattended: `observe` shows the person the simulator's state every step (they
    press s on success), and before the end-of-episode label is read they answer its prompt."""

    name = "sim_human"

    def __init__(self, scale: str = "binary", seed: int = 0, mislabel_prob: float = 0.0):
        self._output = open(os.devnull, "w")  # noqa: SIM115 - the oracle's prompts; closed in close()
        self.oracle, self.human = SimulatedHuman.with_oracle(scale, seed, output=self._output, mislabel_prob=mislabel_prob)
        self.offers = self.oracle.offers
        self._last = None  # the latest state the person saw, while the episode is not yet labelled

    def start_episode(self, instruction: str) -> None:
        if self._last is not None:  # an unlabelled episode (an evaluation): the person moves on; the oracle drops the key
            self.human.answer_prompt(self._last)
        self._last = None
        self.oracle.start_episode(instruction)

    def observe(self, status) -> None:
        self._last = status
        self.human.observe(status)

    def poll(self):
        return self.oracle.poll()

    def score_episode(self, clip: EpisodeClip) -> EpisodeScore:
        final = clip.truth[-1] if clip.truth else self._last
        if final is None:
            raise ValueError("The simulated human needs simulator ground truth to label an episode; use it with robot.kind=sim.")
        self.human.answer_prompt(final)
        self._last = None
        return self.oracle.score_episode(clip)

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        return self.oracle.score_prefix(clip)

    def close(self) -> None:
        self.oracle.close()
        self.human.close()
        self._output.close()


def build_reward_backend(cfg: Config, *, name: str | None = None) -> RewardBackend:
    """The backend `name` (default: cfg.reward.backend) with the settings in cfg.reward."""
    r = cfg.reward
    name = name or r.backend
    camera = r.camera or (cfg.cameras[0].name if cfg.cameras else None)
    if name == "sim_truth":
        return StagedSimTruthBackend(stages=task_spec(cfg).stages)
    if name == "sim_truth_noisy":  # the simulator's truth with injected label noise: a stand-in for a flawed reward model
        try:
            return NoisyBackend(SimTruthBackend(), false_positive_rate=r.noisy_false_positive_rate,
                                false_negative_rate=r.noisy_false_negative_rate, score_error_rate=r.noisy_score_error_rate,
                                seed=cfg.run.seed)
        except ValueError as err:
            raise ConfigError(f"Bad reward.noisy_* setting: {str(err).replace('NoisyBackend ', 'reward.noisy_')}") from err
    if name == "sim_reward_model":  # a flawed reward model's stand-in: false positives cluster on near misses
        try:
            return SimRewardModelBackend(StandInParams.from_config(r), seed=cfg.run.seed)
        except ConfigError:
            raise
        except ValueError as err:  # a config built in code, past check_config
            raise ConfigError(f"Bad reward.stand_in_* setting: {err}") from err
    if name == "roboreward":
        if not r.model:
            raise ConfigError("reward.backend=roboreward needs reward.model: a checkpoint folder or hub id such as "
                              "teetone/RoboReward-8B (with reward.server_url: the model name the server serves).")
        if not 1 <= r.success_score <= 5:
            raise ConfigError(f"reward.success_score is a RoboReward score from 1 to 5, got {r.success_score}.")
        if r.server_url:
            try:
                transport = OpenAIVideoQA(r.server_url, r.model, timeout_s=r.server_timeout_s, retries=r.server_retries,
                                          api_key=os.environ.get(r.server_api_key_env) if r.server_api_key_env else None)
            except ValueError as err:
                raise ConfigError(f"Bad reward.server_timeout_s / reward.server_retries: {err}") from err
        else:
            transport = TransformersVideoQA(r.model, device=r.device)
        return RoboRewardBackend(transport, num_frames=r.num_frames or 16, success_score=r.success_score, camera=camera)
    if name == "robometer":
        if not r.model:
            raise ConfigError("reward.backend=robometer needs reward.model: a checkpoint folder or hub id such as robometer/Robometer-4B.")
        if r.server_url:
            raise ConfigError("The robometer backend runs its model in this process; leave reward.server_url empty.")
        if not 0.0 <= r.success_threshold <= 1.0:
            raise ConfigError(f"reward.success_threshold is a probability from 0 to 1, got {r.success_threshold}.")
        return RobometerBackend.from_pretrained(r.model, device=r.device, num_frames=r.num_frames or 8, camera=camera,
                                                success_threshold=r.success_threshold, base_model=r.base_model or None)
    if name in ("human", "sim_human"):
        if r.human_scale not in HUMAN_SCALES:
            raise ConfigError(f"Unknown reward.human_scale '{r.human_scale}'; choose one of: {', '.join(HUMAN_SCALES)}.")
        if name == "sim_human":
            return SimulatedHumanOracle(scale=r.human_scale, seed=cfg.run.seed)
        return KeyboardOracle(scale=r.human_scale)
    raise ConfigError(f"Unknown reward.backend '{name}'; choose one of: {', '.join(BACKENDS)}.")


def build_verifier(cfg: Config) -> Verifier | None:
    """Who confirms the backend's claimed successes (reward.verify; verify.py), or None for nobody."""
    mode = cfg.reward.verify
    if mode == "none":
        return None
    if mode == "sim_human":
        return SimulatedHumanVerifier(seed=cfg.run.seed)
    if mode == "human":
        return KeyboardVerifier()
    raise ConfigError(f"Unknown reward.verify '{mode}'; choose one of: {', '.join(VERIFY_MODES)}.")
