"""Success detection and stage tracking on a backend's prefix scores.

Reward models over-report success on single frames, so a prefix only *votes* success when its
success probability reaches the threshold, and success is declared when most of the last few votes
agree (Robometer's RL code: threshold 0.6-0.65 and a short majority window). A multi-stage task
advances to its next instruction on detected success, and the backend is then shown only the frames
since that stage began.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


class SuccessDetector:
    """Success when more than half of the last `window` scores reach `threshold`."""

    def __init__(self, threshold: float = 0.6, window: int = 3):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"The success threshold must be in (0, 1], got {threshold}.")
        if window < 1:
            raise ValueError(f"The success window must be at least 1 score, got {window}.")
        self.threshold, self.window = threshold, window
        self._votes: deque[bool] = deque(maxlen=window)
        self.detected = False

    def reset(self) -> None:
        self._votes.clear()
        self.detected = False

    def update(self, success_prob: float) -> bool:
        """Add one score; True once success is detected (it stays detected until `reset`)."""
        self._votes.append(float(success_prob) >= self.threshold)
        self.detected = self.detected or sum(self._votes) > self.window / 2
        return self.detected


@dataclass(frozen=True)
class StageChange:
    stage: int  # the stage that succeeded
    frame: int  # the frame at which its success was seen; the next stage begins there
    done: bool  # True if it was the last stage


class StageTracker:
    """Which stage an episode is in, where that stage began, and whether it ran out of steps.

    Frames are counted from the reset observation (frame 0); after env step t the newest frame is t.
    `step_limits` (one per stage, or empty for none) bound the env steps a stage may take.
    """

    def __init__(self, stages: Sequence[str], detector: SuccessDetector | None = None, step_limits: Sequence[int] = ()):
        if not stages:
            raise ValueError("A stage tracker needs at least one stage instruction.")
        if step_limits and len(step_limits) != len(stages):
            raise ValueError(f"Give one step limit per stage ({len(stages)}: {list(stages)}), got {list(step_limits)}.")
        if any(limit < 1 for limit in step_limits):
            raise ValueError(f"Stage step limits must be at least 1, got {list(step_limits)}.")
        self.stages = tuple(stages)
        self.detector = detector or SuccessDetector()
        self.step_limits = tuple(step_limits)
        self.reset()

    def reset(self) -> None:
        self.stage = 0
        self.starts = [0]  # the frame at which each reached stage began
        self.done = False
        self.detector.reset()

    @property
    def stage_start(self) -> int:
        return self.starts[-1]

    @property
    def instruction(self) -> str:
        return self.stages[min(self.stage, len(self.stages) - 1)]

    def visible(self, newest_frame: int) -> slice:
        """The frames the backend may see now: those since the current stage began."""
        return slice(self.stage_start, newest_frame + 1)

    def report(self, stage: int, success_prob: float, frame: int) -> StageChange | None:
        """Feed the score of a prefix of `stage` ending at `frame`. A score for a stage that is no
        longer current (it arrived after the stage changed) is ignored."""
        if self.done or stage != self.stage or frame < self.stage_start:
            return None
        if not self.detector.update(success_prob):
            return None
        change = StageChange(stage=self.stage, frame=frame, done=self.stage == len(self.stages) - 1)
        if change.done:
            self.done = True
        else:
            self.stage += 1
            self.starts.append(frame)
            self.detector.reset()
        return change

    def out_of_steps(self, step: int) -> bool:
        """True once the current stage has used its step limit by env step `step`."""
        return bool(self.step_limits) and not self.done and step - self.stage_start >= self.step_limits[self.stage]

    def segments(self, last_frame: int) -> list[tuple[int, str, int, int]]:
        """(stage, instruction, first frame, last frame) of every stage reached, up to `last_frame`."""
        return stage_segments(self.stages, self.starts, last_frame)


def stage_segments(stages: Sequence[str], starts: Sequence[int], last_frame: int) -> list[tuple[int, str, int, int]]:
    """(stage, instruction, first frame, last frame) per reached stage; a stage ends where the next began."""
    bounds = [*starts, last_frame]
    return [(k, stages[k], bounds[k], max(bounds[k], bounds[k + 1])) for k in range(len(starts))]
