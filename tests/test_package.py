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
