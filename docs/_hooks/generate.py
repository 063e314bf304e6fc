"""MkDocs hook: the pages that are generated rather than written.

One source for each idea: the API pages list every name in each package's ``__all__`` (so a new
public name appears without editing the docs), the CLI page is the parsers' own ``--help``, the
benchmark page is the README's benchmark section plus each benchmark script's docstring, and the
results pages are ``results/*.md`` as ``matbackprop report`` wrote them. Nothing here touches the
network.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the tests import this module without mkdocs installed
    from mkdocs.structure.files import Files

ROOT = Path(__file__).resolve().parents[2]

# The public packages, in the order of the floors (bottom first), and one line on each.
API_PACKAGES = {
    "linalg": "decompositions and matrix functions with their backward passes",
    "nn": "structured layers: second-order pooling, normalized cuts, SPD layers",
    "nn.functional": "the functional forms of the layers, and the NCuts decoders",
    "models": "backbones, DeepNCuts, the baselines and the region classifier",
    "data": "data sets, superpixels, training items, image I/O (a leaf)",
    "metrics": "the BSDS benchmark and classification metrics (a leaf)",
    "train": "configs, the trainer, checkpoints, run records",
    "tasks": "the experiments, found by name in a registry",
    "validation": "the argument checks every public function uses",
    "errors": "the errors a user can fix",
}


def public_names(package: str) -> list[str]:
    """The names of ``matbackprop.<package>.__all__`` that are not sub-modules."""
    module = importlib.import_module(f"matbackprop.{package}")
    return [n for n in module.__all__ if not inspect.ismodule(getattr(module, n))]


def api_page(package: str) -> str:
    qualified = f"matbackprop.{package}"
    lines = [
        f"# {qualified}",
        "",
        f"::: {qualified}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "",
    ]
    for name in public_names(package):
        lines += [f"::: {qualified}.{name}", ""]
    return "\n".join(lines)


def _help_sections(parser: argparse.ArgumentParser, command: str) -> list[str]:
    lines = [f"## `{command}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:  # argparse has no public accessor for sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines += _help_sections(sub, f"{command} {name}")
    return lines


def cli_page() -> str:
    from matbackprop.cli._main import build_parser

    parser = build_parser()
    parser.prog = "matbackprop"
    header = [
        "# Command line",
        "",
        "Generated from the parsers' `--help` when the site is built.",
        "",
    ]
    return "\n".join(header + _help_sections(parser, "matbackprop"))


def readme_section(title: str) -> str:
    """The README's ``## title`` section (to the next ``## ``), links made relative to docs/."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise ValueError(f"README.md has no '## {title}' section")
    body = match.group(1)
    body = re.sub(r"\]\(docs/([^)]*)\)", r"](\1)", body)
    body = body.replace("](results/)", "](results/texture_mosaics.md)")
    return body


def benchmarks_page() -> str:
    lines = ["# Benchmarks", "", readme_section("Benchmarks"), "## The scripts", ""]
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        # reST literal blocks (``Usage::``) become fenced code blocks
        doc = re.sub(r"::\n\n((?:    .*\n?|\n)+)", lambda m: ":\n\n```bash\n"
                     + re.sub(r"^    ", "", m.group(1), flags=re.M).strip() + "\n```\n", doc)
        lines += [f"### `benchmarks/{script.name}`", "", doc, ""]
    return "\n".join(lines)


def on_files(files: Files, config) -> Files:
    from mkdocs.structure.files import File

    for package in API_PACKAGES:
        files.append(File.generated(config, f"api/{package}.md", content=api_page(package)))
    files.append(File.generated(config, "cli.md", content=cli_page()))
    files.append(File.generated(config, "benchmarks.md", content=benchmarks_page()))
    for path in sorted((ROOT / "results").iterdir()):
        if path.suffix in {".md", ".png"}:
            files.append(File.generated(config, f"results/{path.name}", abs_src_path=str(path)))
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files
