"""scripts/mutation_check.py stays applicable: every mutant's edit matches its source file
exactly once (a refactor that moves the code must move the mutant too, or it silently stops
measuring anything)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mutants():
    spec = importlib.util.spec_from_file_location(
        "mutation_check", ROOT / "scripts" / "mutation_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.MUTANTS


@pytest.mark.parametrize("mutant", _mutants(), ids=lambda m: m.name)
def test_each_mutant_edit_matches_its_source_once(mutant):
    text = (ROOT / "src" / "matbackprop" / mutant.path).read_text(encoding="utf-8")
    assert text.count(mutant.old) == 1, f"{mutant.name}: {mutant.old!r} in {mutant.path}"
    assert mutant.new != mutant.old
