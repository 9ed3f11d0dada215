"""The README's examples are real: every YAML block in it parses, and the scoring example compiles."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from scoring import compile_rules, load_rules

README = Path(__file__).resolve().parent.parent / "README.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)


def test_every_yaml_block_parses() -> None:
    blocks = yaml_blocks()
    assert blocks
    for block in blocks:
        assert isinstance(yaml.safe_load(block.replace("${", "__")), dict)


def test_scoring_example_compiles() -> None:
    (example,) = [b for b in yaml_blocks() if b.startswith("scoring:")]
    rules = compile_rules(load_rules(yaml.safe_load(example)["scoring"], source="README"))
    assert rules.mql_threshold == 60 and rules.release_threshold == 50
    assert {"vp_title", "pricing_page", "free_email"} <= set(rules.rule_names)
    disabled = compile_rules(load_rules({"disable": ["inactive_180d"]}, source="README"))
    assert "inactive_180d" not in disabled.rule_names and "inactive_90d" in disabled.rule_names


def test_company_fields_example_loads_and_its_rule_compiles() -> None:
    from mappings import load_mapping

    (example,) = [b for b in yaml_blocks() if "company.segment" in b]
    data = yaml.safe_load(example)
    mapping = load_mapping("hubspot", data["mapping"])
    assert {"industry", "country", "customer_segment"} <= set(mapping.company_properties)
    lead = mapping.to_lead("1", {"email": "a@acme.com", "country": "DE", "company.country": "France"})
    assert lead.country == "France"  # prefer: company
    rules = compile_rules(load_rules(data["scoring"], source="README", known_attributes=set(mapping.fields)))
    assert "target_vertical" in rules.rule_names
