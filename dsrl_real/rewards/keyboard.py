"""The human at the keyboard: the oracle reward that the papers compare learned rewards against.

Works in a plain terminal and over SSH, with no display server. The oracle puts its input terminal
in cbreak mode (single keypresses, no echo, Ctrl-C still interrupts) and restores it on `close()`
or at exit. The control loop calls `poll()` every step; it reads whatever keys are waiting without
blocking, so a key acts within one control period. Input that is not a terminal (a pipe, a file)
is read the same way, character by character, with whitespace skipped.

Keys during an episode (upper or lower case):
    s        success: the episode ends with reward 1 (score 5 on the 1-5 scale)
    f        failure: the episode ends; on the 1-5 scale the oracle then asks for a 1-4 progress score
    p        pause / resume (the loop holds the robot while paused)
    space, e EMERGENCY STOP: the widest key on the keyboard, and one next to the others
When no s or f was pressed, `score_episode` asks: s/f on the "binary" scale (reward 1/0), or a
score 1-5 on the "1-5" scale (reward (score - 1) / 4, success only at 5).
Keys pressed between episodes are dropped when the next one starts, except an emergency stop: one typed
while a question is open (SPACE is never an answer) stops the run when the next episode starts, before the
policy acts. `ask` puts one question with a deadline (verify-positives asks it about a reward model's labels:
verify.py). `start_episode(..., watch_only=True)`: a person watching a reward model's episode (verify-positives)
has pause and the emergency stop only; the model, not a key, labels it.
"""

from __future__ import annotations

import atexit
import enum
import os
import select
import sys
import termios
import time
import tty
from collections import deque
from typing import TextIO

from .base import EPISODE_SCORE, SUCCESS, EpisodeClip, EpisodeScore, ProgressScore

SCALES = ("binary", "1-5")
KEY_HELP = "s success, f failure, p pause/resume, SPACE or e EMERGENCY STOP, Ctrl-C quit"
WATCH_HELP = "p pause/resume, SPACE or e EMERGENCY STOP, Ctrl-C quit"
_IGNORED = "\r\n\t"


class HumanEvent(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    PAUSE = "pause"
    RESUME = "resume"
    ESTOP = "estop"


ENDS_EPISODE = frozenset({HumanEvent.SUCCESS, HumanEvent.FAILURE, HumanEvent.ESTOP})
_KEYS = {"s": HumanEvent.SUCCESS, "f": HumanEvent.FAILURE, " ": HumanEvent.ESTOP, "e": HumanEvent.ESTOP}
_ACKNOWLEDGE = {
    HumanEvent.SUCCESS: "[human] success noted",
    HumanEvent.FAILURE: "[human] failure noted",
    HumanEvent.PAUSE: "[human] PAUSED: press p to resume",
    HumanEvent.RESUME: "[human] resumed",
    HumanEvent.ESTOP: "[human] EMERGENCY STOP",
}


class KeyboardOracle:
    """Reward backend "human". `input_fd`: the keyboard (default: stdin if it is a terminal, else the
    controlling terminal /dev/tty, else stdin as it is); `output`: where instructions go (default stderr).
    With `close_fd` the oracle closes `input_fd` on `close()`."""

    name = "human"
    offers = frozenset({EPISODE_SCORE, SUCCESS})

    def __init__(self, input_fd: int | None = None, output: TextIO | None = None, scale: str = "binary", *,
                 close_fd: bool = False):
        if scale not in SCALES:
            raise ValueError(f"Unknown human-oracle scale {scale!r}; choose one of {list(SCALES)}.")
        self.scale = scale
        self.output = output if output is not None else sys.stderr
        self._fd, self._owns_fd = (input_fd, close_fd) if input_fd is not None else _default_input()
        self._saved_termios = None
        if os.isatty(self._fd):
            self._saved_termios = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd, termios.TCSANOW)
        atexit.register(self.close)
        self._closed = self._eof = False
        self.instruction = ""
        self.paused = False
        self._watch_only = False
        self._pending: deque[HumanEvent] = deque()
        self._keys: list[dict] = []  # every key of the current episode, with its time
        self._label: dict | None = None  # the first s/f key of the episode
        self._t0 = time.monotonic()

    # -- during the episode -------------------------------------------------------------------------
    def start_episode(self, instruction: str, watch_only: bool = False, drop_typed: bool = True) -> None:
        """Drops keys typed since the last episode (an emergency stop stays; `drop_typed` False: leaves them to be
        read) and prints the instructions. `watch_only`: s and f are not keys in this episode (a reward model labels it)."""
        stale = self._read_available() if drop_typed else ""
        estop = HumanEvent.ESTOP in self._pending or _has_estop(stale)
        self._pending = deque([HumanEvent.ESTOP] if estop else [])
        self._keys, self._label, self.paused, self._watch_only = [], None, False, watch_only
        self.instruction = instruction
        self._t0 = time.monotonic()
        self._say(f"\n[human] Episode: {instruction}\n[human] Keys: {self._help}")

    @property
    def _help(self) -> str:
        return WATCH_HELP if self._watch_only else KEY_HELP

    def poll(self) -> HumanEvent | None:
        """The next key event, or None; never blocks."""
        for char in self._read_available():
            self._on_key(char)
        return self._pending.popleft() if self._pending else None

    # -- at the end ---------------------------------------------------------------------------------
    def score_episode(self, clip: EpisodeClip) -> EpisodeScore:
        """The label a key gave during the episode (as polled), else the answer to a prompt (blocks until it
        comes; keys typed after the loop's last poll answer it)."""
        label = self._label
        if label is not None and (label["event"] is HumanEvent.SUCCESS or self.scale == "binary"):
            success = label["event"] is HumanEvent.SUCCESS
            return self._score(success, 5 if self.scale == "1-5" else None, "episode_key", label["key"], label["t"], [])
        instruction = clip.instruction or self.instruction
        if self.scale == "binary":
            valid = "sf"
            question = f"Episode over ({instruction}): did the robot succeed? Press s for success or f for failure."
            retry = "press s for success or f for failure."
        elif label is not None:  # failed by key: the score is 1-4
            valid = "1234"
            question = (f"You marked the episode a failure ({instruction}): score the robot's progress from "
                        "1 (none) to 4 (nearly done) by pressing 1, 2, 3 or 4.")
            retry = "press 1, 2, 3 or 4."
        else:
            valid = "12345"
            question = (f"Episode over ({instruction}): score the robot's progress: 1 no progress, 2 some, "
                        "3 about half, 4 nearly done, 5 complete success. Press 1-5.")
            retry = "press 1, 2, 3, 4 or 5."
        answer, t, typed = self._ask(question, valid, retry)
        if self.scale == "binary":
            return self._score(answer == "s", None, "prompt", answer, t, typed)
        return self._score(answer == "5", int(answer), "prompt", answer, t, typed)

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        raise NotImplementedError("The human oracle gives no per-frame progress; use its keys (poll) for success "
                                  "and score_episode for the episode's label.")

    def close(self) -> None:
        """Restores the terminal's settings (idempotent; also runs at interpreter exit)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            if self._saved_termios is not None:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_termios)
        finally:
            if self._owns_fd:
                os.close(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------------
    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def _read_available(self, timeout: float | None = 0.0, size: int = 1024) -> str:
        if self._eof or self._closed:
            return ""
        if not select.select([self._fd], [], [], timeout)[0]:
            return ""
        try:
            data = os.read(self._fd, size)
        except OSError:  # EIO: the terminal went away
            data = b""
        if not data:
            self._eof = True
        return data.decode("latin-1")

    def _on_key(self, char: str) -> None:
        if char in _IGNORED:
            return
        key = char.lower()
        event = _KEYS.get(key)
        if self._watch_only and event in (HumanEvent.SUCCESS, HumanEvent.FAILURE):
            event = None
        if key == "p":
            event = HumanEvent.RESUME if self.paused else HumanEvent.PAUSE
            self.paused = not self.paused
        t = self._now()
        self._keys.append({"key": char, "t": t, "event": event.value if event else None})
        if event is None:
            self._say(f"[human] {char!r} is not a key here: {self._help}")
            return
        if event in (HumanEvent.SUCCESS, HumanEvent.FAILURE) and self._label is None:
            self._label = {"event": event, "key": char, "t": t}
        self._pending.append(event)
        self._say(_ACKNOWLEDGE[event])

    def ask(self, question: str, valid: str, retry: str, timeout_s: float | None = None) -> tuple[str | None, list[dict]]:
        """Print `question` and wait for one of the keys in `valid` (answered lower-cased), at most `timeout_s`
        seconds (None: no limit): (the key, or None when the time ran out first; every key typed meanwhile)."""
        self._say(f"[human] {question}")
        typed: list[dict] = []
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None, typed
            char = self._read_available(timeout=remaining, size=1)
            if not char:
                if self._eof or self._closed or remaining is None:
                    raise EOFError("The human oracle's input closed before the episode was labelled; run it with a "
                                   "keyboard attached or choose another reward backend.")
                continue  # the time ran out; the loop's check says so
            if char in _IGNORED:
                continue
            if _has_estop(char) and char.lower() not in valid:
                self._note_estop_between_episodes(char)
                continue
            typed.append({"key": char, "t": self._now()})
            if char.lower() in valid:
                return char.lower(), typed
            self._say(f"[human] {char!r} is not an answer: {retry}")

    def discard_typed(self) -> str:
        """Drop the keys typed so far and not yet read (an answer must come after its question), but not an
        emergency stop among them; returns them."""
        dropped = ""
        while chunk := self._read_available():
            dropped += chunk
        estop = next((c for c in dropped if _has_estop(c)), None)
        if estop is not None:
            self._note_estop_between_episodes(estop)
        return dropped

    def _note_estop_between_episodes(self, char: str) -> None:
        """An emergency stop typed while no episode runs: the next episode's first poll stops the robot."""
        if HumanEvent.ESTOP not in self._pending:
            self._pending.append(HumanEvent.ESTOP)
        self._keys.append({"key": char, "t": self._now(), "event": HumanEvent.ESTOP.value})
        self._say("[human] EMERGENCY STOP: the run stops before the next episode starts, before the policy acts "
                  "(answer an open question first, or press Ctrl-C to end the run now).")

    def _ask(self, question: str, valid: str, retry: str) -> tuple[str, float, list[dict]]:
        answer, typed = self.ask(question, valid, retry)
        return answer, typed[-1]["t"], typed

    def _score(self, success: bool, score: int | None, source: str, answer: str, t: float,
               typed: list[dict]) -> EpisodeScore:
        reward = float(success) if score is None else (score - 1) / 4
        raw = {"scale": self.scale, "source": source, "answer": answer, "t": t, "episode_keys": list(self._keys),
               "prompt_keys": typed}
        self._say(f"[human] labelled: {'success' if success else 'failure'}"
                  + (f", score {score}" if score is not None else ""))
        return EpisodeScore(reward=reward, success=success, score=score, raw=raw)

    def _say(self, text: str) -> None:
        self.output.write(text + "\n")
        self.output.flush()


def _has_estop(typed: str) -> bool:
    return any(_KEYS.get(c.lower()) is HumanEvent.ESTOP for c in typed)


def _default_input() -> tuple[int, bool]:
    """stdin if it is a terminal, else the controlling terminal, else stdin as it is (a pipe or file)."""
    try:
        stdin = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        stdin = None
    if stdin is not None and os.isatty(stdin):
        return stdin, False
    try:
        return os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY), True
    except OSError:
        if stdin is None:
            raise RuntimeError("The human oracle has no keyboard: run it in a terminal (locally or over SSH) or "
                               "pass input_fd.") from None
        return stdin, False
