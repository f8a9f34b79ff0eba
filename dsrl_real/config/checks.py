"""What one config field accepts, declared next to its default, and the one sentence that names what a
value breaks: `checked(default, "(0, 1]")` for numbers, text and list sizes; a `Literal` annotation for
the choices (`allowed_of` reads them off the annotation)."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration problem the user can fix; the message says how."""

    __module__ = "dsrl_real.config"  # its public home: tracebacks and pickles name dsrl_real.config.ConfigError


_ALLOWED = "dsrl_real.allowed"  # the key of a field's `Allowed` in its dataclass metadata
_END = {"inf": math.inf, "-inf": -math.inf, "pi": math.pi, "-pi": -math.pi}


@dataclass(frozen=True)
class Allowed:
    """What one field accepts. `interval` bounds a number (or each number of a list), written as in
    the error message: "(0, 1]", "[1, 1024]"; ends may be inf, -inf, pi or -pi; numbers must also be
    finite. `choices` lists the accepted values (of each entry of a list): a `Literal` annotation's;
    `nonempty` refuses ""; `length` / `min_length` bound a list's size. A field with none of these takes any text."""

    interval: str = ""
    choices: tuple = ()
    nonempty: bool = False
    length: int | None = None
    min_length: int = 0

    def __post_init__(self) -> None:
        if self.interval:
            self.bounds  # noqa: B018 - a malformed interval fails at import, not at the first check

    @functools.cached_property
    def bounds(self) -> tuple[float, float, bool, bool]:
        """(low, high, low included, high included)."""
        match = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", self.interval)
        if not match:
            raise ValueError(f"Malformed interval {self.interval!r}; write it as e.g. '(0, 1]'.")
        opening, low, high, closing = match.groups()
        low_v, high_v = (_END[s] if s in _END else float(s) for s in (low, high))
        return low_v, high_v, opening == "[", closing == "]"

    def contains(self, x: float) -> bool:
        low, high, low_in, high_in = self.bounds
        return (low < x or (low_in and x == low)) and (x < high or (high_in and x == high))


def checked(default: Any, interval: str = "", *, nonempty: bool = False, length: int | None = None, min_length: int = 0) -> Any:
    """A dataclass field with its default and what it accepts (see `Allowed`)."""
    allowed = Allowed(interval, (), nonempty, length, min_length)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={_ALLOWED: allowed})
    return field(default=default, metadata={_ALLOWED: allowed})


def _entry(hint: Any) -> Any:
    """The type of a list's entries, or the hint itself."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint


def plain_type(hint: Any) -> Any:
    """The hint with each `Literal` read as the type of its values: Literal["a", "b"] -> str, list[Literal[6, 15]] -> list[int]."""
    inner = _entry(hint)
    if typing.get_origin(inner) is not Literal:
        return hint
    (kind,) = {type(choice) for choice in typing.get_args(inner)}
    return list[kind] if inner is not hint else kind


def allowed_of(f: dataclasses.Field, hint: Any) -> Allowed | None:
    """What the field `f` (annotated `hint`) accepts: its `checked(...)` metadata, with a `Literal`'s values as the choices."""
    inner = _entry(hint)
    if typing.get_origin(inner) is Literal:
        return dataclasses.replace(f.metadata.get(_ALLOWED, Allowed()), choices=typing.get_args(inner))
    return f.metadata.get(_ALLOWED)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _number_problem(value: Any, kind: type, allowed: Allowed) -> str | None:
    """Why `value` is not a number of type `kind` (int or float) inside `allowed.interval`; None if it is."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or (kind is int and not isinstance(value, numbers.Integral)):
        return f"is not {'an integer' if kind is int else 'a number'}; it must be in {allowed.interval}"
    if not math.isfinite(value):
        return f"is not a finite number; it must be in {allowed.interval}"
    if not allowed.contains(value):
        return f"is out of range; it must be in {allowed.interval}"
    return None


def _scalar_problem(value: Any, kind: type, allowed: Allowed) -> str | None:
    if allowed.interval:
        return _number_problem(value, kind, allowed)
    if allowed.choices:
        return None if value in allowed.choices else f"is not allowed; it must be one of: {', '.join(map(str, allowed.choices))}"
    if not isinstance(value, str):
        return "is not text"
    if allowed.nonempty and not value.strip():
        return "is empty; it must be a non-empty string"
    return None


def choice_problem(key: str, value: Any, allowed: Allowed) -> str | None:
    """The sentence for a value (or one list entry) that is not one of `allowed.choices`, of the same type
    (as OmegaConf holds a `Literal`: 30.0 is not 30), naming its dotted key; None if it is one."""
    if any(type(value) is type(choice) and value == choice for choice in allowed.choices):
        return None
    return f"{key} = {_show(value)} is not allowed; it must be one of: {', '.join(map(str, allowed.choices))}."


def field_problem(key: str, value: Any, hint: Any, allowed: Allowed) -> str | None:
    """The sentence for the first thing wrong with one field's value, naming its dotted key; None if nothing is."""
    hint = plain_type(hint)
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            return f"{key} = {_show(value)} is not a list."
        if allowed.length is not None and len(value) != allowed.length:
            return f"{key} = {_show(value)} has {len(value)} entries; it must have exactly {allowed.length}."
        if len(value) < allowed.min_length:
            return f"{key} = {_show(value)} has {len(value)} entries; it must have at least {allowed.min_length}."
        (kind,) = typing.get_args(hint)
        for i, entry in enumerate(value):
            problem = _scalar_problem(entry, kind, allowed)
            if problem:
                return f"{key}[{i}] = {_show(entry)} {problem}."
        return None
    problem = _scalar_problem(value, hint, allowed)
    return f"{key} = {_show(value)} {problem}." if problem else None
