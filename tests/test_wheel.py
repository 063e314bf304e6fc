"""The package installs like one: ``python -m build`` makes a wheel and an sdist, and the wheel,
installed into a clean virtual environment, imports and runs the ``matbackprop`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "matbackprop"

pytest.importorskip("build", reason="`build` (a dev dependency) is not installed")


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_NO_INDEX": "1", **kwargs.pop("env", {})}
    env.pop("PYTHONPATH", None)  # the installed wheel, not the source tree
    return subprocess.run(args, capture_output=True, text=True, env=env, check=True, **kwargs)


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> tuple[Path, Path]:
    """Wheel and sdist built from a copy of the source (the build leaves nothing in the repo).

    ``--no-isolation``: the build backend comes from this environment, so nothing downloads."""
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "out"),
         str(source))
    (wheel,) = (tmp / "out").glob("*.whl")
    (sdist,) = (tmp / "out").glob("*.tar.gz")
    return wheel, sdist


def test_wheel_and_sdist_contents(dists):
    wheel, sdist = dists
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert wheel.name == f"matbackprop-{version}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "matbackprop/py.typed" in names
    assert f"matbackprop-{version}.dist-info/licenses/LICENSE" in names
    # every shipped weight and metadata file under src/matbackprop is in the wheel
    data = {p.relative_to(PACKAGE.parent).as_posix()
            for pattern in ("*.pt", "*.json") for p in PACKAGE.rglob(pattern)}
    assert data <= names, sorted(data - names)
    members = {Path(m).name for m in tarfile.open(sdist).getnames()}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "py.typed"} <= members


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory) -> Path:
    """A clean venv holding only the wheel; torch and the other dependencies are seen from this
    environment's site-packages through a .pth file (installed after, so they come second)."""
    wheel, _ = dists
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel))
    purelib = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                   .stdout.strip())
    parent = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (purelib / "_parent_env.pth").write_text("\n".join(sorted(parent)) + "\n")
    return env_dir


def test_installed_wheel_imports_and_runs(installed):
    python = installed / "bin" / "python"
    out = _run(str(python), "-c",
               "import matbackprop, matbackprop.linalg; "
               "print(matbackprop.__version__); print(matbackprop.__file__)",
               cwd=installed).stdout.split()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert out[0] == version  # one version source: pyproject, read back from the metadata
    assert Path(out[1]).is_relative_to(installed), out[1]  # the wheel, not the source tree
    help_text = _run(str(installed / "bin" / "matbackprop"), "--help", cwd=installed).stdout
    assert "usage: matbackprop" in help_text and "demo" in help_text


def test_installed_wheel_segments_an_image(installed, tmp_path):
    """The shipped-weights ``segment`` command on a small generated image (issue 11 §1, added
    in parallel: skipped while the command does not exist)."""
    command = installed / "bin" / "matbackprop"
    if "segment" not in _run(str(command), "--help", cwd=installed).stdout:
        pytest.skip("this version has no `matbackprop segment` command yet")
    from PIL import Image

    yy, xx = np.mgrid[0:64, 0:96] / 63.0
    rgb = np.stack([xx > 0.5, yy > 0.5, (xx + yy) > 1.0], -1) * 200 + 20  # four flat blocks
    Image.fromarray(rgb.astype("uint8")).save(tmp_path / "blocks.png")
    _run(str(command), "segment", str(tmp_path / "blocks.png"), "--out", str(tmp_path / "out"),
         "--device", "cpu", cwd=installed)
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"blocks.mat", "blocks.png", "blocks_overlay.png"} <= written, written
