"""The OpenAI-compatible video transport against a stub server on loopback."""

import base64
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
import pytest

from dsrl_real.rewards import http as http_transport
from dsrl_real.rewards.http import (
    OpenAIVideoQA,
    VideoServerError,
    chat_completions_url,
    encode_mp4,
)

ANSWER = "The gripper holds the monkey over the towel. ANSWER: 4"


class StubServer:
    """An OpenAI-compatible chat server that plays `replies` in order (the last one repeats) and records
    every request. A reply is ("ok", text), ("status", code, message), ("hang",) or ("not_chat",)."""

    def __init__(self, replies, port=0):
        self.replies = list(replies)
        self.requests = []  # (path, headers, body)
        self.release = threading.Event()  # lets hanging handlers finish at shutdown
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.path, dict(self.headers), body))
                reply = stub.replies[min(len(stub.requests), len(stub.replies)) - 1]
                if reply[0] == "hang":
                    stub.release.wait(10)
                    return
                if reply[0] == "ok":
                    code, payload = 200, {"id": "x", "object": "chat.completion", "model": body["model"],
                                          "choices": [{"index": 0, "message": {"role": "assistant",
                                                                               "content": reply[1]}}]}
                elif reply[0] == "not_chat":
                    code, payload = 200, {"hello": "world"}
                else:
                    code, payload = reply[1], {"object": "error", "message": reply[2], "code": reply[1]}
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_server():
    servers = []

    def start(*replies, port=0):
        servers.append(StubServer(replies, port))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clip(t=5, h=48, w=64):
    """Frames whose brightness encodes their index, so order and count survive lossy encoding."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i] = 30 + 40 * i
        frames[i, :, : w // 2, 0] = 200  # a red left half
    return frames


def decode_mp4(data):
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        return frames, float(stream.average_rate)


def sent_video(body):
    url = body["messages"][0]["content"][0]["video_url"]["url"]
    prefix = "data:video/mp4;base64,"
    assert url.startswith(prefix)
    return decode_mp4(base64.b64decode(url[len(prefix):]))


def test_request_layout_and_answer(stub_server):
    server = stub_server(("ok", ANSWER))
    frames = clip(t=5)
    with OpenAIVideoQA(server.url, "teetone/RoboReward-4B", timeout_s=10, api_key="secret") as qa:
        assert qa.ask(frames, fps=1.5, prompt="Rate the episode.") == ANSWER
    (path, headers, body), = server.requests
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer secret"
    assert body["model"] == "teetone/RoboReward-4B"
    assert body["temperature"] == 0 and 0 < body["max_tokens"] <= 64
    (message,) = body["messages"]
    assert message["role"] == "user"
    assert [part["type"] for part in message["content"]] == ["video_url", "text"]
    assert message["content"][1]["text"] == "Rate the episode."
    decoded, fps = sent_video(body)
    assert decoded.shape == frames.shape and fps == 1.5
    assert np.abs(decoded.astype(int) - frames).mean() < 3  # near-lossless, frames in order


def test_odd_frame_sizes_are_padded_to_even():
    frames, fps = decode_mp4(encode_mp4(clip(t=3, h=33, w=47), fps=8 / 7))
    assert frames.shape == (3, 34, 48, 3) and fps == pytest.approx(8 / 7)
    np.testing.assert_allclose(frames[:, :33, :47].mean(axis=(1, 2, 3)), clip(t=3, h=33, w=47).mean(axis=(1, 2, 3)),
                               atol=3)


@pytest.mark.parametrize("bad, fps", [(np.zeros((0, 8, 8, 3), np.uint8), 2.0), (np.zeros((2, 8, 8), np.uint8), 2.0),
                                      (np.zeros((2, 8, 8, 3), np.float32), 2.0), (np.zeros((2, 8, 8, 3), np.uint8), 0)])
def test_bad_frames_are_one_clear_sentence(bad, fps):
    with pytest.raises(ValueError, match="must be"):
        encode_mp4(bad, fps)


@pytest.mark.parametrize("base", ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"])
def test_base_url_with_or_without_v1(base):
    assert chat_completions_url(base) == "http://h:8000/v1/chat/completions"


def test_base_url_needs_a_scheme():
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        OpenAIVideoQA("localhost:8000", "m")


def test_timeout_then_recovery_on_retry(stub_server):
    server = stub_server(("hang",), ("ok", ANSWER))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=0.2, retries=1, backoff_s=0)
    assert qa.ask(clip(), 2.0, "q") == ANSWER
    assert len(server.requests) == 2


def test_timeout_on_every_try_names_the_server(stub_server):
    server = stub_server(("hang",))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=0.2, retries=1, backoff_s=0)
    with pytest.raises(VideoServerError) as err:
        qa.ask(clip(), 2.0, "q")
    assert str(err.value) == (f"The model server at {server.url}/v1/chat/completions did not answer within 0.2 s on "
                              "2 tries; start it with `vllm serve m` or check reward.server_url.")
    assert len(server.requests) == 2


def test_server_error_is_retried(stub_server):
    server = stub_server(("status", 500, "CUDA out of memory"), ("status", 503, "loading"), ("ok", ANSWER))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=2, backoff_s=0)
    assert qa.ask(clip(), 2.0, "q") == ANSWER
    assert len(server.requests) == 3


def test_server_error_on_every_try_keeps_the_servers_message(stub_server):
    server = stub_server(("status", 500, "CUDA out of memory"))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=1, backoff_s=0)
    with pytest.raises(VideoServerError, match=r"failed with HTTP 500 \(CUDA out of memory\) on 2 tries"):
        qa.ask(clip(), 2.0, "q")


def test_client_error_is_not_retried(stub_server):
    server = stub_server(("status", 404, "The model `m` does not exist."), ("ok", ANSWER))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=3, backoff_s=0)
    with pytest.raises(VideoServerError) as err:
        qa.ask(clip(), 2.0, "q")
    assert str(err.value) == (f"The model server at {server.url}/v1/chat/completions rejected the request with HTTP "
                              "404 (The model `m` does not exist.); check that it serves model 'm' with video input "
                              "(`vllm serve m`).")
    assert len(server.requests) == 1


def test_an_answer_that_is_not_a_chat_completion_is_an_error(stub_server):
    server = stub_server(("not_chat",))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=2, backoff_s=0)
    with pytest.raises(VideoServerError, match="something other than an OpenAI chat completion"):
        qa.ask(clip(), 2.0, "q")
    assert len(server.requests) == 1


def test_server_down_is_one_sentence_then_recovers_when_it_comes_back(stub_server, monkeypatch):
    port = free_port()
    qa = OpenAIVideoQA(f"http://127.0.0.1:{port}/v1", "teetone/RoboReward-4B", timeout_s=5, retries=2, backoff_s=0)
    with pytest.raises(VideoServerError) as err:
        qa.ask(clip(), 2.0, "q")
    message = str(err.value)
    assert message.startswith(f"The model server at http://127.0.0.1:{port}/v1/chat/completions could not be reached")
    assert message.endswith("on 3 tries; start it with `vllm serve teetone/RoboReward-4B` or check reward.server_url.")
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence

    # The server comes up while the transport backs off after a refused connection: the retry gets through.
    started = []
    monkeypatch.setattr(http_transport, "sleep", lambda s: started or started.append(stub_server(("ok", ANSWER),
                                                                                                port=port)))
    assert qa.ask(clip(), 2.0, "q") == ANSWER
    assert len(started) == 1 and len(started[0].requests) == 1
    assert qa.ask(clip(), 2.0, "q again") == ANSWER  # and stays usable


def _roboreward_over(url, *overrides):
    from dsrl_real.config import load_config
    from dsrl_real.rewards.registry import build_reward_backend

    cfg = load_config(overrides=["cameras=[]", "reward.backend=roboreward", "reward.model=teetone/RoboReward-8B",
                                 f"reward.server_url={url}", *overrides])
    return build_reward_backend(cfg)


def test_the_config_builds_roboreward_over_the_server_with_its_retries_and_api_key(stub_server, monkeypatch):
    from dsrl_real.rewards.base import EpisodeClip

    monkeypatch.setenv("MY_REWARD_KEY", "sk-test-123")
    server = stub_server(("status", 503, "loading"), ("ok", ANSWER))
    backend = _roboreward_over(server.url, "reward.server_retries=1", "reward.server_timeout_s=5",
                               "reward.server_api_key_env=MY_REWARD_KEY")
    frames = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    score = backend.score_episode(EpisodeClip({"third_person": frames}, "put the monkey on the towel", 5.0))
    assert (score.score, score.reward, score.success, score.valid) == (4, 0.75, False, True)
    assert len(server.requests) == 2  # the 503 was retried once
    assert all(headers["Authorization"] == "Bearer sk-test-123" for _, headers, _ in server.requests)
    assert server.requests[-1][2]["model"] == "teetone/RoboReward-8B"
    with pytest.raises(VideoServerError):  # no retries left: the same 503 is final
        _roboreward_over(stub_server(("status", 503, "loading")).url, "reward.server_retries=0").score_episode(
            EpisodeClip({"third_person": frames}, "put the monkey on the towel", 5.0))


def test_bad_server_settings_are_one_sentence():
    from dsrl_real.config import ConfigError

    with pytest.raises(ConfigError, match=r"^Bad reward.server_timeout_s / reward.server_retries: Need timeout_s > 0"):
        _roboreward_over("http://127.0.0.1:9", "reward.server_timeout_s=0")
