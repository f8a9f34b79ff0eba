"""What the learned reward backends share to load a Hugging Face model: lazy torch / transformers imports,
checkpoint location (local directory or Hub id), device choice, and the UserError a model that cannot be loaded raises."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from ..config import ConfigError
from ..errors import MissingExtraError, UserError

INSTALL_HINT = 'pip install -e ".[rewards]"'  # the default install has no torch
_KEEP_ALIVE: list = []  # torch.library registrations made here live as long as the process


class RewardModelError(UserError, OSError):
    """A reward model, or a part of it such as its processor, that cannot be found or loaded as it is."""


class RewardModelNotFoundError(RewardModelError, FileNotFoundError):
    """A local model folder that does not exist."""


def import_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError(f"The learned reward backends need PyTorch, torchvision and transformers: {INSTALL_HINT}.") from exc
    return torch


def import_transformers() -> ModuleType:
    """transformers, after torchvision (its Qwen3-VL video processor needs it) is importable on this torch."""
    torch = import_torch()
    _import_torchvision(torch)
    try:
        import transformers
    except ImportError as exc:
        raise MissingExtraError(f"The learned reward backends need transformers (>= 4.57, with Qwen3-VL): {INSTALL_HINT}.") from exc
    return transformers


def _import_torchvision(torch: ModuleType) -> None:
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(f"The learned reward backends need torchvision for Qwen3-VL's video processor: {INSTALL_HINT}.") from exc
    except RuntimeError as exc:
        # A CUDA torchvision wheel on a CPU-only torch build cannot load its compiled ops (libtorch_cuda is absent)
        # and then fails at import on its unguarded fake-kernel registration for torchvision::nms. transformers only
        # uses the pure-Python transforms, so declaring the two op schemas lets the import finish; the ops themselves
        # stay unavailable, exactly as torchvision intends when its extension cannot load.
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "FRAGMENT")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP_ALIVE.append(library)
        import torchvision  # noqa: F401


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else is passed to torch as is."""
    torch = import_torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise ConfigError(f"reward.device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"reward.device={device!r} was asked for, but PyTorch sees no CUDA GPU here; use 'cpu' or 'auto'.")
    return device


def default_dtype(device: str):
    torch = import_torch()
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def looks_like_path(name: str) -> bool:
    """Whether `name` is meant as a local folder rather than a Hub id (owner/name)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or Path(name).exists()


def resolve_checkpoint(name: str) -> str:
    """A local checkpoint directory for `name`: the directory itself, or the Hub snapshot (cached or downloaded)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if looks_like_path(name):
        raise RewardModelNotFoundError(f"No model directory at {name}: pass a checkpoint directory (config.json and "
                                       "*.safetensors) or a Hugging Face Hub id.")
    import_transformers()
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name)
    except Exception as exc:  # offline, unknown repo, gated, Hub down: all end the same way for the user
        raise RewardModelError(f"{name!r} is neither a local model directory nor a model this machine can get from the "
                               f"Hugging Face Hub or its cache ({first_line(exc)}); download it where there is network "
                               "access and pass its directory instead.") from exc


def first_line(exc: BaseException) -> str:
    """An exception's first message line, to quote inside one of our sentences."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
