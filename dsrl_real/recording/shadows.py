"""Shadow mode (reward.shadow): more backends label every finished episode, each on its own worker
thread, without touching rewards or episode ends. A failing one is recorded as an invalid label
with its error and logged, once per distinct error; the run goes on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..rewards.base import EpisodeClip, RewardBackend
from ..rewards.registry import BACKENDS
from ..rewards.scoring import BackgroundScorer
from .labels import label_name, shadow_labels

log = logging.getLogger("dsrl_real.train.trainer")


class ShadowScorers:
    """Backends that label every finished episode next to the primary one, each on its own worker
    thread; they never touch rewards or episode ends."""

    def __init__(self, backends: Sequence[RewardBackend]):
        self.backends = list(backends)
        self._scorers = [BackgroundScorer(b) for b in self.backends]
        self._logged: dict[str, str] = {}

    @classmethod
    def from_config(cls, cfg: Config, primary: RewardBackend, build: Callable[..., RewardBackend]) -> ShadowScorers:
        names = list(cfg.reward.shadow)
        unknown = [n for n in names if n not in BACKENDS]
        if unknown:
            raise ConfigError(f"Unknown reward.shadow backend(s) {', '.join(unknown)}; choose from: {', '.join(BACKENDS)}.")
        if names and not cfg.train.record:
            raise ConfigError("reward.shadow labels go into the recording; set train.record=true or leave reward.shadow empty.")
        backends: list[RewardBackend] = []
        try:
            for name in names:
                backends.append(build(cfg, name=name))
            labels = [label_name(primary)] + [label_name(b) for b in backends]
            twice = sorted({n for n in labels if labels.count(n) > 1})
            if twice:
                raise ConfigError(f"reward.shadow would label every episode twice as {', '.join(twice)}; name each backend "
                                  f"once, and not both as reward.backend ({cfg.reward.backend}) and as a shadow.")
        except BaseException:
            cls(backends).close()
            raise
        return cls(backends)

    @property
    def names(self) -> list[str]:
        return [label_name(b) for b in self.backends]

    def submit(self, frames: Mapping[str, list], truth: Sequence, instruction: str, fps: float) -> dict[str, Future]:
        """Start every shadow backend's label of one finished episode; each future gives a label dict."""
        return {label_name(b): scorer.submit(self._label, b, frames, truth, instruction, fps)
                for b, scorer in zip(self.backends, self._scorers)}

    def _label(self, backend: RewardBackend, frames: Mapping[str, list], truth: Sequence, instruction: str,
               fps: float) -> dict[str, Any]:
        clip = EpisodeClip(frames={c: np.stack(f) for c, f in frames.items()}, instruction=instruction, fps=fps,
                           truth=tuple(truth))
        label = shadow_labels([backend], clip)[backend.name]
        error = label.get("error")
        if error and self._logged.get(backend.name) != error:
            self._logged[backend.name] = error
            log.warning(f"Shadow backend {backend.name} failed ({error}); its labels are recorded as invalid and the run goes on.")
        return label

    def close(self) -> None:
        """Finish the queued labels, then release the backends."""
        for scorer in self._scorers:
            scorer.close()
        for backend in self.backends:
            if hasattr(backend, "close"):
                backend.close()
