"""The OpenAI-compatible video transport against a stub server on loopback."""

import base64
import io
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
import pytest
from conftest import STATE

from dsrl_real.errors import UserError
from dsrl_real.rewards import http as http_transport
from dsrl_real.rewards.base import EpisodeClip
from dsrl_real.rewards.http import (
    OpenAIVideoQA,
    VideoServerError,
    chat_completions_url,
    encode_mp4,
)
from dsrl_real.rewards.roboreward import RoboRewardBackend

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
        frames[i] = 30 + (160 * i) // max(t - 1, 1)
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
    assert body["temperature"] == 0 and body["max_tokens"] == 128  # RoboReward's evaluation budget
    assert body["mm_processor_kwargs"] == {"do_sample_frames": False}  # vLLM must not resample the clip to 2 fps
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

    cfg = load_config(overrides=[*STATE, "reward.backend=roboreward", "reward.model=teetone/RoboReward-8B",
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

    # The config's own value checks (config.py) or, behind them, the transport's, name the key.
    for bad in ("reward.server_timeout_s=0", "reward.server_timeout_s=nan", "reward.server_retries=-1"):
        with pytest.raises(ConfigError, match=r"^(Bad )?reward\.server_(timeout_s|retries)"):
            _roboreward_over("http://127.0.0.1:9", bad)


# --- what the server receives: every frame, and at least one temporal pair ----------------------------------------

def test_every_frame_arrives_and_the_server_is_told_not_to_resample(stub_server):
    server = stub_server(("ok", ANSWER))
    frames = clip(t=16)
    OpenAIVideoQA(server.url, "m", timeout_s=10).ask(frames, fps=5.0, prompt="q")
    (_, _, body), = server.requests
    assert body["mm_processor_kwargs"] == {"do_sample_frames": False}
    decoded, fps = sent_video(body)
    assert decoded.shape == (16, 48, 64, 3) and fps == 5.0
    np.testing.assert_allclose(decoded.mean(axis=(1, 2, 3)), frames.mean(axis=(1, 2, 3)), atol=3)


def test_a_one_frame_episode_reaches_the_server_as_two_copies_of_that_frame(stub_server):
    server = stub_server(("ok", "ANSWER: 2"))
    frame = clip(t=1)
    backend = RoboRewardBackend(OpenAIVideoQA(server.url, "m", timeout_s=10))
    score = backend.score_episode(EpisodeClip({"third_person": frame}, "open the drawer", 5.0))
    assert (score.score, score.valid) == (2, True)
    decoded, fps = sent_video(server.requests[0][2])
    assert decoded.shape == (2, 48, 64, 3) and fps == 5.0
    assert np.abs(decoded.astype(int) - frame[0]).mean() < 3


# --- servers that misbehave: each try ends by its deadline, in one sentence ------------------------------------------

STOP_AFTER_S = 60  # every fault server stops by itself after this long, whatever the client does


def read_request(conn):
    """Read one HTTP request whole (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client left before sending its request")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client left in the middle of its request")
        body += chunk


class FaultServer:
    """A raw loopback HTTP server: it reads each request whole, then plays `behaviour(server, conn)`. Its loops are
    bounded (STOP_AFTER_S, byte counts) and end early once `stop` is set or the client hangs up."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.requests = 0
        self.written = 0  # bytes of answer body the server managed to hand to the kernel
        self._lock = threading.Lock()
        self._handlers = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        end = time.monotonic() + STOP_AFTER_S
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            handler = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._handlers.append(handler)
            handler.start()

    def _handle(self, conn):
        with conn:
            try:
                read_request(conn)
                with self._lock:
                    self.requests += 1
                self.behaviour(self, conn)
            except OSError:  # the client hung up (or shut the connection at its deadline)
                pass

    def send(self, conn, data):
        conn.sendall(data)
        with self._lock:
            self.written += len(data)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for handler in self._handlers:
            handler.join(5)
        self.listener.close()


@pytest.fixture
def fault_server():
    servers = []

    def start(behaviour):
        servers.append(FaultServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def drip(head, filler):
    """Send `head`, then `filler` one byte per 20 ms: each read gets a byte long before a per-read timeout."""
    def behaviour(server, conn):
        conn.sendall(head)
        for i in range(len(filler)):
            if server.stop.wait(0.02):
                return
            server.send(conn, filler[i:i + 1])
    return behaviour


def flood(declare_length):
    """A 200 whose body is 64 KiB blocks of JSON whitespace, up to 64 MiB, announced as 2 GiB or not announced."""
    def behaviour(server, conn):
        length = f"Content-Length: {2**31}\r\n" if declare_length else ""
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n".encode())
        for _ in range(1024):
            if server.stop.is_set():
                return
            server.send(conn, b" " * 65536)
    return behaviour


def reset(server, conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() now sends RST


def not_http(server, conn):
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def reply(status, content_type, body):
    def behaviour(server, conn):
        head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        conn.sendall(head.encode() + body)
    return behaviour


def ask_guarded(qa, frames=None):
    """qa.ask on a thread: the test fails (instead of hanging) if the call has not returned after 30 s."""
    outcome = {}

    def run():
        try:
            outcome["answer"] = qa.ask(clip() if frames is None else frames, 2.0, "q")
        except Exception as err:  # noqa: BLE001 - handed to the test
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the client is still waiting for the server"
    return outcome


def error_of(outcome):
    err = outcome.get("error")
    assert isinstance(err, VideoServerError) and isinstance(err, UserError), outcome
    message = str(err)
    assert message.endswith(".") and message.count(". ") == 0  # one sentence
    return message


CHAT = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}}]}).encode()


@pytest.mark.parametrize("behaviour", [
    drip(b"", b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 3000),  # the headers never end
    drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n", b" " * 3000),  # nor the body
], ids=["headers", "body"])
def test_a_dripping_server_is_cut_off_at_the_total_deadline(fault_server, behaviour):
    server = fault_server(behaviour)
    qa = OpenAIVideoQA(server.url, "m", timeout_s=0.5, retries=1, backoff_s=0)
    assert error_of(ask_guarded(qa)) == (f"The model server at {server.url}/v1/chat/completions did not answer within "
                                         "0.5 s on 2 tries; start it with `vllm serve m` or check reward.server_url.")
    assert server.requests == 2


def test_a_2_gib_answer_is_refused_from_its_headers(fault_server):
    server = fault_server(flood(declare_length=True))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=3, backoff_s=0)
    assert error_of(ask_guarded(qa)) == (
        f"The model server at {server.url}/v1/chat/completions sent an answer larger than 4 MiB, far more than a chat "
        "completion; point reward.server_url at an OpenAI-compatible server such as `vllm serve m`.")
    assert server.requests == 1  # not retried: the same server would send the same
    assert server.written < 64 * 2**20  # the client hung up long before the flood ran out


def test_an_endless_answer_is_read_only_up_to_the_cap(fault_server):
    server = fault_server(flood(declare_length=False))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=0, max_answer_bytes=2**20)
    assert error_of(ask_guarded(qa)) == (
        f"The model server at {server.url}/v1/chat/completions sent an answer larger than 1 MiB, far more than a chat "
        "completion; point reward.server_url at an OpenAI-compatible server such as `vllm serve m`.")
    assert server.written < 64 * 2**20


@pytest.mark.parametrize("behaviour", [reset, not_http], ids=["reset", "not_http"])
def test_a_connection_dropped_before_the_answer_is_retried_then_one_sentence(fault_server, behaviour):
    server = fault_server(behaviour)
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=1, backoff_s=0)
    assert error_of(ask_guarded(qa)) == (
        f"The model server at {server.url}/v1/chat/completions closed the connection before it finished answering on "
        "2 tries; start it with `vllm serve m` or check reward.server_url.")
    assert server.requests == 2


@pytest.mark.parametrize("status, content_type, body, what", [
    ("200 OK", "text/html", b"<html><body>Sign in to the\n  proxy</body></html>",
     "'<html><body>Sign in to the proxy</body></html>'"),
    ("200 OK", "application/json", b'{"object": "chat.completion", "choices": []}',
     "'{\"object\": \"chat.completion\", \"choices\": []}'"),
    ("200 OK", "application/json", b'{"choices": [{"message": {"role": "assistant", "content": null}}]}',
     "'{\"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": null}}]}'"),
    ("200 OK", "application/octet-stream", b"\xff\xfe\x00\x01 binary", "'\ufffd\ufffd\\x00\\x01 binary'"),
    ("200 OK", "application/json", b"", "an empty body"),
    ("204 No Content", "application/json", b"", "an empty body"),
], ids=["html", "no_choices", "null_content", "binary", "empty", "204"])
def test_an_answer_that_is_no_chat_completion_is_one_sentence_at_once(fault_server, status, content_type, body, what):
    server = fault_server(reply(status, content_type, body))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=3, backoff_s=0)
    assert error_of(ask_guarded(qa)) == (
        f"The server at {server.url}/v1/chat/completions answered with something other than an OpenAI chat completion "
        f"({what}); point reward.server_url at an OpenAI-compatible server such as `vllm serve`.")
    assert server.requests == 1


def test_a_chat_completion_under_an_odd_content_type_is_still_an_answer(fault_server):
    server = fault_server(reply("200 OK", "text/plain; charset=latin-1", CHAT))
    assert ask_guarded(OpenAIVideoQA(server.url, "m", timeout_s=10)) == {"answer": ANSWER}


@pytest.mark.parametrize("status, content_type, body, detail", [
    ("500 Internal Server Error", "text/html", b"<h1>Internal\nServer Error</h1>", "<h1>Internal Server Error</h1>"),
    ("429 Too Many Requests", "application/json", b'{"error": {"message": "Rate limit reached", "code": 429}}',
     "Rate limit reached"),
    ("502 Bad Gateway", "text/plain", b"", "Bad Gateway"),
    ("503 Service Unavailable", "application/json", b"\xff not json", "\ufffd not json"),
], ids=["500_html", "429_json", "502_empty", "503_garbage"])
def test_server_failures_are_retried_then_one_sentence_with_the_servers_words(fault_server, status, content_type, body,
                                                                              detail):
    server = fault_server(reply(status, content_type, body))
    qa = OpenAIVideoQA(server.url, "m", timeout_s=10, retries=2, backoff_s=0)
    code = status.split()[0]
    assert error_of(ask_guarded(qa)) == (
        f"The model server at {server.url}/v1/chat/completions failed with HTTP {code} ({detail}) on 3 tries; start it "
        "with `vllm serve m` or check reward.server_url.")
    assert server.requests == 3


@pytest.mark.parametrize("timeout_s, retries, backoff_s", [(0, 1, 0), (float("nan"), 1, 0), (float("inf"), 1, 0),
                                                          (1, -1, 0), (1, 1, float("nan"))])
def test_bad_transport_settings_are_refused(timeout_s, retries, backoff_s):
    with pytest.raises(ValueError, match=r"^Need timeout_s > 0 \(finite\), retries >= 0 and backoff_s >= 0, got "):
        OpenAIVideoQA("http://127.0.0.1:9", "m", timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
