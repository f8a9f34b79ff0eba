"""RoboReward: answer parsing, the backend over a transport, frame subsampling, and the transformers transport
loaded from a tiny random Qwen3-VL checkpoint through the same from_pretrained path as the real one."""

import logging
import re
import subprocess
import sys

import numpy as np
import pytest
from tiny_qwen import TOKENS_PER_IMAGE, build_tiny_qwen3vl, one_torch_thread, random_frames, script_answer

from dsrl_real.errors import MissingExtraError
from dsrl_real.rewards import hf_loading
from dsrl_real.rewards.base import EPISODE_SCORE, SUCCESS, EpisodeClip, RewardBackend
from dsrl_real.rewards.frames import camera_frames, subsample, subsample_indices
from dsrl_real.rewards.roboreward import (
    MAX_NEW_TOKENS,
    ROBOREWARD_PROMPT,
    RoboRewardBackend,
    TransformersVideoQA,
    VideoQuestion,
    pad_to_temporal_patch,
    parse_score,
)

TASK = "put the brown monkey on the yellow towel"


# --- parsing -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("ANSWER: 4", 4),
    ("The robot grasps the monkey and drops it on the towel's edge. ANSWER:5.", 5),
    ("ANSWER: 3 (the towel is 2 cm off)", 3),
    ("ANSWER: 2\nOn reflection the monkey is on the towel. ANSWER: 4", 4),  # the last answer counts
    ("Score: 3", 3),  # lone digit
    ("answer: 2", 2),  # the marker in any case, as upstream's evaluation matches it (re.IGNORECASE)
    ("Answer: 2 out of 5", 2),  # a marker, so the second number does not make it ambiguous
    ("The final answer:4", 4),
    ("ANSWER: 2, but on reflection answer: 5", 5),  # the last marker counts, whatever its case
    ("answer: 45", None),
    ("5", 5),
    ("I think 4/5", None),  # two numbers: not a lone digit
    ("", None),
    ("ANSWER: 7", None),  # out of range, and no other number to fall back to
    ("ANSWER: 45", None),
    ("ANSWER: 3.5", None),
    ("1 2 3", None),
    ("Progress 0.5", None),
    ("Step 0", None),
    ("ANSWER: <score>", None),
    ("The gripper never closes; nothing moves.", None),
    ("zxq!!##", None),
])
def test_parse_score(text, expected):
    assert parse_score(text) == expected


# --- frame subsampling -------------------------------------------------------------------------------------------

def test_subsample_indices_are_even_and_keep_first_and_last():
    assert subsample_indices(40, 16).tolist() == [0, 3, 5, 8, 10, 13, 16, 18, 21, 23, 26, 29, 31, 34, 36, 39]
    assert subsample_indices(20, 8).tolist() == [0, 3, 5, 8, 11, 14, 16, 19]
    assert subsample_indices(5, 16).tolist() == [0, 1, 2, 3, 4]
    assert subsample_indices(10, 2).tolist() == [0, 9]
    assert subsample_indices(10, 1).tolist() == [9]
    assert subsample_indices(1, 16).tolist() == [0]
    for total in range(1, 60):
        for count in (1, 2, 7, 8, 16):
            idx = subsample_indices(total, count)
            assert len(idx) == min(total, count) and idx[-1] == total - 1 and np.all(np.diff(idx) > 0)


def test_subsample_frames_and_timing():
    frames = random_frames(40)
    video = subsample(frames, fps=10.0, count=16)
    assert video.frames.shape == (16, 32, 32, 3)
    assert video.frames[:, 0, 0, 0].tolist() == video.indices.tolist()  # the marker pixel = original frame index
    assert video.indices[-1] == 39
    np.testing.assert_allclose(video.timestamps, video.indices / 10.0)
    assert video.fps == pytest.approx(15 / 3.9)  # 15 intervals over 0.0 s .. 3.9 s
    short = subsample(frames[:5], fps=10.0, count=16)
    assert short.indices.tolist() == [0, 1, 2, 3, 4] and short.fps == pytest.approx(10.0)
    assert subsample(frames[:1], fps=10.0, count=16).fps == 10.0


@pytest.mark.parametrize("frames, fps, match", [
    (np.zeros((4, 8, 8, 3), np.float32), 5.0, "uint8"),
    (np.zeros((4, 8, 8), np.uint8), 5.0, r"\(T, H, W, 3\)"),
    (np.zeros((0, 8, 8, 3), np.uint8), 5.0, "no frames"),
    (np.zeros((4, 8, 8, 3), np.uint8), 0.0, "fps"),
])
def test_subsample_rejects_bad_input(frames, fps, match):
    with pytest.raises(ValueError, match=match):
        subsample(frames, fps=fps, count=4)


def test_camera_choice():
    wrist, top = random_frames(3, seed=1), random_frames(3, seed=2)
    clip = EpisodeClip(frames={"wrist": wrist, "top": top}, instruction=TASK, fps=5.0)
    assert camera_frames(clip, None) is wrist
    assert camera_frames(clip, "top") is top
    with pytest.raises(ValueError, match=r"'side'.*\['top', 'wrist'\]"):
        camera_frames(clip, "side")
    with pytest.raises(ValueError, match="no camera frames"):
        camera_frames(EpisodeClip(frames={}, instruction=TASK, fps=5.0), None)


# --- the backend over a transport ----------------------------------------------------------------------------------

class RecordingTransport:
    def __init__(self, answer: str):
        self.answer = answer
        self.calls = []

    def ask(self, frames, fps, prompt):
        self.calls.append((frames, fps, prompt))
        return self.answer


def clip_of(count: int, fps: float = 10.0, **cameras) -> EpisodeClip:
    return EpisodeClip(frames=cameras or {"third_person": random_frames(count)}, instruction=TASK, fps=fps)


def test_backend_sends_subsampled_video_and_model_card_rubric():
    transport = RecordingTransport("ANSWER: 4")
    backend = RoboRewardBackend(transport)
    assert isinstance(backend, RewardBackend) and isinstance(transport, VideoQuestion)
    assert backend.name == "roboreward" and backend.offers == frozenset({EPISODE_SCORE, SUCCESS})
    backend.score_episode(clip_of(40))
    (frames, fps, prompt), = transport.calls
    assert frames.shape == (16, 32, 32, 3)
    assert frames[:, 0, 0, 0].tolist() == subsample_indices(40, 16).tolist()
    assert frames[-1, 0, 0, 0] == 39
    assert fps == pytest.approx(15 / 3.9)
    assert prompt == ROBOREWARD_PROMPT.replace("{task}", TASK)
    assert prompt.startswith("Given the task, assign a discrete progress score reward (1,2,3,4,5) for the robot in the "
                             "video in the format: ANSWER: <score>\nRubric for end-of-episode progress")
    assert "5 - Perfect Completion: Final state satisfies all requirements." in prompt
    assert prompt.endswith(f"\n\nTask: {TASK}")


@pytest.mark.parametrize("success_score", [5, 4])
def test_backend_maps_scores_to_reward_and_success(success_score):
    for score in range(1, 6):
        result = RoboRewardBackend(RecordingTransport(f"ANSWER: {score}"), success_score=success_score).score_episode(
            clip_of(10))
        assert (result.score, result.reward, result.success, result.valid) == (
            score, (score - 1) / 4, score >= success_score, True)
        assert result.raw == f"ANSWER: {score}"


def test_backend_marks_unparsable_answer_invalid_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="dsrl_real.rewards.roboreward"):
        result = RoboRewardBackend(RecordingTransport("I think 4/5")).score_episode(clip_of(10))
    assert (result.reward, result.success, result.score, result.valid, result.raw) == (
        0.0, False, None, False, "I think 4/5")
    assert "I think 4/5" in caplog.text and "invalid" in caplog.text


def test_backend_prefix_score_is_last_frame_progress():
    backend = RoboRewardBackend(RecordingTransport("ANSWER: 4"), num_frames=4)
    result = backend.score_prefix(clip_of(3))
    assert result.progress.tolist() == [0.75] and result.success_prob == 0.0
    assert backend.transport.calls[0][0].shape[0] == 3
    assert RoboRewardBackend(RecordingTransport("ANSWER: 5")).score_prefix(clip_of(3)).success_prob == 1.0
    invalid = RoboRewardBackend(RecordingTransport("no idea")).score_prefix(clip_of(3))
    assert invalid.progress.tolist() == [0.0] and invalid.success_prob == 0.0 and invalid.raw == "no idea"


def test_backend_watches_the_configured_camera():
    wrist, top = random_frames(6, seed=1), random_frames(6, seed=2)
    clip = EpisodeClip(frames={"wrist": wrist, "top": top}, instruction=TASK, fps=5.0)
    for camera, expected in ((None, wrist), ("top", top)):
        transport = RecordingTransport("ANSWER: 1")
        RoboRewardBackend(transport, camera=camera).score_episode(clip)
        np.testing.assert_array_equal(transport.calls[0][0], expected)
    with pytest.raises(ValueError, match="'side'"):
        RoboRewardBackend(RecordingTransport("ANSWER: 1"), camera="side").score_episode(clip)


def test_backend_rejects_bad_settings():
    with pytest.raises(ValueError, match="num_frames"):
        RoboRewardBackend(RecordingTransport(""), num_frames=0)
    with pytest.raises(ValueError, match="success_score"):
        RoboRewardBackend(RecordingTransport(""), success_score=6)


# --- lazy imports ---------------------------------------------------------------------------------------------------

def test_backend_modules_import_without_torch():
    code = ("import sys; import dsrl_real.rewards.roboreward, dsrl_real.rewards.robometer; "
            "print(sorted(m for m in ('torch', 'transformers', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_torch_is_one_sentence_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=re.escape('need PyTorch, torchvision and transformers: pip install -e ".[rewards]".')):
        TransformersVideoQA("teetone/RoboReward-4B")


# --- the transformers transport on a tiny Qwen3-VL --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    hf_loading.import_transformers()
    with one_torch_thread():
        yield str(build_tiny_qwen3vl(tmp_path_factory.mktemp("roboreward")))


def test_transport_answers_greedily_and_backend_scores_it(tiny_vlm):
    qa = TransformersVideoQA(tiny_vlm, device="cpu", max_new_tokens=8)
    assert qa.model.generation_config.do_sample  # the checkpoint asks for sampling; the transport must not
    script_answer(qa.model, qa.processor.tokenizer, "ANSWER: 4")
    frames = random_frames(16)
    assert [qa.ask(frames, 4.0, "Task: x") for _ in range(3)] == ["ANSWER: 4"] * 3
    result = RoboRewardBackend(qa).score_episode(clip_of(30))
    assert (result.score, result.reward, result.success, result.valid, result.raw) == (4, 0.75, False, True, "ANSWER: 4")


def test_transport_unreadable_model_answer_is_invalid(tiny_vlm):
    qa = TransformersVideoQA(tiny_vlm, device="cpu", max_new_tokens=8)
    script_answer(qa.model, qa.processor.tokenizer, "no progress")
    result = RoboRewardBackend(qa).score_episode(clip_of(30))
    assert (result.valid, result.reward, result.score, result.raw) == (False, 0.0, None, "no progress")


def test_transport_prompt_is_one_user_turn_video_first_with_frame_times(tiny_vlm):
    qa = TransformersVideoQA(tiny_vlm, device="cpu")
    video = subsample(random_frames(40), fps=10.0, count=16)
    prompt = ROBOREWARD_PROMPT.replace("{task}", TASK)
    inputs = qa.inputs(video.frames, video.fps, prompt)
    text = qa.processor.tokenizer.decode(inputs["input_ids"][0])
    # One user turn: the video (16 frames -> 8 temporal pairs, each "<t seconds>" + one vision block; transformers 5
    # keeps the chat template's outer <|vision_start|> ... <|vision_end|> around them, 4.57 drops it), then the prompt.
    pair = r"<(\d+\.\d) seconds>" + re.escape("<|vision_start|>" + "<|video_pad|>" * TOKENS_PER_IMAGE + "<|vision_end|>")
    layout = (re.escape("<|im_start|>user\n") + r"(?:<\|vision_start\|>)?" + f"(?:{pair}){{8}}" + r"(?:<\|vision_end\|>)?"
              + re.escape(prompt + "<|im_end|>\n<|im_start|>assistant\n"))
    assert re.fullmatch(layout, text)
    blocks = re.findall(pair, text)
    assert len(blocks) == 8 and text.count("<|video_pad|>") == 8 * TOKENS_PER_IMAGE
    # Times are those of the subsampled video at its own fps, i.e. the real times of the frames shown.
    shown = [float(t) for t in blocks]
    true_times = video.timestamps.reshape(8, 2).mean(axis=1)
    assert shown == [round((2 * j + 0.5) / video.fps, 1) for j in range(8)]
    assert np.max(np.abs(np.array(shown) - true_times)) <= 0.1
    assert inputs["video_grid_thw"].tolist() == [[8, 4, 4]]
    assert inputs["pixel_values_videos"].shape[0] == 8 * 4 * 4


def test_transport_accepts_a_single_frame(tiny_vlm):
    qa = TransformersVideoQA(tiny_vlm, device="cpu")
    inputs = qa.inputs(random_frames(1), 5.0, "Task: x")
    assert inputs["video_grid_thw"].tolist() == [[1, 4, 4]]
    assert "<0.0 seconds>" in qa.processor.tokenizer.decode(inputs["input_ids"][0])


def test_transport_answers_with_upstreams_token_budget(tiny_vlm):
    assert MAX_NEW_TOKENS == 128  # RoboReward's evaluation: max_new_tokens=128
    assert TransformersVideoQA(tiny_vlm, device="cpu").max_new_tokens == 128


def test_short_clips_are_padded_to_one_temporal_patch_with_their_last_frame():
    one = random_frames(1)
    frames, indices = pad_to_temporal_patch(one)
    assert frames.shape == (2, 32, 32, 3) and indices == [0, 0]
    np.testing.assert_array_equal(frames, np.concatenate([one, one]))
    frames, indices = pad_to_temporal_patch(random_frames(3), patch=4)
    assert indices == [0, 1, 2, 2] and frames[3, 0, 0, 0] == 2  # the marker pixel: a copy of frame 2
    longer = random_frames(5)
    frames, indices = pad_to_temporal_patch(longer)
    assert frames is longer and indices == [0, 1, 2, 3, 4]


def test_transport_missing_directory_is_one_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^No model directory at .*missing: pass a checkpoint directory"):
        TransformersVideoQA(str(tmp_path / "missing"))
    with pytest.raises(OSError, match=r"Could not load a Qwen3-VL checkpoint with its processor from"):
        TransformersVideoQA(str(tmp_path))


def test_transport_hub_id_without_network_is_one_sentence(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(OSError, match=r"^'teetone/RoboReward-4B' is neither a local model directory nor a model this "
                                      r"machine can get from the Hugging Face Hub"):
        TransformersVideoQA("teetone/RoboReward-4B")
