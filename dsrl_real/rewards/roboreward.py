"""RoboReward (teetone/RoboReward-4B, -8B): a Qwen3-VL fine-tune that watches a rollout video and answers an
end-of-episode progress score from 1 (no success) to 5 (perfect completion).

The backend talks to the model through a `VideoQuestion` transport: `TransformersVideoQA` runs the checkpoint
in this process; rewards/http.py asks an OpenAI-compatible server instead.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol, runtime_checkable

import numpy as np

from .base import EPISODE_SCORE, SUCCESS, EpisodeClip, EpisodeScore, ProgressScore
from .frames import camera_frames, subsample
from .hf_loading import default_dtype, first_line, import_torch, import_transformers, resolve_checkpoint, resolve_device

logger = logging.getLogger(__name__)

# Upstream's evaluation of RoboReward (class RoboReward in github.com/aliang8/reward_fm, rfm/evals/baselines/
# roboreward.py, the Robometer authors' baseline) generates up to 128 new tokens and matches "ANSWER:" case-insensitively
# (`re.IGNORECASE`); both transports here do the same.
MAX_NEW_TOKENS = 128

# Qwen3-VL encodes video frames in pairs (its vision config's temporal_patch_size) and rejects a shorter clip.
QWEN3_VL_TEMPORAL_PATCH = 2

# The rubric prompt of the RoboReward-4B / -8B model cards (huggingface.co/teetone/RoboReward-4B, "Inference"),
# verbatim, with the task at {task}.
ROBOREWARD_PROMPT = (
    "Given the task, assign a discrete progress score reward (1,2,3,4,5) for the robot in the video in the format: "
    "ANSWER: <score>\n"
    "Rubric for end-of-episode progress (judge only the final state without time limits):\n"
    "1 - No Success: Final state shows no goal-relevant change for the command.\n"
    "2 - Minimal Progress: Final state shows a small but insufficient change toward the goal.\n"
    "3 - Partial Completion: The final state shows good progress toward the goal but violates more than one "
    "requirement or a major requirement.\n"
    "4 - Near Completion: Final state is correct in region and intent but misses a single minor requirement.\n"
    "5 - Perfect Completion: Final state satisfies all requirements.\n"
    "\n"
    "Task: {task}"
)

# "ANSWER: 4", "answer:5." -- but not "ANSWER: 45" or "ANSWER: 3.5".
_ANSWER = re.compile(r"ANSWER:\s*([1-5])(?!\.?\d)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_score(text: str) -> int | None:
    """The score in a RoboReward answer, or None when the answer does not say one.

    The last `ANSWER: <1-5>` (in any case) wins. Without one, the answer counts only if the whole text holds exactly one
    number and that number is a single digit 1-5 (a "lone digit": "Score: 3"); "4/5", "1 2 3", "3.5" or "7" are not scores.
    """
    answers = _ANSWER.findall(text)
    if answers:
        return int(answers[-1])
    numbers = _NUMBER.findall(text)
    if len(numbers) == 1 and numbers[0] in {"1", "2", "3", "4", "5"}:
        return int(numbers[0])
    return None


def pad_to_temporal_patch(frames: np.ndarray, patch: int = QWEN3_VL_TEMPORAL_PATCH) -> tuple[np.ndarray, list[int]]:
    """A clip shorter than one temporal patch, padded with copies of its last frame, and each frame's index into the
    clip (a one-frame clip is that frame twice, both at index 0). Longer clips come back as they are."""
    frames = np.asarray(frames)
    indices = list(range(len(frames)))
    pad = patch - len(frames)
    if pad > 0:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        indices += [indices[-1]] * pad
    return frames, indices


@runtime_checkable
class VideoQuestion(Protocol):
    def ask(self, frames: np.ndarray, fps: float, prompt: str) -> str:
        """One user turn: the video (frames (T, H, W, 3) uint8, already subsampled, at `fps`), then `prompt`."""
        ...


class RoboRewardBackend:
    """End-of-episode score 1-5 from RoboReward; reward (score - 1) / 4, success when score >= success_score."""

    name = "roboreward"
    offers = frozenset({EPISODE_SCORE, SUCCESS})

    def __init__(self, transport: VideoQuestion, num_frames: int = 16, success_score: int = 5,
                 camera: str | None = None):
        if num_frames < 1:
            raise ValueError(f"RoboReward needs at least one frame per query, got num_frames={num_frames}.")
        if success_score not in (1, 2, 3, 4, 5):
            raise ValueError(f"success_score is a RoboReward score from 1 to 5, got {success_score}.")
        self.transport = transport
        self.num_frames = num_frames
        self.success_score = success_score
        self.camera = camera

    def score_episode(self, clip: EpisodeClip) -> EpisodeScore:
        video = subsample(camera_frames(clip, self.camera), clip.fps, self.num_frames)
        text = self.transport.ask(video.frames, video.fps, ROBOREWARD_PROMPT.replace("{task}", clip.instruction))
        score = parse_score(text)
        if score is None:
            logger.warning("RoboReward's answer holds no score from 1 to 5, so the episode gets reward 0 and is marked "
                           "invalid: %r", text[:300])
            return EpisodeScore(reward=0.0, success=False, score=None, raw=text, valid=False)
        return EpisodeScore(reward=(score - 1) / 4, success=score >= self.success_score, score=score, raw=text)

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        """The prefix scored as if the episode ended here: one progress value, for its last frame."""
        result = self.score_episode(clip)
        return ProgressScore(progress=np.array([result.reward], np.float32), success_prob=float(result.success),
                             raw=result.raw)


class TransformersVideoQA:
    """A Qwen3-VL checkpoint (local directory or Hub id) answering in this process, greedy decoding."""

    def __init__(self, model: str, device: str = "auto", max_new_tokens: int = MAX_NEW_TOKENS):
        transformers = import_transformers()
        self.device = resolve_device(device)
        path = resolve_checkpoint(model)
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
            self.model = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
                path, local_files_only=True, dtype=default_dtype(self.device))
        except (OSError, ValueError) as exc:
            raise OSError(f"Could not load a Qwen3-VL checkpoint with its processor from {path} ({first_line(exc)}); "
                          "point it at a RoboReward checkpoint directory.") from exc
        self.model.to(self.device).eval()
        self.max_new_tokens = max_new_tokens

    def inputs(self, frames: np.ndarray, fps: float, prompt: str):
        """The processor's model inputs for one user turn: the video, then the prompt, then the assistant cue."""
        # A one-frame clip is that frame twice, at t = 0 (the processor rejects a clip shorter than its temporal patch).
        frames, indices = pad_to_temporal_patch(frames, self.processor.video_processor.temporal_patch_size)
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # Frames arrive already subsampled: no resampling, and timestamps index / fps for the temporal encoding.
        metadata = {"total_num_frames": len(frames), "fps": float(fps), "frames_indices": indices,
                    "duration": len(frames) / float(fps), "height": frames.shape[1], "width": frames.shape[2]}
        extra = {}
        if hasattr(self.processor.video_processor, "cap_pixels_per_frame"):
            extra["cap_pixels_per_frame"] = True  # the per-frame pixel cap of the reference qwen-vl-utils pipeline
        return self.processor(text=[text], videos=[frames], video_metadata=[metadata], do_sample_frames=False,
                              return_tensors="pt", **extra)

    def ask(self, frames: np.ndarray, fps: float, prompt: str) -> str:
        torch = import_torch()
        inputs = self.inputs(frames, fps, prompt).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens)
        answer = output[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(answer, skip_special_tokens=True)[0].strip()
