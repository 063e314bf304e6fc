"""Shared pytest fixtures: locating ../shared data (skipping with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from matbackprop.data import default_bsds_root, default_coco_root


@pytest.fixture(scope="session")
def bsds_root() -> Path:
    root = default_bsds_root()
    if root is None or not (root / "data").is_dir():
        pytest.skip(
            "BSDS500 not found: set MATBACKPROP_BSDS_ROOT or place the data in "
            "../shared/data/BSDS500"
        )
    return root


@pytest.fixture(scope="session")
def bsds_reference(bsds_root: Path) -> Path:
    ref = bsds_root / "reference" / "bench_fixture"
    if not ref.is_dir():
        pytest.skip(f"BSDS500 benchmark reference outputs not found at {ref}")
    return ref


@pytest.fixture(scope="session")
def coco_root() -> Path:
    root = default_coco_root()
    if root is None or not (root / "annotations").is_dir():
        pytest.skip(
            "coco-mini not found: set MATBACKPROP_COCO_ROOT or place the data in "
            "../shared/data/coco-mini"
        )
    return root
