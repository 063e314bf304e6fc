"""The task registry describes each task as the task module itself does."""

from __future__ import annotations

import importlib

import pytest

from matbackprop.tasks import TASKS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_registry_description_starts_the_module_description(name):
    # the registry's line (for --help, without importing the task) may add a parenthesis
    module = importlib.import_module(TASKS[name].module)
    registered = TASKS[name].description
    assert registered.startswith(module.DESCRIPTION), (registered, module.DESCRIPTION)


def test_lazy_names_agree_with_their_type_checking_imports():
    """matbackprop.tasks lists its lazy names twice (``_LAZY`` and the ``TYPE_CHECKING``
    imports for type checkers): the two lists must name the same modules and objects, and
    every lazy name must resolve."""
    import ast
    import inspect

    import matbackprop.tasks as tasks

    tree = ast.parse(inspect.getsource(tasks))
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1
                imported.update({alias.name: stmt.module for alias in stmt.names})
    assert imported == tasks._LAZY
    for name in tasks._LAZY:
        assert name in tasks.__all__
        assert getattr(tasks, name).__name__ == name
