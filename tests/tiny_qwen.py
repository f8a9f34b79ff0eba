"""Tiny random Qwen3-VL checkpoints for tests: built and saved exactly as a real one is laid out on disk.

`build_tiny_qwen3vl(path)` writes config.json + model.safetensors (a `Qwen3VLForConditionalGeneration`, or the
bare `Qwen3VLModel` backbone with `backbone_only=True`) and the processor files: a byte-level BPE tokenizer
trained on the spot with the `tokenizers` library, wrapped as a fast tokenizer carrying Qwen3-VL's special
tokens and a chat template that renders content like Qwen3-VL's, plus Qwen3-VL's image and video processors
scaled down to 32x32 frames (patch 8, merge 2 -> 4 vision tokens per image, per video frame pair).
`build_tiny_robometer(path)` writes a checkpoint in the file layout of robometer/Robometer-4B (no processor
files; config.yaml names the base model) and, beside it, a tiny base-model folder holding the processor with
Qwen3-VL's real pixel settings.
Everything then loads through the same `from_pretrained` calls a downloaded checkpoint takes.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dsrl_real.rewards.hf_loading import import_transformers

IMAGE_SIZE = 32  # frames the tests feed are IMAGE_SIZE x IMAGE_SIZE; the processors keep that size
PATCH_SIZE = 8
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE) ** 2 // MERGE_SIZE**2  # 4

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen3-VL's chat template, reduced to what a user turn with text / images / videos needs (no tools, no
# thinking): "Picture N: " / "Video N: " labels with add_vision_id, vision placeholders wrapped in
# <|vision_start|> ... <|vision_end|>, and the "<|im_start|>assistant\n" generation prompt.
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}"
    "{%- set video_count = namespace(value=0) -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' -%}"
    "{%- set image_count.value = image_count.value + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Picture ' + image_count.value|string + ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif content['type'] == 'video' -%}"
    "{%- set video_count.value = video_count.value + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Video ' + video_count.value|string + ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in content -%}{{- content['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)

_CORPUS = [
    "Given the task, assign a discrete progress score reward (1,2,3,4,5) for the robot in the video.",
    "ANSWER: 1 ANSWER: 2 ANSWER: 3 ANSWER: 4 ANSWER: 5 Score: 3 answer: 2 I think 4/5",
    "The task for the robot is to pick up the brown monkey and put it on the yellow towel.",
    "Predict the task progress at each frame, a float between 0 and 1. Picture 1: Video 1: seconds",
    "The robot opens the drawer. No success, minimal progress, partial completion, near completion, perfect.",
]


# Qwen2's pre-tokenizer split (its tokenizer.json): digits one by one, words with one leading non-letter, etc.
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
              r"\s+(?!\S)|\s+")


def train_tokenizer(extra_special_tokens: tuple[str, ...] = ()):
    """A byte-level BPE with Qwen2's pre-tokenizer, trained on a few sentences, wrapped as Qwen2TokenizerFast."""
    import_transformers()  # transformers through the project's import path (torchvision set up first)
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=QWEN_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
                              bos_token=None, chat_template=CHAT_TEMPLATE)
    if extra_special_tokens:
        fast.add_special_tokens({"additional_special_tokens": list(extra_special_tokens)})
    return fast


def tiny_config(tokenizer, *, hidden: int = 32, layers: int = 2, patch_size: int = PATCH_SIZE):
    import_transformers()
    from transformers import Qwen3VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    head_dim = 16
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
            num_attention_heads=2, num_key_value_heads=1, head_dim=head_dim, max_position_embeddings=4096,
            # The keys of the published Qwen3-VL config.json (transformers 5 reads them as rope_parameters).
            rope_theta=10000.0,
            rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True},
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=1, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=2, patch_size=patch_size,
            spatial_merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE, out_hidden_size=hidden,
            num_position_embeddings=16, deepstack_visual_indexes=[0],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )


def tiny_processor(tokenizer):
    import_transformers()
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    pixels = IMAGE_SIZE * IMAGE_SIZE
    # min/max_pixels as well as size: transformers 4.57 reads the former, 5.x the latter.
    image_processor = Qwen2VLImageProcessor(patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                            temporal_patch_size=TEMPORAL_PATCH_SIZE, min_pixels=pixels, max_pixels=pixels,
                                            size={"shortest_edge": pixels, "longest_edge": pixels})
    # The video budget is shared by all frames, as in the real processor: room for 16 frames of IMAGE_SIZE^2.
    video_processor = Qwen3VLVideoProcessor(patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                            temporal_patch_size=TEMPORAL_PATCH_SIZE,
                                            size={"shortest_edge": pixels, "longest_edge": 16 * pixels})
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            chat_template=CHAT_TEMPLATE)


# Qwen3-VL's real vision preprocessing, from Qwen/Qwen3-VL-4B-Instruct's preprocessor_config.json and
# video_preprocessor_config.json: patch 16, temporal patch 2, merge 2, mean = std = 0.5; an image keeps between
# 65536 (256 x 256) and 16777216 (16384 * 32 * 32) pixels, a whole video between 4096 and 25165824.
QWEN3VL_PATCH_SIZE = 16
QWEN3VL_MEAN_STD = [0.5, 0.5, 0.5]
QWEN3VL_IMAGE_PIXELS = (65536, 16777216)
QWEN3VL_VIDEO_PIXELS = (4096, 25165824)


def qwen3vl_processor(tokenizer):
    """A processor around `tokenizer` with Qwen3-VL's real image and video settings (no 32x32 budget)."""
    import_transformers()
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    common = dict(patch_size=QWEN3VL_PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE,
                  image_mean=QWEN3VL_MEAN_STD, image_std=QWEN3VL_MEAN_STD)
    low, high = QWEN3VL_IMAGE_PIXELS
    image_processor = Qwen2VLImageProcessor(**common, min_pixels=low, max_pixels=high,
                                            size={"shortest_edge": low, "longest_edge": high})
    low, high = QWEN3VL_VIDEO_PIXELS
    video_processor = Qwen3VLVideoProcessor(**common, size={"shortest_edge": low, "longest_edge": high})
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            chat_template=CHAT_TEMPLATE)


def build_tiny_base_model(path: str | Path) -> Path:
    """A tiny stand-in for Robometer's base model (Qwen/Qwen3-VL-4B-Instruct), holding what Robometer takes from it:
    the processor files (the base tokenizer without Robometer's tokens, Qwen3-VL's real pixel settings)."""
    path = Path(path)
    qwen3vl_processor(train_tokenizer()).save_pretrained(path)
    return path


def build_tiny_qwen3vl(path: str | Path, *, backbone_only: bool = False, extra_special_tokens: tuple[str, ...] = (),
                       seed: int = 0) -> Path:
    """Save a tiny random Qwen3-VL (generation model, or the bare backbone) and its processor to `path`."""
    import_transformers()
    import torch
    from transformers import Qwen3VLForConditionalGeneration, Qwen3VLModel

    path = Path(path)
    tokenizer = train_tokenizer(extra_special_tokens)
    config = tiny_config(tokenizer)
    torch.manual_seed(seed)
    model = (Qwen3VLModel if backbone_only else Qwen3VLForConditionalGeneration)(config).eval()
    if not backbone_only:
        eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
        # Sampling settings as in Qwen3-VL-Instruct's generation_config.json: a backend must ask for greedy itself.
        model.generation_config.update(eos_token_id=eos, pad_token_id=eos[1], do_sample=True, temperature=0.7,
                                       top_p=0.8, top_k=20)
    model.save_pretrained(path)
    tiny_processor(tokenizer).save_pretrained(path)
    return path


def script_answer(model, tokenizer, answer: str) -> list[int]:
    """Set a tiny generation model's weights so that greedy decoding after the generation prompt emits `answer`.

    Attention and MLP outputs are zeroed, so the last hidden state at every position is the RMS-normalised
    embedding of that position's token. The tokens of the chain (prompt end -> answer tokens -> <|im_end|>) get
    orthogonal embeddings and the LM head maps each one onto the next, so every greedy step is exact. A decoy token
    trails the right one by a small logit gap at every step: sampling (the checkpoint's default) would pick it
    about 40 % of the time. Returns the answer's token ids.
    """
    import torch

    answer_ids = tokenizer.encode(answer, add_special_tokens=False)
    start = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)[-1]
    chain = [start, *answer_ids, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    decoy = tokenizer.encode("?", add_special_tokens=False)[-1]
    if len(set(chain[:-1])) != len(chain) - 1 or decoy in chain:
        raise ValueError(f"script_answer needs an answer whose tokens are all distinct and not '?', got {answer!r}")
    lm = model.model.language_model
    hidden = lm.config.hidden_size
    if len(chain) > hidden:
        raise ValueError(f"script_answer can chain at most {hidden - 1} tokens")
    with torch.no_grad():
        for layer in lm.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        lm.norm.weight.fill_(1.0)
        basis = torch.eye(hidden)
        for i, token in enumerate(chain[:-1]):
            lm.embed_tokens.weight[token] = basis[i]
        model.lm_head.weight.zero_()
        for i, nxt in enumerate(chain[1:]):
            model.lm_head.weight[nxt] = basis[i]
            model.lm_head.weight[decoy] += 0.95 * basis[i]
    return answer_ids


# Robometer's added tokens in the published order (robometer/utils/setup_utils.py, _add_special_tokens_and_resize).
ROBOMETER_TOKENS = ("<|split_token|>", "<|reward_token|>", "<|pref_token|>", "<|sim_token|>", "<|prog_token|>")


def base_model_dir(checkpoint: str | Path) -> Path:
    """Where `build_tiny_robometer(checkpoint)` puts its tiny base model: a sibling folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent / f"{checkpoint.name}-base-model"


def robometer_config_yaml(base_model_id: str) -> dict:
    """The fields of a Robometer checkpoint's config.yaml (a dump of upstream's ExperimentConfig,
    robometer/configs/experiment_configs.py, with the values of robometer/configs/config.yaml) that matter here."""
    return {
        "mode": "train", "debug": False, "trainer_cls": "rbm_heads",
        "model": {
            "base_model_id": base_model_id, "model_type": "default", "torch_dtype": "bfloat16",
            "trust_remote_code": True, "train_vision_encoder": False, "train_language_model": True,
            "train_progress_head": True, "train_preference_head": True, "train_success_head": True,
            "average_temporal_patches": False, "frame_pooling": "mean", "frame_pooling_attn_temperature": 1.0,
            "use_per_frame_progress_token": True, "use_multi_image": True, "use_peft": False,
            "peft_vision_encoder": False, "quantization": False, "use_unsloth": True,
            "progress_loss_type": "discrete", "progress_discrete_bins": 10, "rewind": None,
        },
        "data": {
            "max_frames": 8, "resized_height": None, "resized_width": None, "use_multi_image": True,
            "use_per_frame_progress_token": True, "progress_loss_type": "discrete", "progress_discrete_bins": 10,
        },
        "loss": {"progress_loss_type": "discrete", "progress_discrete_bins": 10},
    }


def build_tiny_robometer(path: str | Path, *, base_model: str | None = None, seed: int = 0) -> Path:
    """Save a tiny random checkpoint in the file layout of robometer/Robometer-4B: config.json (a Qwen3-VL config
    advertising architectures ["RFM"], its vocabulary the base tokenizer's plus Robometer's five tokens),
    config.yaml naming the base model, two safetensors shards with their index, and trainer metadata; no
    tokenizer or processor files. The weights carry the `RBM` module's names written out here by hand
    (robometer/models/rbm.py and heads.py): model.* (the Qwen3VLModel backbone), {progress,preference,success}_head.
    {0,1,4}.{weight,bias} with progress over 10 bins, and frame_pool_attn.weight. config.yaml names `base_model`,
    or by default a tiny base model built at `base_model_dir(path)`.
    """
    import_transformers()
    import torch
    import yaml
    from safetensors.torch import save_file
    from transformers import Qwen3VLModel

    path = Path(path)
    if base_model is None:
        base_model = str(build_tiny_base_model(base_model_dir(path)))
    config = tiny_config(train_tokenizer(ROBOMETER_TOKENS), patch_size=QWEN3VL_PATCH_SIZE)
    torch.manual_seed(seed)
    backbone = Qwen3VLModel(config)
    hidden = config.text_config.hidden_size
    weights = {f"model.{name}": tensor.contiguous() for name, tensor in backbone.state_dict().items()}
    for head, outputs in (("progress_head", 10), ("preference_head", 1), ("success_head", 1)):
        weights[f"{head}.0.weight"] = torch.randn(hidden // 2, hidden) * 0.2
        weights[f"{head}.0.bias"] = torch.randn(hidden // 2) * 0.1
        weights[f"{head}.1.weight"] = 1.0 + 0.1 * torch.randn(hidden // 2)
        weights[f"{head}.1.bias"] = 0.1 * torch.randn(hidden // 2)
        weights[f"{head}.4.weight"] = torch.randn(outputs, hidden // 2)
        weights[f"{head}.4.bias"] = torch.randn(outputs)
    weights["frame_pool_attn.weight"] = torch.randn(1, hidden)
    path.mkdir(parents=True, exist_ok=True)
    names = sorted(weights)
    shards = {SHARDS[0]: names[: len(names) // 2], SHARDS[1]: names[len(names) // 2:]}
    for file, keys in shards.items():
        save_file({k: weights[k] for k in keys}, str(path / file), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in weights.values())},
             "weight_map": {k: file for file, keys in shards.items() for k in keys}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config.architectures = ["RFM"]
    config.save_pretrained(path)
    (path / "config.yaml").write_text(yaml.safe_dump(robometer_config_yaml(base_model), sort_keys=False))
    (path / "trainer_state.json").write_text(json.dumps({"global_step": 0, "log_history": []}))
    (path / "metrics.json").write_text("{}")
    (path / "dataset_random_state.json").write_text("{}")
    return path


# The published checkpoint's file names (huggingface.co/robometer/Robometer-4B).
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
PUBLISHED_FILES = {"config.json", "config.yaml", *SHARDS, "model.safetensors.index.json", "trainer_state.json",
                   "metrics.json", "dataset_random_state.json"}


def checkpoint_weights(path: str | Path) -> dict:
    """All tensors of a sharded checkpoint, by name."""
    from safetensors.torch import load_file

    return {k: v for file in SHARDS for k, v in load_file(str(Path(path) / file)).items()}


@contextmanager
def one_torch_thread():
    """Tiny models run fastest on one thread; two OpenMP threads on a busy 2-core machine spin instead of working."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def random_frames(count: int, *, seed: int = 0, size: int = IMAGE_SIZE) -> np.ndarray:
    """(count, size, size, 3) uint8 frames; frame i is also marked with value i in pixel (0, 0, 0)."""
    frames = np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(count) % 256
    return frames
