"""Griffe extension: the docstrings' Sphinx roles become cross-references on the site.

``:func:`ncuts_loss``` and ``:class:`~matbackprop.nn.PoolingOptions``` are resolved against the
public names of the API pages (each package's ``__all__``): a name is looked up in the
docstring's own package first, then in every public package. A resolved role becomes an
mkdocs-autorefs link, which the strict build checks; a role naming ``matbackprop.…`` that
resolves to nothing public is a warning, so the strict build fails on it. Anything else
(a private helper, a method of a non-public class) is shown as code. ``:math:`` becomes code.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from pathlib import Path
from typing import Any

import griffe

sys.path.insert(0, str(Path(__file__).parent))
from generate import API_PACKAGES  # noqa: E402  (the one list of the API pages)

_LOG = logging.getLogger("mkdocs.plugins.griffe_roles")
_ROLE = re.compile(r":(?:py:)?(func|class|mod|attr|meth|data|obj|exc|math):`([^`]+)`")


def _public_ids() -> tuple[dict[str, set[str]], set[str]]:
    """``{package: its public names}`` and every public dotted id (``matbackprop.nn.X``)."""
    names: dict[str, set[str]] = {}
    for package in API_PACKAGES:
        module = importlib.import_module(f"matbackprop.{package}")
        names[package] = {n for n in module.__all__ if not inspect.ismodule(getattr(module, n))}
    ids = {f"matbackprop.{p}.{n}" for p, ns in names.items() for n in ns}
    return names, ids


class SphinxRoles(griffe.Extension):
    def __init__(self) -> None:
        self.names, self.ids = _public_ids()

    def _resolve(self, target: str, home: str) -> str | None:
        if target in self.ids:
            return target
        head = target.split(".")[0]
        # the docstring's own package (longest match) first, then every public package
        order = sorted((p for p in self.names if home.startswith(f"matbackprop.{p}")),
                       key=len, reverse=True)
        order += [p for p in self.names if p not in order]
        for package in order:
            if head in self.names[package]:
                return f"matbackprop.{package}.{target}"
        if target.startswith("matbackprop."):
            parts = target.split(".")
            for i in range(len(parts) - 1, 2, -1):  # a member of a public object
                if ".".join(parts[:i]) in self.ids:
                    return target
        return None

    def _rewrite(self, text: str, home: str) -> str:
        def replace(match: re.Match[str]) -> str:
            role, body = match.groups()
            if role == "math":
                return f"`{body}`"
            label, _, explicit = body.partition(" <")
            target = explicit.rstrip(">") if explicit else body
            target = target.lstrip("~.").removesuffix("()")
            if not explicit:
                label = target.rsplit(".", 1)[-1] if body.startswith("~") else target
            if role == "mod":
                package = target.removeprefix("matbackprop.")
                if package in self.names:
                    return f"[`{label}`]({package}.md)"
                if package == "cli":
                    return f"[`{label}`](../cli.md)"
                if target.startswith("matbackprop.") and "._" not in target:
                    _LOG.warning("%s: :mod:`%s` is not a public package", home, target)
                return f"`{label}`"
            resolved = self._resolve(target, home)
            if resolved is None:
                if target.startswith("matbackprop.") and "._" not in target:
                    _LOG.warning("%s: `%s` names no public object", home, target)
                return f"`{label}`"
            return f"[`{label}`][{resolved}]"

        return _ROLE.sub(replace, text)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        stack: list[Any] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.is_alias:
                continue
            if obj.docstring is not None:
                obj.docstring.value = self._rewrite(obj.docstring.value, obj.path)
            stack.extend(obj.members.values())
