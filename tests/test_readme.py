"""The Python examples in the README run."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_opens_with_the_two_setup_commands():
    head = README.read_text().split("## ")[0]
    assert "make demo" in head and "make test" in head


def test_readme_quotes_the_generated_result_tables():
    """The result tables in the README are the ones `matbackprop report` wrote to results/,
    so the README cannot drift from the measured runs."""
    readme = README.read_text()
    reports = sorted((README.parent / "results").glob("*.md"))
    assert reports, "results/ holds no reports"
    for report in reports:
        rows = [line for line in report.read_text().splitlines() if line.startswith("| ")]
        assert rows, f"{report.name} has no table"
        missing = [row for row in rows if row not in readme]
        assert not missing, f"README does not quote {report.name}: {missing}"
