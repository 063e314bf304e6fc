import importlib
import subprocess
import sys


def test_import_is_light():
    """`import matbackprop` must not pull heavy optional dependencies."""
    code = (
        "import sys, matbackprop; "
        "bad = [m for m in ('skimage', 'pycocotools', 'scipy', 'PIL') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version():
    mb = importlib.import_module("matbackprop")
    assert isinstance(mb.__version__, str)
