"""Robometer (robometer/Robometer-4B): a Qwen3-VL-4B backbone with per-frame progress and success heads.

Layout and inference follow the published code (github.com/robometer/robometer, also aliang8/reward_fm):
robometer/models/rbm.py (`RBM`: `self.model` = `Qwen3VLModel`, heads read the last hidden state at every
`<|prog_token|>`), robometer/models/heads.py (`PredictionHeadsMixin`: each head Linear(h, h/2) -> LayerNorm ->
GELU -> Dropout(0.1) -> Linear; discrete progress over 10 bins), robometer/models/utils.py
(`convert_bins_to_continuous`: softmax expectation over bin centres linspace(0, 1, bins)),
robometer/utils/setup_utils.py (`_add_special_tokens_and_resize`: the five added tokens, in order) and
robometer/data/collators/rbm_heads.py (`_process_progress_batch`: the progress prompt, then per frame an image
and `<|prog_token|>`, chat template with add_vision_id=True, right padding). Checkpoint keys are therefore
`model.visual.*`, `model.language_model.*`, `progress_head.{0,1,4}.*`, `success_head.*`, `preference_head.*`
(plus `frame_pool_attn.weight`, an unused pooling layer of other modes, ignored on load).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import numpy as np

from .base import EPISODE_SCORE, PROGRESS, SUCCESS, EpisodeClip, EpisodeScore, ProgressScore
from .frames import SubsampledVideo, camera_frames, subsample
from .hf_loading import default_dtype, first_line, import_torch, import_transformers, resolve_checkpoint, resolve_device

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<|split_token|>", "<|reward_token|>", "<|pref_token|>", "<|sim_token|>", "<|prog_token|>")
PROG_TOKEN = "<|prog_token|>"
PROGRESS_BINS = 10
HEAD_DROPOUT = 0.1
ROBOMETER_PROMPT = (
    "The task for the robot is '{task}'. Given the trajectory video, predict the task progress at each frame, how far "
    "along the robot is towards completing the task, a float between 0 and 1, where 0 is the starting state and 1 is "
    "when the task is completed. If the robot is not performing the same task, predict 0 progress."
)


@functools.cache
def robometer_model_class():
    """The `RBM` module layout as a transformers model class (built on first use: torch is imported lazily)."""
    torch = import_torch()
    transformers = import_transformers()
    nn = torch.nn

    def head(hidden: int, out: int):
        return nn.Sequential(nn.Linear(hidden, hidden // 2), nn.LayerNorm(hidden // 2), nn.GELU(),
                             nn.Dropout(HEAD_DROPOUT), nn.Linear(hidden // 2, out))

    class RobometerModel(transformers.Qwen3VLPreTrainedModel):
        base_model_prefix = "model"
        _keys_to_ignore_on_load_unexpected = [r"^frame_pool_attn\."]

        def __init__(self, config):
            super().__init__(config)
            self.model = transformers.Qwen3VLModel(config)
            hidden = config.text_config.hidden_size
            self.progress_head = head(hidden, PROGRESS_BINS)
            self.preference_head = head(hidden, 1)
            self.success_head = head(hidden, 1)
            self.post_init()

        def forward(self, prog_token_id: int, **inputs):
            """Per `<|prog_token|>`, in sequence order over the batch: (progress in [0, 1], success probability),
            and the number of such tokens in each sequence."""
            hidden = self.model(**inputs).last_hidden_state
            at_prog = inputs["input_ids"] == prog_token_id
            states = hidden[at_prog]
            bins = self.progress_head(states).float().softmax(dim=-1)
            centres = torch.linspace(0.0, 1.0, PROGRESS_BINS, device=bins.device)
            progress = (bins * centres).sum(dim=-1)
            success = self.success_head(states).float().squeeze(-1).sigmoid()
            return progress, success, at_prog.sum(dim=1)

    return RobometerModel


class RobometerBackend:
    """Per-frame progress and success probability from Robometer; episode reward = progress at the last frame."""

    name = "robometer"
    offers = frozenset({EPISODE_SCORE, PROGRESS, SUCCESS})

    def __init__(self, model, processor, *, device: str = "cpu", num_frames: int = 8, camera: str | None = None,
                 success_threshold: float = 0.5, batch_size: int = 8, loading_info: dict | None = None):
        if num_frames < 1:
            raise ValueError(f"Robometer needs at least one frame per query, got num_frames={num_frames}.")
        if not 0.0 <= success_threshold <= 1.0:
            raise ValueError(f"success_threshold is a probability, got {success_threshold}.")
        self.model = model
        self.processor = processor
        self.device = device
        self.num_frames = num_frames
        self.camera = camera
        self.success_threshold = success_threshold
        self.batch_size = max(1, batch_size)
        self.loading_info = loading_info or {}
        self.prog_token_id = processor.tokenizer.convert_tokens_to_ids(PROG_TOKEN)

    @classmethod
    def from_pretrained(cls, path: str, device: str = "auto", num_frames: int = 8, camera: str | None = None,
                        success_threshold: float = 0.5) -> RobometerBackend:
        """Load a Robometer checkpoint directory (config.json, *.safetensors, processor files) or Hub id."""
        transformers = import_transformers()
        device = resolve_device(device)
        directory = resolve_checkpoint(path)
        try:
            processor = transformers.AutoProcessor.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise OSError(f"The Robometer checkpoint {directory} has no loadable processor files (tokenizer, image "
                          "processor); copy those of Qwen/Qwen3-VL-4B-Instruct into it.") from exc
        _add_robometer_tokens(processor.tokenizer)
        processor.tokenizer.padding_side = "right"
        try:
            model, info = robometer_model_class().from_pretrained(
                directory, local_files_only=True, dtype=default_dtype(device), output_loading_info=True)
        except RuntimeError as exc:
            if "mismatch" not in str(exc):
                raise
            raise ValueError(f"The weights in {directory} do not have Robometer-4B's shapes (a continuous progress head "
                             "instead of the 10-bin one, or another model); pass a Robometer checkpoint.") from exc
        except (OSError, ValueError) as exc:
            raise ValueError(f"Could not load Robometer weights from {directory} ({first_line(exc)}); pass a Robometer "
                             "checkpoint directory.") from exc
        if info["missing_keys"]:
            raise ValueError(f"{directory} is not a Robometer checkpoint: it lacks {len(info['missing_keys'])} weights, "
                             f"e.g. {sorted(info['missing_keys'])[:3]}.")
        if info["unexpected_keys"]:
            logger.warning("Robometer checkpoint %s has weights the model does not use: %s", directory,
                           sorted(info["unexpected_keys"])[:5])
        vocab = model.get_input_embeddings().num_embeddings
        ids = processor.tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
        if max(ids) >= vocab:
            raise ValueError(f"The tokenizer in {directory} does not match the Robometer weights: token ids {ids} of "
                             f"{list(SPECIAL_TOKENS)} exceed the {vocab}-row embedding.")
        model.to(device).eval()
        return cls(model, processor, device=device, num_frames=num_frames, camera=camera,
                   success_threshold=success_threshold, loading_info=info)

    def prompt_text(self, instruction: str, frame_count: int) -> str:
        content = [{"type": "text", "text": ROBOMETER_PROMPT.replace("{task}", instruction)}]
        for _ in range(frame_count):
            content += [{"type": "image"}, {"type": "text", "text": PROG_TOKEN}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=False, add_vision_id=True)

    def inputs(self, clips: Sequence[EpisodeClip]) -> tuple[object, list[SubsampledVideo]]:
        """The padded model inputs for a batch of clips, and the subsampled video of each clip."""
        videos = [subsample(camera_frames(clip, self.camera), clip.fps, self.num_frames) for clip in clips]
        texts = [self.prompt_text(clip.instruction, len(video.frames)) for clip, video in zip(clips, videos)]
        images = [frame for video in videos for frame in video.frames]
        batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        return batch, videos

    def score_prefixes(self, clips: Sequence[EpisodeClip]) -> list[ProgressScore]:
        """Score many clips (e.g. the prefixes of a running episode) in padded batches."""
        torch = import_torch()
        scores: list[ProgressScore] = []
        for start in range(0, len(clips), self.batch_size):
            batch, videos = self.inputs(clips[start:start + self.batch_size])
            with torch.inference_mode():
                progress, success, counts = self.model(self.prog_token_id, **batch.to(self.device))
            counts = counts.tolist()
            if counts != [len(video.frames) for video in videos]:
                raise RuntimeError(f"Expected one {PROG_TOKEN} per frame, found {counts}: the tokenizer does not "
                                   f"treat {PROG_TOKEN} as one special token.")
            bounds = np.cumsum([0, *counts])
            progress, success = progress.cpu().numpy(), success.cpu().numpy()
            for video, lo, hi in zip(videos, bounds[:-1], bounds[1:]):
                scores.append(ProgressScore(
                    progress=progress[lo:hi].astype(np.float32), success_prob=float(success[hi - 1]),
                    raw={"frame_indices": video.indices.tolist(), "success_probs": success[lo:hi].tolist()}))
        return scores

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        """Progress per subsampled frame (the last entry is the clip's last frame) and its success probability."""
        return self.score_prefixes([clip])[0]

    def score_episode(self, clip: EpisodeClip) -> EpisodeScore:
        result = self.score_prefix(clip)
        progress = float(result.progress[-1])
        return EpisodeScore(reward=progress, success=result.success_prob >= self.success_threshold, score=progress,
                            raw={**result.raw, "progress": result.progress.tolist()})


def _add_robometer_tokens(tokenizer) -> None:
    """Robometer's five special tokens, added in the published order where the tokenizer lacks them (as the
    training code did on the base Qwen3-VL tokenizer, so the ids match the trained embedding rows)."""
    vocab = tokenizer.get_vocab()
    for token in SPECIAL_TOKENS:
        if token not in vocab:
            tokenizer.add_special_tokens({"additional_special_tokens": [token]})
