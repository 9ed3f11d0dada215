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
