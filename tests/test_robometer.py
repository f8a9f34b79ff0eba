"""Robometer on a tiny random checkpoint laid out as robometer/Robometer-4B is published (no processor files;
config.yaml names the base model, here a tiny local folder with Qwen3-VL's real pixel settings), loaded through
the same from_pretrained path as the real one, with frames preprocessed as upstream preprocesses them."""

import math
import shutil

import numpy as np
import pytest
from PIL import Image
from tiny_qwen import (
    PUBLISHED_FILES,
    QWEN3VL_IMAGE_PIXELS,
    QWEN3VL_PATCH_SIZE,
    ROBOMETER_TOKENS,
    SHARDS,
    base_model_dir,
    build_tiny_base_model,
    build_tiny_qwen3vl,
    build_tiny_robometer,
    checkpoint_weights,
    one_torch_thread,
    qwen3vl_processor,
    random_frames,
    robometer_config_yaml,
    train_tokenizer,
)

from dsrl_real.config import ConfigError, load_config
from dsrl_real.errors import UserError
from dsrl_real.rewards import hf_loading
from dsrl_real.rewards.base import EPISODE_SCORE, PROGRESS, SUCCESS, EpisodeClip, RewardBackend
from dsrl_real.rewards.frames import qwen_image_size, resize_frames, smart_resize, subsample_indices
from dsrl_real.rewards.hf_loading import RewardModelError, RewardModelNotFoundError
from dsrl_real.rewards.registry import build_reward_backend
from dsrl_real.rewards.robometer import ROBOMETER_PROMPT, SPECIAL_TOKENS, RobometerBackend, base_model_id

TASK = "pull the drawer out"
CENTRES = np.linspace(0.0, 1.0, 10)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    hf_loading.import_transformers()
    with one_torch_thread():
        yield str(build_tiny_robometer(tmp_path_factory.mktemp("robometer")))


@pytest.fixture
def backend(checkpoint):
    return RobometerBackend.from_pretrained(checkpoint, device="cpu")


def clip_of(count: int, seed: int = 0, fps: float = 5.0) -> EpisodeClip:
    return EpisodeClip(frames={"third_person": random_frames(count, seed=seed)}, instruction=TASK, fps=fps)


def write_config_yaml(checkpoint, base_model_id: str) -> None:
    import yaml

    (checkpoint / "config.yaml").write_text(yaml.safe_dump(robometer_config_yaml(base_model_id)))


def test_published_layout_loads_with_no_missing_or_unexpected_keys(checkpoint, backend):
    from pathlib import Path

    assert {p.name for p in Path(checkpoint).iterdir()} == PUBLISHED_FILES  # no tokenizer or processor files
    assert base_model_id(checkpoint) == (str(base_model_dir(checkpoint)), Path(checkpoint) / "config.yaml")
    info = backend.loading_info
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert not info["error_msgs"]
    saved = checkpoint_weights(checkpoint)
    state = backend.model.state_dict()
    for key in ("progress_head.0.weight", "progress_head.1.bias", "progress_head.4.weight", "success_head.4.bias",
                "preference_head.0.weight", "model.language_model.embed_tokens.weight",
                "model.visual.blocks.0.attn.qkv.weight"):
        np.testing.assert_array_equal(state[key].numpy(), saved[key].numpy())
    assert state["progress_head.4.weight"].shape[0] == 10 and state["success_head.4.weight"].shape[0] == 1
    assert isinstance(backend, RewardBackend)
    assert backend.name == "robometer" and backend.offers == frozenset({EPISODE_SCORE, PROGRESS, SUCCESS})
    # The processor is the base model's (Qwen3-VL's real settings), its tokenizer grown by the five tokens to
    # exactly the checkpoint's embedding, as upstream's resize_token_embeddings(len(tokenizer)) left it.
    image_processor = backend.processor.image_processor
    assert (image_processor.patch_size, image_processor.merge_size) == (QWEN3VL_PATCH_SIZE, 2)
    assert len(backend.processor.tokenizer) == len(train_tokenizer()) + 5
    assert backend.model.get_input_embeddings().num_embeddings == len(backend.processor.tokenizer)


def test_special_tokens_in_published_order(backend):
    base = len(train_tokenizer())
    assert SPECIAL_TOKENS == ROBOMETER_TOKENS
    assert backend.processor.tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(base, base + 5))


def test_prompt_has_an_image_then_a_prog_token_per_frame(backend):
    batch, (video,) = backend.inputs([clip_of(20)])
    ids = batch["input_ids"][0].tolist()
    text = backend.processor.tokenizer.decode(ids)
    # 32x32 frames: smart_resize (factor 32, at least 4 * 32^2 pixels) makes them 64x64 -> 4x4 patches -> 4 tokens.
    frame = "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|><|prog_token|>"
    expected = ("<|im_start|>user\n" + ROBOMETER_PROMPT.replace("{task}", TASK)
                + "".join(f"Picture {k}: {frame}" for k in range(1, 9)) + "<|im_end|>\n")
    assert text == expected
    tok = backend.processor.tokenizer
    prog = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids("<|prog_token|>")]
    ends = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids("<|vision_end|>")]
    assert len(prog) == 8 and prog == [e + 1 for e in ends]
    assert video.indices.tolist() == subsample_indices(20, 8).tolist() == [0, 3, 5, 8, 11, 14, 16, 19]
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4]] * 8
    # The pixels are those of each frame resized as qwen-vl-utils' fetch_image does (PIL bicubic to 64x64),
    # then normalised by the processor without a resize of its own.
    resized = [np.array(Image.fromarray(f).resize((64, 64), Image.Resampling.BICUBIC)) for f in random_frames(20)[video.indices]]
    shown = backend.processor.image_processor(images=resized, do_resize=False, return_tensors="pt")
    np.testing.assert_array_equal(batch["pixel_values"].numpy(), shown["pixel_values"].numpy())


# Upstream's tokens per frame, from qwen-vl-utils' smart_resize with factor 16 * 2 = 32, min 4 * 32^2 and max
# 16384 * 32^2 pixels (the three sizes are already multiples of 32 inside those bounds, so they stay as they are),
# then (H / 16) * (W / 16) patches merged 2x2: 128x128 -> 8*8/4 = 16, 224x224 -> 14*14/4 = 49, 640x480 -> 40*30/4 = 300.
@pytest.mark.parametrize(("height", "width", "tokens"), [(128, 128, 16), (224, 224, 49), (480, 640, 300)])
def test_visual_tokens_per_frame_equal_upstreams_with_qwen3vl_real_pixel_settings(backend, height, width, tokens):
    assert qwen_image_size(height, width, QWEN3VL_PATCH_SIZE) == (height, width)
    assert height // 16 * (width // 16) // 4 == tokens
    frames = np.random.default_rng(1).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    clip = EpisodeClip(frames={"third_person": frames}, instruction=TASK, fps=5.0)
    batch, _ = backend.inputs([clip])
    pad = backend.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((batch["input_ids"] == pad).sum()) == 2 * tokens
    assert batch["image_grid_thw"].tolist() == [[1, height // 16, width // 16]] * 2
    result = backend.score_prefix(clip)
    assert result.progress.shape == (2,) and np.all((result.progress >= 0) & (result.progress <= 1))


def test_the_processors_own_resize_would_not_match_upstream(backend):
    """What the backend avoids: Qwen3-VL's image processor keeps at least 65536 pixels, so it scales a 128x128
    frame up to 256x256, 64 tokens instead of upstream's 16; at 640x480 both agree on 300."""
    assert backend.processor.image_processor.size["shortest_edge"] == QWEN3VL_IMAGE_PIXELS[0] == 65536
    own = backend.processor.image_processor(images=[np.zeros((128, 128, 3), np.uint8), np.zeros((480, 640, 3), np.uint8)],
                                            return_tensors="pt")["image_grid_thw"]
    assert (own.prod(dim=1) // 4).tolist() == [64, 300]


@pytest.mark.parametrize(("size", "expected"), [
    ((128, 128), (128, 128)), ((224, 224), (224, 224)), ((480, 640), (480, 640)),
    ((720, 1280), (704, 1280)),  # 720 / 32 = 22.5 rounds half to even: 22 * 32
    ((144, 144), (128, 128)),  # 4.5 -> 4, and 128^2 is still >= 4 * 32^2
    ((32, 32), (64, 64)), ((20, 20), (64, 64)),  # below 4 * 32^2 pixels: scaled up, sides rounded up
    ((6000, 8000), (3520, 4704)),  # above 16384 * 32^2 pixels: scaled down, sides rounded down
    ((1, 150), (32, 160)),
])
def test_smart_resize_is_qwen_vl_utils(size, expected):
    assert qwen_image_size(*size, QWEN3VL_PATCH_SIZE) == expected
    assert smart_resize(*size, 32, 4 * 32**2, 16384 * 32**2) == expected


def test_smart_resize_refuses_what_qwen_vl_utils_refuses():
    with pytest.raises(ValueError, match="aspect ratio over 200"):
        smart_resize(1, 201, 32, 4096, 16384 * 1024)
    with pytest.raises(ValueError, match="max_pixels"):
        smart_resize(64, 64, 32, 4096, 1024)


def test_resize_frames_is_pil_bicubic_and_keeps_frames_of_the_right_size():
    frames = random_frames(3, size=40)
    out = resize_frames(frames, 64, 96)
    assert out.shape == (3, 64, 96, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1], np.asarray(Image.fromarray(frames[1]).resize((96, 64), Image.Resampling.BICUBIC)))
    assert resize_frames(frames, 40, 40) is frames


def test_hand_set_heads_give_exact_progress_and_success(checkpoint):
    import torch

    backend = RobometerBackend.from_pretrained(checkpoint, device="cpu", success_threshold=0.6)
    logits = np.linspace(-2.0, 3.0, 10)
    with torch.no_grad():
        backend.model.progress_head[4].weight.zero_()
        backend.model.progress_head[4].bias.copy_(torch.tensor(logits))
        backend.model.success_head[4].weight.zero_()
        backend.model.success_head[4].bias.fill_(math.log(0.7 / 0.3))
    expected = float(np.exp(logits) @ CENTRES / np.exp(logits).sum())
    result = backend.score_prefix(clip_of(12))
    np.testing.assert_allclose(result.progress, np.full(8, expected), rtol=1e-6)
    assert result.success_prob == pytest.approx(0.7)
    episode = backend.score_episode(clip_of(12))
    assert episode.reward == pytest.approx(expected) and episode.success and episode.valid
    backend.success_threshold = 0.75
    assert not backend.score_episode(clip_of(12)).success


def numpy_head(x, weights, prefix):
    w0, b0 = weights[f"{prefix}.0.weight"], weights[f"{prefix}.0.bias"]
    g, b = weights[f"{prefix}.1.weight"], weights[f"{prefix}.1.bias"]
    w4, b4 = weights[f"{prefix}.4.weight"], weights[f"{prefix}.4.bias"]
    h = x @ w0.T + b0
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5) * g + b
    h = 0.5 * h * (1.0 + np.vectorize(math.erf)(h / math.sqrt(2.0)))
    return h @ w4.T + b4


def test_heads_read_the_last_hidden_state_at_each_prog_token(checkpoint, backend):
    import torch

    clip = clip_of(9, seed=3)
    batch, _ = backend.inputs([clip])
    with torch.no_grad():
        hidden = backend.model.model(**batch).last_hidden_state[0].numpy().astype(np.float64)
    ids = batch["input_ids"][0].numpy()
    states = hidden[ids == backend.processor.tokenizer.convert_tokens_to_ids("<|prog_token|>")]
    weights = {k: v.numpy().astype(np.float64) for k, v in checkpoint_weights(checkpoint).items()}
    bins = numpy_head(states, weights, "progress_head")
    probs = np.exp(bins - bins.max(-1, keepdims=True))
    progress = (probs / probs.sum(-1, keepdims=True)) @ CENTRES
    success = 1.0 / (1.0 + np.exp(-numpy_head(states, weights, "success_head")[:, 0]))
    result = backend.score_prefix(clip)
    np.testing.assert_allclose(result.progress, progress, atol=1e-5)
    np.testing.assert_allclose(result.raw["success_probs"], success, atol=1e-5)
    assert result.success_prob == pytest.approx(success[-1], abs=1e-5)
    assert np.all((result.progress >= 0) & (result.progress <= 1))


def test_batched_prefixes_match_one_by_one(backend):
    episode = clip_of(20, seed=5)
    prefixes = [EpisodeClip(frames={"third_person": episode.frames["third_person"][:n]}, instruction=TASK, fps=5.0)
                for n in (2, 5, 20)]
    alone = [backend.score_prefix(clip) for clip in prefixes]
    for batch_size in (8, 2):
        backend.batch_size = batch_size
        batched = backend.score_prefixes(prefixes)
        assert [len(s.progress) for s in batched] == [2, 5, 8]
        for one, many in zip(alone, batched):
            np.testing.assert_allclose(many.progress, one.progress, atol=1e-5)
            assert many.success_prob == pytest.approx(one.success_prob, abs=1e-5)
            assert many.raw["frame_indices"] == one.raw["frame_indices"]
            assert 0.0 <= many.success_prob <= 1.0 and np.all((many.progress >= 0) & (many.progress <= 1))
    assert batched[2].raw["frame_indices"][-1] == 19


def test_episode_score_is_last_frame_progress(backend):
    clip = clip_of(15, seed=7)
    prefix = backend.score_prefix(clip)
    episode = backend.score_episode(clip)
    assert episode.reward == pytest.approx(float(prefix.progress[-1])) and episode.score == episode.reward
    assert episode.success == (prefix.success_prob >= 0.5)
    assert episode.raw["progress"] == pytest.approx(prefix.progress.tolist())


def test_backend_watches_the_configured_camera(checkpoint):
    wrist, top = random_frames(6, seed=1), random_frames(6, seed=2)
    both = EpisodeClip(frames={"wrist": wrist, "top": top}, instruction=TASK, fps=5.0)
    only_top = EpisodeClip(frames={"top": top}, instruction=TASK, fps=5.0)
    first = RobometerBackend.from_pretrained(checkpoint, device="cpu")
    chosen = RobometerBackend.from_pretrained(checkpoint, device="cpu", camera="top")
    np.testing.assert_allclose(chosen.score_prefix(both).progress, first.score_prefix(only_top).progress, atol=1e-6)
    assert not np.allclose(first.score_prefix(both).progress, chosen.score_prefix(both).progress, atol=1e-7)
    with pytest.raises(ValueError, match="'side'"):
        RobometerBackend.from_pretrained(checkpoint, device="cpu", camera="side").score_prefix(both)


def test_a_checkpoint_with_its_own_processor_files_and_no_config_yaml_loads_the_same(tmp_path, checkpoint, backend):
    own = tmp_path / "own"
    shutil.copytree(checkpoint, own)
    (own / "config.yaml").unlink()
    for file in base_model_dir(checkpoint).iterdir():
        shutil.copy(file, own / file.name)
    alone = RobometerBackend.from_pretrained(str(own), device="cpu")
    tok = alone.processor.tokenizer
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == backend.processor.tokenizer.convert_tokens_to_ids(
        list(SPECIAL_TOKENS))
    clip = clip_of(10, seed=9)
    np.testing.assert_allclose(alone.score_prefix(clip).progress, backend.score_prefix(clip).progress, atol=1e-6)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


def test_an_unreachable_base_model_is_one_sentence_and_reward_base_model_points_at_a_local_copy(tmp_path, offline):
    with one_torch_thread():
        path = build_tiny_robometer(tmp_path / "rbm", base_model="Qwen/Qwen3-VL-4B-Instruct")
    with pytest.raises(RewardModelError, match=(
            r"^Robometer takes its processor from its base model 'Qwen/Qwen3-VL-4B-Instruct' \(model.base_model_id in "
            r".*config.yaml\), which this machine cannot load \(.*\); set reward.base_model to the base model's hub id "
            r"or to a local copy of it")) as caught:
        RobometerBackend.from_pretrained(str(path), device="cpu")
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)
    local = build_tiny_base_model(tmp_path / "qwen3-vl-copy")
    cfg = load_config(overrides=["reward.backend=robometer", f"reward.model={path}", f"reward.base_model={local}",
                                 "reward.device=cpu"])
    backend = build_reward_backend(cfg)
    assert not backend.loading_info["missing_keys"] and backend.score_prefix(clip_of(4)).progress.shape == (4,)


def test_a_base_model_folder_that_is_not_there_is_one_sentence(tmp_path):
    with one_torch_thread():
        path = build_tiny_robometer(tmp_path / "rbm", base_model=str(tmp_path / "gone"))
    with pytest.raises(RewardModelNotFoundError, match=r"^Robometer's base model .*gone \(model.base_model_id in .*"
                                                       r"config.yaml\) is not a folder on this machine; set reward.base_model"):
        RobometerBackend.from_pretrained(str(path), device="cpu")


def test_a_checkpoint_naming_no_base_model_and_holding_no_processor_is_one_sentence(tmp_path, checkpoint):
    bare = tmp_path / "bare"
    shutil.copytree(checkpoint, bare)
    (bare / "config.yaml").unlink()
    with pytest.raises(RewardModelError, match=r"^Robometer takes its processor from its base model .*bare' \(the "
                                               r"checkpoint folder, as it has no config.yaml naming a base model\)"):
        RobometerBackend.from_pretrained(str(bare), device="cpu")
    (bare / "config.yaml").write_text("model:\n  model_type: default\n")
    with pytest.raises(RewardModelError, match=r"^Could not read model.base_model_id from .*config.yaml \('base_model_id'\)"):
        RobometerBackend.from_pretrained(str(bare), device="cpu")


def test_config_yaml_with_python_object_tags_is_read(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "model: !!python/object:robometer.configs.experiment_configs.ModelConfig\n  base_model_id: Qwen/Qwen3-VL-4B-Instruct\n"
        "  rewind: !!python/object:robometer.models.rewind_transformer.ReWINDTransformerConfig {hidden_dim: 8}\n")
    assert base_model_id(str(tmp_path)) == ("Qwen/Qwen3-VL-4B-Instruct", tmp_path / "config.yaml")


def test_a_base_tokenizer_that_does_not_fit_the_embedding_is_refused(tmp_path, checkpoint):
    other = tmp_path / "other-base"
    qwen3vl_processor(train_tokenizer(("<|extra|>",))).save_pretrained(other)
    with pytest.raises(RewardModelError, match=(
            r"^The Robometer weights in .* have a \d+-row token embedding but the tokenizer of .*other-base "
            r"\(reward.base_model\) has \d+ tokens with Robometer's five; set reward.base_model")):
        RobometerBackend.from_pretrained(checkpoint, device="cpu", base_model=str(other))


def test_a_checkpoint_without_heads_is_refused(tmp_path):
    vlm = build_tiny_qwen3vl(tmp_path)
    with pytest.raises(RewardModelError, match=r"is not a Robometer checkpoint: it lacks 18 weights"):
        RobometerBackend.from_pretrained(str(vlm), device="cpu")


def test_missing_directory_is_one_sentence(tmp_path):
    with pytest.raises(RewardModelNotFoundError, match=r"^No model directory at .*nowhere: pass a checkpoint directory"):
        RobometerBackend.from_pretrained(str(tmp_path / "nowhere"))


def test_a_continuous_progress_head_is_refused(tmp_path):
    import json

    import torch
    from safetensors.torch import load_file, save_file

    with one_torch_thread():
        path = build_tiny_robometer(tmp_path / "rbm")
    weight_map = json.loads((path / "model.safetensors.index.json").read_text())["weight_map"]
    assert set(weight_map.values()) == set(SHARDS)
    hidden = load_file(str(path / weight_map["progress_head.4.weight"]))["progress_head.4.weight"].shape[1]
    for key, value in (("progress_head.4.weight", torch.randn(1, hidden)), ("progress_head.4.bias", torch.randn(1))):
        shard = load_file(str(path / weight_map[key]))
        shard[key] = value
        save_file(shard, str(path / weight_map[key]), metadata={"format": "pt"})
    with pytest.raises(RewardModelError, match=r"do not have Robometer-4B's shapes \(a continuous progress head"):
        RobometerBackend.from_pretrained(str(path), device="cpu")


def test_asking_for_an_absent_gpu_is_one_sentence(checkpoint, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^reward.device='cuda' was asked for, but PyTorch sees no CUDA GPU here; use 'cpu' or 'auto'.$"):
        RobometerBackend.from_pretrained(checkpoint, device="cuda")
    assert RobometerBackend.from_pretrained(checkpoint, device="auto").device == "cpu"
