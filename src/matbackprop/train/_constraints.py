"""Constraints of config fields, written as the metadata of ``typing.Annotated``.

``Annotated[float, Range(gt=0)]``, ``Annotated[str, Pattern(regex, "a split name")]`` and
``Annotated[str, Check(parser, "'all' or 'last-<k>'")]`` are checked by the config validator
(:func:`~matbackprop.train.validate_fields`) on the converted value; ``None`` passes them, so
``Annotated[int | None, Range(ge=1)]`` reads "None or an int >= 1". A failed constraint raises
:class:`~matbackprop.errors.ConfigError` ``"`key` must be <description>, got <value>"``.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from matbackprop.errors import ConfigError

__all__ = ["Check", "Pattern", "Range"]


@dataclass(frozen=True)
class Range:
    """Bounds of a number, e.g. ``Annotated[float, Range(ge=0, lt=1)]`` for ``[0, 1)``.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from typing import Annotated
    >>> from matbackprop.train import Range, config_from_dict
    >>> @dataclass
    ... class Config:
    ...     dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    >>> config_from_dict(Config, {"dropout": 0.5}).dropout
    0.5
    >>> config_from_dict(Config, {"dropout": 1.0})
    Traceback (most recent call last):
    ...
    matbackprop.errors.ConfigError: `dropout` must be in [0, 1), got 1.0
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        low = (f"[{self.ge}", self.ge) if self.ge is not None else (f"({self.gt}", self.gt)
        high = (f"{self.le}]", self.le) if self.le is not None else (f"{self.lt})", self.lt)
        if low[1] is not None and high[1] is not None:
            return f"in {low[0]}, {high[0]}"
        if low[1] is not None:
            return f">= {self.ge}" if self.ge is not None else f"> {self.gt}"
        return f"<= {self.le}" if self.le is not None else f"< {self.lt}"

    def holds(self, value: Any) -> bool:
        return not (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        )


@dataclass(frozen=True)
class Pattern:
    """A string matching ``regex`` in full; ``description`` completes "must be ...".

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from typing import Annotated
    >>> from matbackprop.train import Pattern, config_from_dict
    >>> @dataclass
    ... class Config:
    ...     tag: Annotated[str, Pattern(r"[a-z]+", "lower-case letters")] = "run"
    >>> config_from_dict(Config, {"tag": "Run 1"})
    Traceback (most recent call last):
    ...
    matbackprop.errors.ConfigError: `tag` must be lower-case letters, got 'Run 1'
    """

    regex: str
    description: str

    def describe(self) -> str:
        return self.description

    def holds(self, value: Any) -> bool:
        return re.fullmatch(self.regex, value) is not None


@dataclass(frozen=True)
class Check:
    """Any rule: ``test(value)`` returns a falsy value or raises ``ValueError`` when ``value``
    is invalid (e.g. a parser of a small grammar); ``description`` completes "must be ...".

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from typing import Annotated
    >>> from matbackprop.train import Check, config_from_dict
    >>> @dataclass
    ... class Config:
    ...     size: Annotated[int, Check(lambda n: n % 2 == 0, "an even number")] = 2
    >>> config_from_dict(Config, {"size": 4}).size
    4
    >>> config_from_dict(Config, {"size": 3})
    Traceback (most recent call last):
    ...
    matbackprop.errors.ConfigError: `size` must be an even number, got 3
    """

    test: Callable[[Any], object]
    description: str

    def describe(self) -> str:
        return self.description

    def holds(self, value: Any) -> bool:
        try:
            return self.test(value) is not False
        except ValueError:
            return False


_CONSTRAINTS = (Range, Pattern, Check)


def split_annotated(tp: Any) -> tuple[Any, list[Any]]:
    """``Annotated[X, c1, c2]`` -> ``(X, [c1, c2])`` (constraints only); other types as is."""
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return base, [m for m in meta if isinstance(m, _CONSTRAINTS)]
    return tp, []


def check_constraints(value: Any, constraints: list[Any], key: str) -> None:
    if value is None:
        return
    for constraint in constraints:
        if not constraint.holds(value):
            raise ConfigError(f"`{key}` must be {constraint.describe()}, got {value!r}")
