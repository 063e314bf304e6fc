"""The layout shows the architecture. These tests check, on the source files:

- the floors: each sub-package imports only the sub-packages below it
  (``linalg`` -> ``nn`` -> ``models`` / ``train`` -> ``tasks`` -> ``cli``; ``data`` and ``metrics``
  are leaves);
- the foundation: ``errors`` and ``validation`` may be imported by everyone and import nothing of
  matbackprop but each other (``errors`` not even torch);
- privacy: no module imports another sub-package's private (``_``-prefixed) module;
- that the public surfaces do not change by accident.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "matbackprop"

FOUNDATION = {"errors", "validation"}

# sub-package -> the matbackprop sub-packages it may import (the foundation comes on top)
ALLOWED = {
    "linalg": set(),
    "nn": {"linalg"},
    "data": set(),
    "metrics": set(),
    "models": {"linalg", "nn", "data"},
    "train": set(),
    "tasks": {"linalg", "nn", "data", "metrics", "models", "train"},
    "cli": {"tasks", "train"},
}


def _imports(path: Path, text: str | None = None) -> list[tuple[str, str | None]]:
    """``(module, name)`` of every import of matbackprop in the source file ``path`` (or in
    ``text`` placed there), relative ones resolved (``name`` is the imported attribute of a
    ``from`` import, else None)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text)
    package = ["matbackprop", *path.relative_to(SRC).parts[:-1]]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(module, a.name) for a in node.names]
    return [(m, n) for m, n in found if m == "matbackprop" or m.startswith("matbackprop.")]


def _target(module: str, name: str | None) -> list[str]:
    """The dotted parts below ``matbackprop`` that an import reaches."""
    parts = module.split(".")[1:]
    return parts + [name] if name is not None and name != "*" else parts


def _sources(folder: str) -> list[Path]:
    path = SRC / folder
    return sorted(path.rglob("*.py")) if path.is_dir() else [SRC / f"{folder}.py"]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layering(package):
    if not (SRC / package).is_dir():
        pytest.skip(f"{package} not present")
    bad = {}
    for path in _sources(package):
        reached = {_target(m, n)[0] for m, n in _imports(path) if _target(m, n)}
        extra = reached - ALLOWED[package] - FOUNDATION - {package}
        if extra:
            bad[str(path.relative_to(SRC))] = sorted(extra)
    assert not bad, f"{package} imports floors it must not: {bad}"


@pytest.mark.parametrize("module", sorted(FOUNDATION))
def test_foundation_imports_only_torch_stdlib_and_itself(module):
    paths = [p for p in _sources(module) if p.exists()]
    if not paths:
        pytest.skip(f"{module} not present")
    for path in paths:
        reached = {_target(m, n)[0] for m, n in _imports(path) if _target(m, n)}
        assert reached <= FOUNDATION, f"{path.name} imports {sorted(reached - FOUNDATION)}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names}
        top |= {n.module.split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        third_party = top - set(sys.stdlib_module_names) - {"torch", "matbackprop"}
        assert not third_party, f"{path.name} imports {sorted(third_party)}"
    code = f"import sys, matbackprop.{module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    if module == "errors":
        assert out.stdout.strip() == "False", "matbackprop.errors must not import torch"


def test_no_module_imports_another_packages_private_module():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        own = path.relative_to(SRC).parts[0].removesuffix(".py")
        for module, name in _imports(path):
            parts = _target(module, name)
            if parts and parts[0] != own and any(p.startswith("_") for p in parts):
                bad.append(f"{path.relative_to(SRC)}: {module}{'.' + name if name else ''}")
    assert not bad, "imports of other packages' private modules:\n" + "\n".join(bad)


def test_the_import_checks_can_fail():
    """The checker above sees every spelling of an import of another floor's private module."""
    text = (
        "from matbackprop.data._bsds import BSDS500\nfrom ..data import _coco\n"
        "import matbackprop.train._trainer\nfrom ._deep_ncuts import DeepNCuts\n"
    )
    imports = _imports(SRC / "models" / "_probe.py", text)
    assert [_target(m, n) for m, n in imports] == [
        ["data", "_bsds", "BSDS500"],
        ["data", "_coco"],
        ["train", "_trainer"],
        ["models", "_deep_ncuts", "DeepNCuts"],  # its own floor: allowed
    ]


@pytest.mark.parametrize("package", ["linalg", "nn", "data", "metrics", "errors", "tasks", "cli"])
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
    "EighResult",
    "SVDResult",
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


PUBLIC_UPPER = {
    "errors": {"ConfigError", "DataFileError"},
    "models": {
        "DEFAULT_TAPS",
        "EFFICIENTNET_LITE_NORMALIZATION",
        "IGNORE_INDEX",
        "IMAGENET_NORMALIZATION",
        "ClassicLabNCuts",
        "ClassicNCuts",
        "DeepNCuts",
        "EfficientNetLite0Backbone",
        "FrozenTapFeatures",
        "Hierarchy",
        "HypercolumnEncoder",
        "HypercolumnNCuts",
        "ImageNormalization",
        "NodeHead",
        "RegionClassifier",
        "UCMDecoder",
        "VGGTrunk",
        "bach_jordan_objective",
        "local_objective",
        "node_targets",
        "parse_trainable",
        "region_weights",
        "spectral_edge_objective",
    },
}


@pytest.mark.parametrize("package", sorted(PUBLIC_UPPER))
def test_public_upper_surface_snapshot(package):
    module = importlib.import_module(f"matbackprop.{package}")
    assert set(module.__all__) == PUBLIC_UPPER[package]
    for name in module.__all__:
        assert hasattr(module, name), name


def test_implementation_modules_are_private():
    for folder in ("linalg", "nn", "data", "metrics", "models", "train"):
        for path in (SRC / folder).glob("*.py"):
            assert path.name == "__init__.py" or path.name.startswith("_"), path
