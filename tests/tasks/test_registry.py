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
