"""The short examples in the public docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import matbackprop

PACKAGES = ["validation", "linalg", "nn", "data", "metrics"]


def _modules():
    for name in PACKAGES:
        package = importlib.import_module(f"matbackprop.{name}")
        yield package.__name__
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), package.__name__ + "."):
            yield info.name


@pytest.mark.parametrize("module_name", sorted(set(_modules())))
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest failures in {module_name}"


def test_package_doc():
    assert "Matrix" in matbackprop.__doc__ or "matrix" in matbackprop.__doc__
