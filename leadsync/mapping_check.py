"""The mapping against the live CRM, for ``leadsync mappings validate``, ``check`` and daemon start: read
the schema through the configured connector, locate findings in the files they come from (the config, a
mapping file, or the shipped defaults), and keep a snapshot of what the mapping reads to report drift."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from leadsync.app import App
from leadsync.config import key_lines, load_mapping_section, mapping_file
from mappings.schema import CrmSchema
from mappings.validate import Finding, snapshot, validate

log = structlog.get_logger("leadsync.mappings")

#: the drift snapshot, beside the config file
SNAPSHOT_NAME = ".leadsync-schema.json"


def read_crm_schema(connector: Any, *, sample: int = 0, companies: bool = False) -> CrmSchema:
    """The CRM's schema; with ``sample`` (discovery), also HubSpot's company properties and the fill rates
    and examples of that many records. Validation (no sample): 1 HubSpot call (2 when the mapping reads
    ``companies``' properties), 3 Salesforce describes."""
    if connector.name == "salesforce":
        from connectors.salesforce_schema import read_schema as read_salesforce

        return CrmSchema.from_dict(read_salesforce(connector, sample=sample))
    from connectors.hubspot_schema import read_schema as read_hubspot

    return CrmSchema.from_dict(read_hubspot(connector, sample=sample, companies=companies or sample > 0))


def _package_file(package: str, *parts: str) -> tuple[str, Path]:
    resource = resources.files(package).joinpath(*parts)
    return f"{package}/{'/'.join(parts)}", Path(str(resource))


class Locator:
    """(file, line) of a dotted key: the user's file when it sets the key, else the shipped default."""

    def __init__(self, application: App) -> None:
        config = application.config
        self.config_file = config.source
        self.config_lines = key_lines(Path(config.source)) if Path(config.source).is_file() else {}
        self.mapping_path = mapping_file(config)
        self.mapping_lines = key_lines(self.mapping_path) if self.mapping_path is not None else {}
        if self.mapping_path is not None and any(k[:1] == ("mapping",) for k in self.mapping_lines):
            self.mapping_lines = {k[1:]: v for k, v in self.mapping_lines.items() if k[:1] == ("mapping",)}
        self.default_mapping, path = _package_file("mappings", "defaults", f"{config.crm}.yaml")
        self.default_mapping_lines = key_lines(path)
        self.default_rules, path = _package_file("scoring", "defaults", "rules.yaml")
        self.default_rules_lines = key_lines(path)
        self.scoring: Mapping[str, Any] = config.scoring or {}
        from scoring.rules import _default_data

        self.default_scoring = _default_data()

    def __call__(self, key: tuple[str | int, ...]) -> tuple[str, int | None]:
        if key[:1] == ("scoring",):
            return self._rule(key)
        inner = key[1:]
        if self.mapping_path is not None:
            line = _longest(self.mapping_lines, inner)
            if line is not None:
                return str(self.mapping_path), line
        else:
            line = _longest(self.config_lines, key, minimum=3)
            if line is not None:
                return self.config_file, line
        return self.default_mapping, _longest(self.default_mapping_lines, inner)

    def _rule(self, key: tuple[str | int, ...]) -> tuple[str, int | None]:
        """``("scoring", part, index)`` of the active rules: found by the rule's name in the list it came from."""
        part = str(key[1])
        user = self.scoring.get(part)
        source, lines, rules = (
            (self.config_file, self.config_lines, user)
            if isinstance(user, list)
            else (self.default_rules, self.default_rules_lines, self.default_scoring.get(part))
        )
        name = key[3] if len(key) > 3 else None
        for i, rule in enumerate(rules or []):
            if isinstance(rule, Mapping) and rule.get("name") == name:
                return source, lines.get(("scoring", part, i))
        return source, lines.get(("scoring", part))


def _longest(lines: Mapping[tuple[str | int, ...], int], key: tuple[str | int, ...], minimum: int = 1) -> int | None:
    """The line of ``key``, else of its nearest ancestor that is at least ``minimum`` long."""
    for n in range(len(key), minimum - 1, -1):
        if key[:n] in lines:
            return lines[key[:n]]
    return None


def snapshot_path(application: App) -> Path:
    source = Path(application.config.source)
    return (source.parent if source.is_file() else Path.cwd()) / SNAPSHOT_NAME


def previous_snapshot(path: Path) -> CrmSchema | None:
    try:
        return CrmSchema.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError, TypeError):
        return None  # no snapshot yet (first run), or one that cannot be read: no drift to report


def save_snapshot(path: Path, data: Mapping[str, Any]) -> None:
    """Write the snapshot atomically; a read-only directory only loses drift reports (logged)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("mappings.snapshot_not_saved", path=str(path), error=exc.strerror or str(exc))
        tmp.unlink(missing_ok=True)


@dataclass
class MappingCheck:
    """What ``validate_mapping`` found, and the schema it read."""

    findings: list[Finding]
    schema: CrmSchema

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


def validate_mapping(application: App, connector: Any, *, keep_snapshot: bool = True) -> MappingCheck:
    """The configured mapping and rules against the CRM's schema, and drift since the last snapshot.

    The snapshot is replaced only when there are no errors, so a removed option keeps being reported
    until the mapping or the rules are fixed.
    """
    schema = read_crm_schema(connector, companies=bool(application.mapping.company_properties))
    path = snapshot_path(application)
    previous = previous_snapshot(path)
    if previous is not None and previous.crm != schema.crm:
        previous = None
    findings = validate(application.mapping, application.rules.rules, schema, Locator(application), previous=previous)
    if keep_snapshot and not any(f.level == "error" for f in findings):
        save_snapshot(path, snapshot(schema, application.mapping))
    return MappingCheck(findings, schema)


def mapping_source(application: App) -> str:
    """Where the mapping was read (the config, or its mapping file)."""
    return load_mapping_section(application.config)[0]
