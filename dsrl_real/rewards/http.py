"""Ask a video question to an OpenAI-compatible server (e.g. `vllm serve teetone/RoboReward-4B`).

The request is what vLLM's OpenAI server accepts for Qwen3-VL video: one user message whose content is the video
first, as a `video_url` part holding a base64 `data:video/mp4` URL, then the text prompt. The frames are encoded as
an H.264 mp4 at the clip's fps, so the container carries the timing that Qwen3-VL turns into timestamps. Decoding
is greedy (temperature 0) with RoboReward's answer budget.

The clip reaches the model frame for frame, as in the in-process transport:
- vLLM's video loader keeps every frame of a clip of up to 32 frames and then marks it `do_sample_frames=True`
  (`"do_sample_frames": valid_num_frames == total_frames_num`, OpenCVVideoBackend.load_bytes in
  vllm/multimodal/video.py), which makes Qwen3-VL's processor resample it to 2 fps: 16 frames at 5 Hz would reach
  the model as about 6. The request's top-level `mm_processor_kwargs` ("Additional kwargs to pass to the HF
  processor", ChatCompletionRequest in vllm/entrypoints/openai/protocol.py) overrides that flag
  (Qwen3VLMultiModalProcessor._call_hf_processor in vllm/model_executor/models/qwen3_vl.py uses the loader's flag
  only when the request does not set one), so every request sends `{"do_sample_frames": false}`. Nothing else is
  needed for the timestamps: without resampling they are the loader's frame indices over the container's fps
  (Qwen3VLProcessingInfo._get_video_second_idx, same file), i.e. the subsampled clip's own times.
  A clip of more than 32 frames is still cut to 32 by the loader (`--media-io-kwargs '{"video": {"num_frames": -1}}'`
  on the server lifts that).
- Qwen3-VL encodes frames in pairs and its processor rejects a one-frame clip, so that frame is sent twice
  (roboreward.pad_to_temporal_patch, the same padding as the in-process transport).

Every try has a total deadline of `timeout_s` (connect, upload, wait and the whole answer; httpx's own timeouts
bound each read only, so a server that drips a byte a second would never time out) and the answer is read as a
stream and refused past `max_answer_bytes`, so a broken server costs at most the deadline and a few MB.
"""

from __future__ import annotations

import base64
import io
import json
import math
import socket
import threading
from fractions import Fraction
from time import sleep
from typing import Any

import httpx
import numpy as np

from ..errors import UserError
from .roboreward import MAX_NEW_TOKENS, pad_to_temporal_patch

MAX_TOKENS = MAX_NEW_TOKENS
MAX_ANSWER_BYTES = 4 * 2**20  # a chat completion of 128 tokens is a few kB


class VideoServerError(UserError, RuntimeError):
    """The model server could not answer (down, too slow, failing, or it rejected the request)."""


class _DeadlinePassed(Exception):
    pass


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """(T, H, W, 3) uint8 frames -> H.264 mp4 bytes at `fps` (odd sizes are padded by one edge pixel)."""
    import av

    frames = np.asarray(frames)
    _check_frames(frames, fps)
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420p needs even sizes
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "17"}  # visually lossless: the reward model judges small objects
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def chat_completions_url(base_url: str) -> str:
    """`http://host:8000`, `.../` or `.../v1` -> `http://host:8000/v1/chat/completions`."""
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"The model server URL {base_url!r} must start with http:// or https://, "
                         "e.g. http://localhost:8000.")
    url = url.removesuffix("/v1")
    return f"{url}/v1/chat/completions"


class OpenAIVideoQA:
    """`VideoQuestion` over HTTP. `retries` more tries follow a failed first one, with exponential backoff
    from `backoff_s`, on connection errors, deadlines, 5xx and 429; any other 4xx, an answer over
    `max_answer_bytes` and an answer that is no chat completion fail at once."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 60.0, retries: int = 3,
                 api_key: str | None = None, *, max_tokens: int = MAX_TOKENS, backoff_s: float = 1.0,
                 max_answer_bytes: int = MAX_ANSWER_BYTES):
        if not (0 < timeout_s < math.inf and retries >= 0 and 0 <= backoff_s < math.inf and max_answer_bytes > 0):
            raise ValueError(f"Need timeout_s > 0 (finite), retries >= 0 and backoff_s >= 0, got {timeout_s}, "
                             f"{retries}, {backoff_s}.")
        self.url = chat_completions_url(base_url)
        self.model, self.timeout_s, self.retries, self.max_tokens, self.backoff_s = (
            model, timeout_s, retries, max_tokens, backoff_s)
        self.max_answer_bytes = max_answer_bytes
        headers = {"Accept-Encoding": "identity", "Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # No keep-alive: each try opens its own connection, so its deadline can shut that connection.
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers,
                                    limits=httpx.Limits(max_keepalive_connections=0))

    def request_body(self, frames: np.ndarray, fps: float, prompt: str) -> dict[str, Any]:
        _check_frames(np.asarray(frames), fps)
        frames, _ = pad_to_temporal_patch(frames)
        video = base64.b64encode(encode_mp4(frames, fps)).decode("ascii")
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": [
                {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{video}"}},
                {"type": "text", "text": prompt},
            ]}],
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            "mm_processor_kwargs": {"do_sample_frames": False},  # the clip is already subsampled: keep every frame
        }

    def ask(self, frames: np.ndarray, fps: float, prompt: str) -> str:
        body = json.dumps(self.request_body(frames, fps, prompt)).encode()
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                status, reason, data = self._exchange(body)
            except (_DeadlinePassed, httpx.TimeoutException):
                problem = f"did not answer within {self.timeout_s:g} s"
                continue
            except httpx.ConnectError as err:  # refused, DNS
                problem = f"could not be reached ({type(err).__name__}: {_one_line(str(err))})"
                continue
            except httpx.TransportError:  # reset, closed early, protocol errors
                problem = "closed the connection before it finished answering"
                continue
            if status >= 500 or status == 429:
                problem = f"failed with HTTP {status} ({_detail(data, reason)})"
                continue
            if status >= 400:
                raise VideoServerError(
                    f"The model server at {self.url} rejected the request with HTTP {status} "
                    f"({_detail(data, reason)}); check that it serves model '{self.model}' with video input "
                    f"(`vllm serve {self.model}`).")
            return self._content(data)
        tries = self.retries + 1
        raise VideoServerError(
            f"The model server at {self.url} {problem} on {tries} {'try' if tries == 1 else 'tries'}; start it "
            f"with `vllm serve {self.model}` or check reward.server_url.")

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _exchange(self, body: bytes) -> tuple[int, str, bytes]:
        """One try: (status, reason phrase, answer bytes), within the deadline and the size cap."""
        with _Deadline(self.timeout_s) as deadline:
            try:
                with self._client.stream("POST", self.url, content=body,
                                         extensions={"trace": deadline.trace}) as response:
                    declared = response.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > self.max_answer_bytes:
                        raise self._too_large()
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.max_answer_bytes:
                            raise self._too_large()
                        if deadline.expired.is_set():
                            raise _DeadlinePassed
                        chunks.append(chunk)
                    return response.status_code, response.reason_phrase, b"".join(chunks)
            except httpx.TransportError:
                if deadline.expired.is_set():
                    raise _DeadlinePassed from None
                raise

    def _too_large(self) -> VideoServerError:
        return VideoServerError(
            f"The model server at {self.url} sent an answer larger than {_size(self.max_answer_bytes)}, far more than a "
            f"chat completion; point reward.server_url at an OpenAI-compatible server such as `vllm serve {self.model}`.")

    def _content(self, data: bytes) -> str:
        try:
            content = json.loads(data)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise VideoServerError(f"The server at {self.url} answered with something other than an OpenAI chat "
                                   f"completion ({_snippet(data)}); point reward.server_url at an OpenAI-compatible "
                                   "server such as `vllm serve`.")
        return content


class _Deadline:
    """Shuts the try's connection when its time is up, which ends any read or write under way. httpx's timeouts
    bound each network operation, not the exchange; the socket comes from httpcore's `trace` request extension
    (event `connection.connect_tcp.complete`, whose `return_value` is the network stream)."""

    def __init__(self, seconds: float):
        self.expired = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            with self._lock:
                self._socket = info["return_value"].get_extra_info("socket")
            if self.expired.is_set():
                self._shut()

    def _expire(self) -> None:
        self.expired.set()
        self._shut()

    def _shut(self) -> None:
        with self._lock:
            sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass


def _detail(data: bytes, reason: str) -> str:
    """The server's own error message (vLLM and OpenAI put it in `error.message` or `message`)."""
    try:
        payload = json.loads(data)
        error = payload.get("error", payload)
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    text = str(message or data.decode("utf-8", "replace") or reason)
    return _one_line(text)[:300]


def _snippet(data: bytes) -> str:
    if not data.strip():
        return "an empty body"
    return repr(_one_line(data.decode("utf-8", "replace"))[:80])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def _check_frames(frames: np.ndarray, fps: float) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"Video frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} "
                         f"{frames.shape}.")
    if not 0 < fps < math.inf:
        raise ValueError(f"The video's fps must be positive and finite, got {fps}.")
