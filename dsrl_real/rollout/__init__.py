"""Running episodes: the one episode loop (`loop`), its hooks (`hooks`; the recorder's in `record`),
the policies it runs (`policies`), evaluation (`evaluate`) and scripted demos (`demos`)."""

from .evaluate import EVAL_SEED, evaluate, rate, success_summary, wilson_interval
from .hooks import FrameClip, RewardMonitor, Transitions
from .loop import ActionFn, EpisodeHook, EpisodeResult, Step, reset, run_episode
from .policies import ChunkPlayback, gaussian_noise, random_policy, scripted_expert
from .record import StepRows, record_episode

__all__ = [
    "EVAL_SEED", "ActionFn", "ChunkPlayback", "EpisodeHook", "EpisodeResult", "FrameClip", "RewardMonitor", "Step",
    "StepRows", "Transitions", "evaluate", "gaussian_noise", "random_policy", "rate", "record_episode", "reset", "run_episode", "scripted_expert",
    "success_summary", "wilson_interval",
]
