"""Holding a fake to a real API's signatures, for every fake here: `RealAPI.spec_for` looks a call name up
among the stubs of an *_api.py file ('arm.set_ee_pose_components', 'Node.create_subscription', 'init'), and
`RealAPI.check_call` binds a call to a stub's signature, raising that API's mismatch error (a TypeError)
where the real code would reject the call."""

from __future__ import annotations

import functools
import inspect
import numbers
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np


def _number_kind(annotation) -> type | None:
    """float/int for parameters annotated as such (or Optional of them, also as text); None otherwise."""
    if isinstance(annotation, str):
        annotation = {"float": float, "int": int, "Optional[float]": Optional[float],
                      "Optional[int]": Optional[int]}.get(annotation, annotation)
    if annotation in (float, int):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Union and len(args) == 1 and args[0] in (float, int):
        return args[0]
    return None


def _is_scalar(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)) or (
        isinstance(value, np.ndarray) and value.ndim == 0)


def _describe(spec) -> str:
    return f"{spec.__qualname__}{inspect.signature(spec)}"


@dataclass(frozen=True)
class RealAPI:
    """The stubs of one real API and the error its fake raises for a call the real API would reject.

    `plain_numbers`: parameters annotated float or int (or Optional of them) must get a real scalar or
    None, never an array, a list or a bool (Interbotix and rclpy do arithmetic on them; launch takes
    substitutions there). `list_unknown_keywords`: name every unknown keyword argument at once, as a
    launch file's author wants to read it, instead of Python's first one."""

    name: str  # as the messages say it: "the real <name> API"
    error: type[TypeError]
    functions: Mapping[str, Callable] = field(default_factory=dict)
    owners: Mapping[str, type] = field(default_factory=dict)
    plain_numbers: bool = True
    list_unknown_keywords: bool = False

    def spec_for(self, call_name: str):
        """The real stub for a function ('init') or a method ('Node.create_subscription', 'bot.__init__')."""
        owner_name, _, method = call_name.rpartition(".")
        if not owner_name:
            if call_name not in self.functions:
                raise self.error(f"The real {self.name} API has no function '{call_name}'; it has: {', '.join(sorted(self.functions))}.")
            return self.functions[call_name]
        owner = self.owners.get(owner_name)
        if owner is None:
            raise self.error(f"'{owner_name}' is not part of the real {self.name} API (known: {', '.join(self.owners)}).")
        spec = next((vars(klass)[method] for klass in owner.__mro__ if method in vars(klass)), None)
        if spec is None or not callable(spec) or (method.startswith("_") and method != "__init__"):
            public = sorted({n for k in owner.__mro__[:-1] for n, v in vars(k).items()
                             if callable(v) and not n.startswith("_") and not isinstance(v, type)})
            raise self.error(f"The real {owner.__name__} has no public method '{method}'; it has: {', '.join(public)}.")
        return spec

    def check_call(self, spec, args=(), kwargs=None, name: str | None = None) -> inspect.BoundArguments:
        """Bind a call to the real signature `spec` (`args` exclude `self`), with its defaults applied; raise
        `self.error` where the real API would reject it. `name`: how the message names the call."""
        kwargs = kwargs or {}
        sig = inspect.signature(spec)
        params = list(sig.parameters.values())
        bind_args = (None, *args) if params and params[0].name == "self" else tuple(args)
        label = name or spec.__qualname__
        if self.list_unknown_keywords and not any(p.kind is p.VAR_KEYWORD for p in params):
            unknown = sorted(set(kwargs) - {p.name for p in params})
            if unknown:
                raise self.error(f"{label}(...) has no parameter {unknown} in the real API {_describe(spec)}.")
        try:
            bound = sig.bind(*bind_args, **kwargs)
        except TypeError as err:
            raise self.error(f"{label}(...) does not match the real API {_describe(spec)}: {err}.") from None
        for pname, value in bound.arguments.items() if self.plain_numbers else ():
            kind = _number_kind(sig.parameters[pname].annotation)
            if kind is not None and value is not None and not _is_scalar(value):
                raise self.error(
                    f"{label}(...): argument '{pname}' must be a number ({kind.__name__}) in the real API "
                    f"{_describe(spec)}, got {type(value).__name__} {value!r}."
                )
        bound.apply_defaults()
        return bound

    def method(self, record: Callable[[object, str, tuple, dict], None]):
        """A decorator for a fake's public method: validate each call (named '<_OWNER>.<method>') against the
        real signature, `record(instance, name, args, kwargs)` it, then run it."""

        def decorator(method):
            @functools.wraps(method)
            def wrapper(instance, *args, **kwargs):
                name = f"{instance._OWNER}.{method.__name__}"
                self.check_call(self.spec_for(name), args, kwargs, name=name)
                record(instance, name, args, kwargs)
                return method(instance, *args, **kwargs)

            return wrapper

        return decorator


class Checked:
    """A fake class whose unknown public attributes fail with the list of what the real class has
    (`_API`: the real API, `_OWNER`: the class's name there)."""

    _API: RealAPI
    _OWNER = ""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            self._API.spec_for(f"{self._OWNER}.{name}")
        except self._API.error as err:
            raise AttributeError(str(err)) from None
        raise NotImplementedError(f"The fake {self._OWNER} does not implement the real method '{name}'.")
