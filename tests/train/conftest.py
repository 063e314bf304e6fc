"""Fixtures for the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .train_helpers import TOY_SCRIPT


@pytest.fixture(scope="session")
def toy_script(tmp_path_factory) -> Path:
    """The standalone toy training script (see train_helpers.TOY_SCRIPT), written once."""
    path = tmp_path_factory.mktemp("script") / "toy_train.py"
    path.write_text(TOY_SCRIPT)
    return path
