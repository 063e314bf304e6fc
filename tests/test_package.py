import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest


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


def test_errors_module_is_torch_free_and_errors_pickle():
    """`matbackprop.errors` loads without torch, and its errors survive pickling (DataLoader
    workers and DDP ranks send them across processes)."""
    code = "import sys, matbackprop.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

    import pickle

    from matbackprop.errors import ConfigError, DataFileError

    error = pickle.loads(pickle.dumps(DataFileError("a/b.png", "truncated")))
    assert (str(error), error.path.name) == ("a/b.png: truncated", "b.png")
    assert error.reason == "truncated"
    assert issubclass(DataFileError, ValueError) and issubclass(ConfigError, ValueError)


def _upper_modules():
    for name in ("errors", "models", "train", "tasks", "cli"):
        module = importlib.import_module(f"matbackprop.{name}")
        yield module.__name__
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), module.__name__ + "."):
            yield info.name


@pytest.mark.parametrize("module_name", sorted(set(_upper_modules())))
def test_upper_floor_docstring_examples(module_name):
    """The examples in the upper floors' docstrings run (tests/test_doctests.py runs the
    lower floors')."""
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest failures in {module_name}"


def test_subpackages_load_lazily():
    mb = importlib.import_module("matbackprop")
    for name in mb._SUBPACKAGES:
        assert getattr(mb, name).__name__ == f"matbackprop.{name}"
