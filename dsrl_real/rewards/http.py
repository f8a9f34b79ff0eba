"""Ask a video question to an OpenAI-compatible server (e.g. `vllm serve teetone/RoboReward-4B`).

The request is what vLLM's OpenAI server accepts for Qwen3-VL video: one user message whose content
is the video first, as a `video_url` part holding a base64 `data:video/mp4` URL, then the text
prompt. The frames are encoded as an H.264 mp4 at the clip's fps, so the container carries the
timing that Qwen3-VL's processor turns into timestamps. vLLM's default video loader keeps every
frame of a clip of up to 32 frames (`--media-io-kwargs '{"video": {"num_frames": -1}}'` lifts that),
and Qwen3-VL's processor then samples at its configured rate (2 fps by default), so a subsampled
clip at <= 2 fps reaches the model as sent. Decoding is greedy (temperature 0).
"""

from __future__ import annotations

import base64
import io
from fractions import Fraction
from time import sleep
from typing import Any

import httpx
import numpy as np

from ..errors import UserError

MAX_TOKENS = 64  # RoboReward answers "ANSWER: <score>"; room for a short preamble


class VideoServerError(UserError, RuntimeError):
    """The model server could not answer (down, too slow, failing, or it rejected the request)."""


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
    from `backoff_s`, on connection errors, timeouts, 5xx and 429; any other 4xx fails at once."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 60.0, retries: int = 3,
                 api_key: str | None = None, *, max_tokens: int = MAX_TOKENS, backoff_s: float = 1.0):
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError(f"Need timeout_s > 0, retries >= 0 and backoff_s >= 0, got {timeout_s}, {retries}, "
                             f"{backoff_s}.")
        self.url = chat_completions_url(base_url)
        self.model, self.timeout_s, self.retries, self.max_tokens, self.backoff_s = (
            model, timeout_s, retries, max_tokens, backoff_s)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers)

    def request_body(self, frames: np.ndarray, fps: float, prompt: str) -> dict[str, Any]:
        video = base64.b64encode(encode_mp4(frames, fps)).decode("ascii")
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": [
                {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{video}"}},
                {"type": "text", "text": prompt},
            ]}],
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }

    def ask(self, frames: np.ndarray, fps: float, prompt: str) -> str:
        body = self.request_body(frames, fps, prompt)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                problem = f"did not answer within {self.timeout_s:g} s"
                continue
            except httpx.TransportError as err:  # refused, reset, DNS, protocol errors
                problem = f"could not be reached ({type(err).__name__}: {err})"
                continue
            if response.status_code >= 500 or response.status_code == 429:
                problem = f"failed with HTTP {response.status_code} ({_detail(response)})"
                continue
            if response.is_error:
                raise VideoServerError(
                    f"The model server at {self.url} rejected the request with HTTP {response.status_code} "
                    f"({_detail(response)}); check that it serves model '{self.model}' with video input "
                    f"(`vllm serve {self.model}`).")
            return self._content(response)
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

    def _content(self, response: httpx.Response) -> str:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise VideoServerError(f"The server at {self.url} answered with something other than an OpenAI chat "
                                   f"completion ({response.text[:200]!r}); point reward.server_url at an "
                                   "OpenAI-compatible server such as `vllm serve`.")
        return content


def _detail(response: httpx.Response) -> str:
    """The server's own error message (vLLM and OpenAI put it in `error.message` or `message`)."""
    try:
        data = response.json()
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    text = str(message or response.text or response.reason_phrase).strip()
    return " ".join(text.split())[:300]


def _check_frames(frames: np.ndarray, fps: float) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"Video frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} "
                         f"{frames.shape}.")
    if not fps > 0:
        raise ValueError(f"The video's fps must be positive, got {fps}.")
