"""The layout shows the architecture: a test checks each layer imports only what is below it,
that leaves stay leaves, and that the public surfaces do not change by accident."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "matbackprop"

# sub-package -> the matbackprop sub-packages it may import
ALLOWED = {
    "linalg": set(),
    "nn": {"linalg"},
    "data": set(),
    "metrics": set(),
    "models": {"linalg", "nn", "data"},
    "train": {"data"},
    "cli": {"linalg", "nn", "data", "metrics", "models", "train"},
}


def _imported_subpackages(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = len(path.relative_to(SRC).parts) - 1  # folders below matbackprop/
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level <= depth:
                    continue  # relative import inside the same sub-package
                names = [node.module or ""]
                names = ["matbackprop." + n if n else "matbackprop" for n in names]
                if node.module is None:
                    names = ["matbackprop." + a.name for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "matbackprop" and len(parts) > 1 and parts[1] != package:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layering(package):
    folder = SRC / package
    if not folder.is_dir():
        pytest.skip(f"{package} not present")
    bad = {}
    for path in folder.rglob("*.py"):
        extra = _imported_subpackages(path, package) - ALLOWED[package]
        if extra:
            bad[str(path.relative_to(SRC))] = sorted(extra)
    assert not bad, f"{package} imports layers it must not: {bad}"


@pytest.mark.parametrize("package", ["linalg", "nn", "data", "metrics"])
def test_import_is_light(package):
    """Importing a sub-package does not pull scikit-image, pycocotools, scipy or PIL."""
    code = (
        f"import sys, matbackprop.{package}; "
        "print(','.join(m for m in ('skimage', 'pycocotools', 'scipy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


PUBLIC_LINALG = {
    "DegeneracyPolicy",
    "ScalarFunction",
    "SpectralOptions",
    "default_dd_rtol",
    "default_rtol",
    "eigh",
    "expm",
    "first_divided_differences",
    "invsqrtm",
    "invsqrtm_newton_schulz",
    "logm",
    "powm",
    "projector",
    "spectral_function",
    "sqrtm",
    "sqrtm_newton_schulz",
    "svd",
}


def test_public_linalg_surface_snapshot():
    linalg = importlib.import_module("matbackprop.linalg")
    assert set(linalg.__all__) == PUBLIC_LINALG
    for name in linalg.__all__:
        assert getattr(linalg, name).__doc__, f"{name} has no docstring"


def test_implementation_modules_are_private():
    for folder in ("linalg", "nn", "data", "metrics"):
        for path in (SRC / folder).glob("*.py"):
            assert path.name == "__init__.py" or path.name.startswith("_"), path
