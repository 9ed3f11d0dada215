"""The one-way dependencies of PRODUCT.md: leadsync -> sync -> {connectors, mappings, scoring}."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("leadsync", "sync", "connectors", "mappings", "scoring")
#: what each package must never import
FORBIDDEN = {
    "scoring": {"leadsync", "sync", "connectors", "mappings"},
    "connectors": {"leadsync", "sync", "scoring", "mappings"},
    "mappings": {"leadsync", "sync", "connectors"},
    "sync": {"leadsync"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_flow_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


#: the size a newcomer can hold in one view; a module past it has more than one job (issue 20)
MAX_MODULE_LINES = 1_000


def test_no_module_outside_tests_is_longer_than_one_view() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for folder in (*PACKAGES, "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_what_lives_there_and_what_it_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
    assert doc and "import" in doc.lower(), f"{package}/__init__.py: a docstring naming what lives there and may import"
