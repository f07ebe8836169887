"""Strategy parameters: typed class attributes with defaults, bounds and choices.

A parameter is any annotated, public class attribute of a strategy::

    class SmaCross(Strategy):
        fast: int = 10
        slow: int = param(20, min=2, help="slow moving-average window")

Values given by name (``run(..., fast=5)`` or ``--param fast=5``) are converted
to the annotated type and checked against the bounds; an unknown name fails with
the valid names listed.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.errors import ParameterError, did_you_mean

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class Param:
    """Declaration of one parameter (use :func:`param` to create it)."""

    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    help: str = ""
    type: type | None = None
    name: str = ""

    def convert(self, value: Any, owner: str) -> Any:
        """Convert ``value`` (possibly a command-line string) and check its bounds."""
        kind = self.type or type(self.default)
        where = f"parameter {self.name!r} of {owner}"
        example = f"Example: --param {self.name}={self.default!r} (the default)."
        if value is None and self.default is None:
            return None
        try:
            converted = _convert(value, kind)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{where} must be {_type_name(kind)}; got {value!r}. {example}"
            ) from None
        if self.choices is not None and converted not in self.choices:
            raise ParameterError(
                f"{where} must be one of {', '.join(map(repr, self.choices))}; got {value!r}."
                + did_you_mean(converted, self.choices)
            )
        if self.min is not None and converted < self.min:
            raise ParameterError(f"{where} must be >= {self.min}; got {converted!r}. {example}")
        if self.max is not None and converted > self.max:
            raise ParameterError(f"{where} must be <= {self.max}; got {converted!r}. {example}")
        return converted


def param(default, *, min=None, max=None, choices=None, help="", type=None) -> Any:
    """Declare a strategy parameter with bounds or choices.

    Parameters
    ----------
    default : object
        Default value; its type is the parameter's type unless ``type`` is given
        or the attribute is annotated.
    min, max : float, optional
        Inclusive bounds for numeric parameters.
    choices : sequence, optional
        The allowed values.
    help : str
        One line shown by ``python -m engine params FILE``.
    """
    return Param(default, min, max, tuple(choices) if choices is not None else None, help, type)


def _type_name(kind) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        kind, getattr(kind, "__name__", str(kind))
    )


def _convert(value, kind):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            return int(value)
        return int(str(value).strip())
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    return kind(value)


def collect_params(cls) -> dict[str, Param]:
    """The parameters a strategy class declares, base classes first."""
    found: dict[str, Param] = {}
    for klass in reversed(cls.__mro__):
        annotations = klass.__dict__.get("__annotations__", {})
        for name, annotation in annotations.items():
            if name.startswith("_") or _is_classvar(annotation):
                continue
            if name not in klass.__dict__:
                shown = annotation if isinstance(annotation, str) else annotation.__name__
                raise ParameterError(
                    f"parameter {name!r} of {cls.__name__} has no default; "
                    f"write e.g. `{name}: {shown} = ...`"
                )
            raw = klass.__dict__[name]
            kind = _resolve_type(annotation, klass)
            if isinstance(raw, Param):
                spec = Param(raw.default, raw.min, raw.max, raw.choices, raw.help,
                             raw.type or kind, name)
            else:
                spec = Param(raw, type=kind, name=name)
            spec.convert(spec.default, cls.__name__)  # a bad default is the author's bug
            found[name] = spec
    return found


def _is_classvar(annotation) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


def _resolve_type(annotation, klass):
    if isinstance(annotation, str):
        return {"int": int, "float": float, "bool": bool, "str": str}.get(annotation)
    return annotation if annotation in (int, float, bool, str) else None


def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``given``, converted and checked."""
    specs = collect_params(cls)
    unknown = [name for name in given if name not in specs]
    if unknown:
        name = unknown[0]
        valid = ", ".join(specs) or "(none)"
        raise ParameterError(
            f"unknown parameter {name!r} for {cls.__name__}; valid parameters: {valid}."
            + did_you_mean(name, specs)
        )
    values = {name: spec.default for name, spec in specs.items()}
    for name, value in given.items():
        values[name] = specs[name].convert(value, cls.__name__)
    return values
