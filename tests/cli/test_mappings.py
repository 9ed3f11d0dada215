"""`leadsync mappings discover / validate`, `check` and `run` against the sandboxes over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadsync.app import build_app
from leadsync.config import load_config
from leadsync.mapping_check import read_crm_schema, validate_mapping
from mappings import MappingError, load_mapping
from mappings.discover import discover_mapping
from scoring import Lead

LEADSYNC = [sys.executable, "-m", "leadsync"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEADSYNC, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env={**os.environ}, check=False
    )


def hubspot_config(tmp_path: Path, server: Any, **extra: Any) -> Path:
    data = {
        "crm": "hubspot",
        "hubspot": {"access_token": server.token, "base_url": server.url, "rate_limit_per_10s": 5000},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        **extra,
    }
    path = tmp_path / "leadsync.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def salesforce_config(tmp_path: Path, server: Any, **extra: Any) -> Path:
    section = {
        "login_url": server.url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "ca_file": server.ca_pem_path,
    }
    data = {"crm": "salesforce", "salesforce": section, "state": {"url": f"sqlite:///{tmp_path / 's.db'}"}, **extra}
    path = tmp_path / "leadsync.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _same_scores(config: Path, discovered: Path, records: list[dict[str, Any]], kinds: list[str]) -> None:
    default_app = build_app(load_config(config))
    text = config.read_text() + f"mapping: {discovered.name}\n"
    config.write_text(text)
    app = build_app(load_config(config))
    assert app.mapping.version == default_app.mapping.version
    assert app.rules.version == default_app.rules.version  # switching to it rescores nothing
    for i, props in enumerate(records):
        kind = kinds[i % len(kinds)]
        ours: Lead = app.mapping.to_lead(str(i), props, object_type=kind)
        theirs: Lead = default_app.mapping.to_lead(str(i), props, object_type=kind)
        assert ours == theirs


def test_discover_against_hubspot_validates_and_scores_like_the_default(
    hubspot_sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=60, seed=5)
    segment = {"name": "customer_segment", "label": "Customer segment", "type": "string", "fieldType": "text"}
    server.client().crm.properties.core_api.create(
        object_type="companies", property_create={**segment, "groupName": "companyinformation"}
    )
    config = hubspot_config(tmp_path, server)
    result = run("mappings", "discover", "--config", str(config), "--output", "mapping.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "API calls" in result.stdout
    discovered = tmp_path / "mapping.yaml"
    text = discovered.read_text()
    assert "employees: {property: numemployees, type: range, company: company.numberofemployees}" in text
    assert "company.industry: company.industry" in text
    assert "#   company.customer_segment: company.customer_segment" in text  # a custom company property
    app = build_app(load_config(config))
    schema = read_crm_schema(app.connector(), sample=100)
    records = [
        {n: f.examples[i % len(f.examples)] for n, f in schema.objects["contacts"].items() if f.examples}
        for i in range(5)
    ]
    _same_scores(config, discovered, records, ["contact"])
    checked = run("mappings", "validate", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "mapping fits hubspot" in checked.stdout


def test_discover_against_salesforce_validates_and_scores_like_the_default(
    salesforce_sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = salesforce_sandbox_factory(leads=40, contacts=20, seed=4)
    config = salesforce_config(tmp_path, server)
    app = build_app(load_config(config))
    schema = read_crm_schema(app.connector(), sample=50)
    discovered = tmp_path / "mapping.yaml"
    discovered.write_text(discover_mapping(schema, sampled=50))
    assert "industry: Account.Industry" in discovered.read_text()
    records = [
        {**{n: f.examples[0] for n, f in schema.objects[o].items() if f.examples}, "Account.Industry": "Banking"}
        for o in ("Lead", "Contact")
    ]
    _same_scores(config, discovered, records, ["lead", "contact"])
    result = run("mappings", "validate", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_missing_picklist_value_or_field_fails_check_and_stops_the_daemon(
    hubspot_sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=20, seed=3)
    rules = {
        "fit": [
            {"name": "customers", "points": 10, "when": {"lifecycle_stage": ["customr"]}},
            {"name": "seats", "points": 5, "when": {"seats": {"gte": 10}}},
        ]
    }
    config = hubspot_config(
        tmp_path, server, mapping={"fields": {"seats": {"property": "num_seats", "type": "int"}}}, scoring=rules
    )
    result = run("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    err = " ".join(result.stderr.split())
    assert "rule 'customers'" in err and "contacts.lifecyclestage" in err and "did you mean 'customer'?" in err
    assert "field 'num_seats' does not exist on contacts" in err
    assert "rule 'seats'" in err and "leadsync.yaml:" in err
    daemon = run("run", "--config", str(config), "--port", "0", cwd=tmp_path)
    assert daemon.returncode == 2
    assert "the daemon does not start" in " ".join(daemon.stderr.split())


def test_drift_a_removed_option_is_reported_on_the_next_run(
    hubspot_sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=10, seed=2)
    config = hubspot_config(tmp_path, server)
    app = build_app(load_config(config))
    assert validate_mapping(app, app.connector()).errors == []
    connector = app.connector()
    options = [o for o in server.portal.properties["hs_lead_status"].options if o["value"] != "BAD_TIMING"]
    connector._client.crm.properties.core_api.update(
        object_type="contacts", property_name="hs_lead_status", property_update={"options": options}
    )
    findings = validate_mapping(app, app.connector()).findings
    assert any("'BAD_TIMING' removed or renamed since the last run" in str(f) for f in findings), findings
    assert load_mapping("hubspot").version  # the default mapping itself is untouched


def test_validate_knows_company_fields(hubspot_sandbox_factory: Callable[..., Any], tmp_path: Path) -> None:
    """``company.<property>`` is checked against HubSpot's company properties (one more call), rules on
    company attributes against their types, and Salesforce refuses HubSpot's spelling with its own."""
    server = hubspot_sandbox_factory(contacts=10, seed=6)
    good = build_app(load_config(hubspot_config(tmp_path, server)))
    checked = validate_mapping(good, good.connector(), keep_snapshot=False)
    assert checked.errors == [] and "companies" in checked.schema.objects
    rules = {"fit": [{"name": "big_industry", "points": 5, "when": {"company.industry": {"gte": 5}}}]}
    mapping = {"fields": {"company.employees": {"property": "company.numberofemployes", "type": "int"}}}
    bad = build_app(load_config(hubspot_config(tmp_path, server, mapping=mapping, scoring=rules)))
    found = [str(f) for f in validate_mapping(bad, bad.connector(), keep_snapshot=False).errors]
    assert any(
        "field 'company.numberofemployes' does not exist on companies" in f and "did you mean 'numberofemployees'" in f
        for f in found
    ), found
    assert any("rule 'big_industry'" in f and "compares numbers on company.industry" in f for f in found), found
    with pytest.raises(MappingError) as refused:
        load_mapping("salesforce", {"fields": {"company.industry": "company.industry"}})
    assert "Account.<Field>" in str(refused.value)
