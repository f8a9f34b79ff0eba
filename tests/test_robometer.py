"""Robometer on a tiny random checkpoint written with the published weight names and token layout, loaded
through the same from_pretrained path as robometer/Robometer-4B."""

import math

import numpy as np
import pytest
from safetensors.torch import load_file
from tiny_qwen import (
    ROBOMETER_TOKENS,
    TOKENS_PER_IMAGE,
    build_tiny_qwen3vl,
    build_tiny_robometer,
    one_torch_thread,
    random_frames,
    train_tokenizer,
)

from dsrl_real.rewards import hf_loading
from dsrl_real.rewards.base import EPISODE_SCORE, PROGRESS, SUCCESS, EpisodeClip, RewardBackend
from dsrl_real.rewards.frames import subsample_indices
from dsrl_real.rewards.robometer import ROBOMETER_PROMPT, SPECIAL_TOKENS, RobometerBackend

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


def test_published_layout_loads_with_no_missing_or_unexpected_keys(checkpoint, backend):
    info = backend.loading_info
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    saved = load_file(f"{checkpoint}/model.safetensors")
    state = backend.model.state_dict()
    for key in ("progress_head.0.weight", "progress_head.1.bias", "progress_head.4.weight", "success_head.4.bias",
                "preference_head.0.weight", "model.language_model.embed_tokens.weight",
                "model.visual.blocks.0.attn.qkv.weight"):
        np.testing.assert_array_equal(state[key].numpy(), saved[key].numpy())
    assert state["progress_head.4.weight"].shape[0] == 10 and state["success_head.4.weight"].shape[0] == 1
    assert isinstance(backend, RewardBackend)
    assert backend.name == "robometer" and backend.offers == frozenset({EPISODE_SCORE, PROGRESS, SUCCESS})


def test_special_tokens_in_published_order(backend):
    base = len(train_tokenizer())
    assert SPECIAL_TOKENS == ROBOMETER_TOKENS
    assert backend.processor.tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(base, base + 5))


def test_prompt_has_an_image_then_a_prog_token_per_frame(backend):
    batch, (video,) = backend.inputs([clip_of(20)])
    ids = batch["input_ids"][0].tolist()
    text = backend.processor.tokenizer.decode(ids)
    frame = "<|vision_start|>" + "<|image_pad|>" * TOKENS_PER_IMAGE + "<|vision_end|><|prog_token|>"
    expected = ("<|im_start|>user\n" + ROBOMETER_PROMPT.replace("{task}", TASK)
                + "".join(f"Picture {k}: {frame}" for k in range(1, 9)) + "<|im_end|>\n")
    assert text == expected
    tok = backend.processor.tokenizer
    prog = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids("<|prog_token|>")]
    ends = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids("<|vision_end|>")]
    assert len(prog) == 8 and prog == [e + 1 for e in ends]
    assert video.indices.tolist() == subsample_indices(20, 8).tolist() == [0, 3, 5, 8, 11, 14, 16, 19]
    shown = backend.processor.image_processor(images=list(random_frames(20)[video.indices]), return_tensors="pt")
    np.testing.assert_array_equal(batch["pixel_values"].numpy(), shown["pixel_values"].numpy())


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
    weights = {k: v.numpy().astype(np.float64) for k, v in load_file(f"{checkpoint}/model.safetensors").items()}
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


def test_tokens_are_added_in_order_when_the_processor_lacks_them(tmp_path, backend):
    bare = RobometerBackend.from_pretrained(str(build_tiny_robometer(tmp_path, tokens_in_processor=False)), device="cpu")
    tok = bare.processor.tokenizer
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == backend.processor.tokenizer.convert_tokens_to_ids(
        list(SPECIAL_TOKENS))
    clip = clip_of(10, seed=9)
    np.testing.assert_allclose(bare.score_prefix(clip).progress, backend.score_prefix(clip).progress, atol=1e-6)


def test_a_checkpoint_without_heads_is_refused(tmp_path):
    vlm = build_tiny_qwen3vl(tmp_path)
    with pytest.raises(ValueError, match=r"is not a Robometer checkpoint: it lacks 18 weights"):
        RobometerBackend.from_pretrained(str(vlm), device="cpu")


def test_missing_directory_is_one_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^No model directory at .*nowhere: pass a checkpoint directory"):
        RobometerBackend.from_pretrained(str(tmp_path / "nowhere"))


def test_a_continuous_progress_head_is_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = build_tiny_robometer(tmp_path)
    weights = load_file(f"{path}/model.safetensors")
    weights["progress_head.4.weight"] = torch.randn(1, weights["progress_head.4.weight"].shape[1])
    weights["progress_head.4.bias"] = torch.randn(1)
    save_file(weights, f"{path}/model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"do not have Robometer-4B's shapes \(a continuous progress head"):
        RobometerBackend.from_pretrained(str(path), device="cpu")


def test_asking_for_an_absent_gpu_is_one_sentence(checkpoint, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^Device 'cuda' was asked for but PyTorch sees no CUDA GPU here"):
        RobometerBackend.from_pretrained(checkpoint, device="cuda")
    assert RobometerBackend.from_pretrained(checkpoint, device="auto").device == "cpu"
