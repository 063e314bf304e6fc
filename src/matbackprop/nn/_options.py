"""What every layer's options dataclass shares: resolution against overrides, and ``repr``.

Each layer writes its options once, as a frozen dataclass deriving from :class:`LayerOptions`
and validated in ``__post_init__`` (as :class:`matbackprop.linalg.SpectralOptions`); its module
and its functional form both take ``options=`` plus the fields by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

T = TypeVar("T", bound="LayerOptions")


class LayerOptions:
    """Base of the layers' frozen option dataclasses (no fields of its own)."""

    def _set(self, name: str, value: object) -> None:
        """Store a validated (normalised, e.g. int → float) value in a frozen instance."""
        object.__setattr__(self, name, value)

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults, in field order."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) != f.default
        }

    @classmethod
    def resolve(
        cls: type[T],
        options: T | None,
        overrides: Mapping[str, Any],
        *,
        allowed: Iterable[str] | None = None,
    ) -> T:
        """``options`` (default ``cls()``) with the fields in ``overrides`` replaced.

        ``allowed`` restricts the override names: any other raises ``TypeError``, as Python does
        for an unexpected keyword argument.
        """
        if allowed is not None:
            unknown = sorted(set(overrides) - set(allowed))
            if unknown:
                raise TypeError(
                    f"unexpected keyword argument(s) {unknown}; this form takes {sorted(allowed)}"
                )
        if options is None:
            return cls(**overrides)
        if not isinstance(options, cls):
            raise ValueError(f"`options` must be a {cls.__name__}, got {type(options).__name__}")
        return replace(options, **overrides) if overrides else options  # type: ignore[type-var]


def options_repr(options: LayerOptions, first: str | None = None) -> list[str]:
    """``name=value`` for ``first`` (always) and every option that differs from its default."""
    changed = options.changed()
    parts = [f"{first}={getattr(options, first)!r}"] if first is not None else []
    for name, value in changed.items():
        if name != first:
            parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value!r}")
    return parts
