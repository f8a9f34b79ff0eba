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

The published checkpoints hold no tokenizer or processor files. As upstream (robometer/utils/save.py
`load_model_from_hf`, robometer/utils/setup_utils.py `setup_model_and_processor`), the processor comes from the
base model named by `model.base_model_id` in the checkpoint's config.yaml (Qwen/Qwen3-VL-4B-Instruct), and the five
tokens are added to its tokenizer. Frames go in as images (data.use_multi_image) with no size of their own, so
upstream's collator (robometer/data/collators/rbm_heads.py `_process_conversation`) has qwen-vl-utils' `fetch_image`
resize each one (`frames.qwen_image_size`) and then calls the processor with do_resize=False; so does this backend.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from .base import EPISODE_SCORE, PROGRESS, SUCCESS, EpisodeClip, EpisodeScore, ProgressScore
from .frames import SubsampledVideo, camera_frames, qwen_image_size, resize_frames, subsample
from .hf_loading import (
    RewardModelError,
    RewardModelNotFoundError,
    default_dtype,
    first_line,
    import_torch,
    import_transformers,
    looks_like_path,
    resolve_checkpoint,
    resolve_device,
)

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<|split_token|>", "<|reward_token|>", "<|pref_token|>", "<|sim_token|>", "<|prog_token|>")
PROG_TOKEN = "<|prog_token|>"
BASE_MODEL_HINT = ("set reward.base_model to the base model's hub id or to a local copy of it (a folder with its tokenizer "
                   "and preprocessor files; Qwen/Qwen3-VL-4B-Instruct for robometer/Robometer-4B)")
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
                        success_threshold: float = 0.5, base_model: str | None = None) -> RobometerBackend:
        """Load a Robometer checkpoint (a folder or Hub id holding config.json, config.yaml and the safetensors);
        the processor comes from `base_model` if given, else from the base model its config.yaml names."""
        device = resolve_device(device)
        directory = resolve_checkpoint(path)
        source, origin = processor_source(directory, base_model)
        processor = load_processor(source, origin)
        _add_robometer_tokens(processor.tokenizer)
        processor.tokenizer.padding_side = "right"
        if processor.tokenizer.pad_token is None:  # as upstream's _setup_processor_and_tokenizer
            processor.tokenizer.pad_token = processor.tokenizer.eos_token
        try:
            model, info = robometer_model_class().from_pretrained(
                directory, local_files_only=True, dtype=default_dtype(device), output_loading_info=True)
        except RuntimeError as exc:
            if "mismatch" not in str(exc):
                raise
            raise RewardModelError(f"The weights in {directory} do not have Robometer-4B's shapes (a continuous progress "
                                   "head instead of the 10-bin one, or another model); pass a Robometer checkpoint.") from exc
        except (OSError, ValueError) as exc:
            raise RewardModelError(f"Could not load Robometer weights from {directory} ({first_line(exc)}); pass a "
                                   "Robometer checkpoint directory.") from exc
        if info["missing_keys"]:
            raise RewardModelError(f"{directory} is not a Robometer checkpoint: it lacks {len(info['missing_keys'])} "
                                   f"weights, e.g. {sorted(info['missing_keys'])[:3]}.")
        if info["unexpected_keys"]:
            logger.warning("Robometer checkpoint %s has weights the model does not use: %s", directory,
                           sorted(info["unexpected_keys"])[:5])
        rows, tokens = model.get_input_embeddings().num_embeddings, len(processor.tokenizer)
        if rows != tokens:
            # Upstream resizes the base model's embedding to the tokenizer with the five tokens before loading.
            raise RewardModelError(f"The Robometer weights in {directory} have a {rows}-row token embedding but the "
                                   f"tokenizer of {source} ({origin}) has {tokens} tokens with Robometer's five; "
                                   f"{BASE_MODEL_HINT}.")
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
        images = [frame for video in videos for frame in self.frames_as_trained(video.frames)]
        batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt", do_resize=False)
        return batch, videos

    def frames_as_trained(self, frames: np.ndarray) -> np.ndarray:
        """The frames at the size Robometer saw in training: qwen-vl-utils' (sides multiples of 2 x patch size,
        4 to 16384 merged tokens), not the HF image processor's own resize (which, e.g., scales 128x128 up to 256x256)."""
        height, width = qwen_image_size(frames.shape[1], frames.shape[2], self.processor.image_processor.patch_size)
        return resize_frames(frames, height, width)

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


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML that reads the python-object tags some upstream config.yaml dumps carry as plain data."""


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", _plain)


def base_model_id(directory: str) -> tuple[str, Path] | None:
    """`model.base_model_id` of the checkpoint's config.yaml, and that file (upstream looks in the checkpoint folder,
    then its parent: robometer/utils/save.py, load_model_from_hf); None when there is no config.yaml."""
    found = [p for p in (Path(directory) / "config.yaml", Path(directory).parent / "config.yaml") if p.is_file()]
    if not found:
        return None
    try:
        name = yaml.load(found[0].read_text(), Loader=_ConfigLoader)["model"]["base_model_id"]
    except (yaml.YAMLError, OSError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise RewardModelError(f"Could not read model.base_model_id from {found[0]} ({first_line(exc)}); "
                               f"{BASE_MODEL_HINT}.") from exc
    if not isinstance(name, str) or not name.strip():
        raise RewardModelError(f"{found[0]} names no base model (model.base_model_id is {name!r}); {BASE_MODEL_HINT}.")
    return name.strip(), found[0]


def processor_source(directory: str, base_model: str | None) -> tuple[str, str]:
    """Where Robometer's processor comes from (a Hub id or a folder) and, for messages, why from there."""
    if base_model:
        return base_model, "reward.base_model"
    named = base_model_id(directory)
    if named is not None:
        return named[0], f"model.base_model_id in {named[1]}"
    return directory, "the checkpoint folder, as it has no config.yaml naming a base model"


def load_processor(source: str, origin: str):
    """The Qwen-VL processor of `source`: a local folder, or a Hub id (the processor files only are fetched)."""
    transformers = import_transformers()
    local = Path(source).expanduser()
    if not local.is_dir() and looks_like_path(source):
        raise RewardModelNotFoundError(f"Robometer's base model {source} ({origin}) is not a folder on this machine; "
                                       f"{BASE_MODEL_HINT}.")
    try:
        if local.is_dir():
            processor = transformers.AutoProcessor.from_pretrained(str(local), local_files_only=True)
        else:
            processor = transformers.AutoProcessor.from_pretrained(source)
    except Exception as exc:  # no processor files, offline, unknown or gated repo: all end the same way for the user
        raise RewardModelError(f"Robometer takes its processor from its base model {source!r} ({origin}), which this "
                               f"machine cannot load ({first_line(exc).rstrip('.')}); {BASE_MODEL_HINT}.") from exc
    if not (hasattr(processor, "image_processor") and hasattr(processor, "tokenizer")):
        raise RewardModelError(f"{source} ({origin}) holds a tokenizer but no image processor; {BASE_MODEL_HINT}.")
    return processor
