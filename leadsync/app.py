"""Wiring: config -> connector, mapping, rules, state store, pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadsync.config import (
    Config,
    ConfigError,
    load_mapping_section,
    load_rules_file,
    load_sections,
    secret,
    split_csv_section,
)
from mappings import LeadMapping, MappingError, load_mapping
from scoring import CompiledRules, RulesError, ScoringError, compile_rules, load_rules
from sync.writeback import WritebackSettings

# The CRM clients (their SDKs), the pipeline and the store are imported by the methods that build them:
# `explain` and the offline commands build an App without ever talking to a CRM.
if TYPE_CHECKING:
    from connectors.hubspot import HubSpotConnector
    from connectors.salesforce import SalesforceConnector
    from sync.pipeline import Progress, SyncPipeline
    from sync.state import StateStore

#: the `salesforce:` keys that are SalesforceConnector parameters of the same name (the others are login)
_SALESFORCE_CONNECTOR_KEYS = frozenset(
    {
        "ca_file",
        "api_version",
        "timeout_s",
        "max_retries",
        "daily_reserve",
        "bulk_threshold",
        "read_activities",
        "activity_horizon_days",
        "flow_api_name",
        "platform_event",
        "rate_limit_per_10s",
    }
)


@dataclass
class App:
    """Everything one config builds; ``close`` releases the state store."""

    config: Config
    mapping: LeadMapping
    rules: CompiledRules
    writeback: WritebackSettings
    #: the shadow challenger's rules (``challenger:``), scored beside ``rules`` every pass
    challenger: CompiledRules | None = None

    def connector(self) -> HubSpotConnector | SalesforceConnector:
        from connectors.hubspot import HubSpotConnector

        if self.config.crm == "salesforce" and self.config.salesforce is not None:
            return self.salesforce_connector()
        if self.config.crm != "hubspot" or self.config.hubspot is None:
            raise ConfigError(self.config.source, "crm", "expected `hubspot` or `salesforce` with its section")
        hs = self.config.hubspot
        # the section's keys are the connector's parameters by name; only the secret and tuples differ
        return HubSpotConnector(
            **hs.model_dump(exclude={"access_token", "activity_types"}),
            access_token=secret(hs.access_token),
            activity_types=tuple(hs.activity_types),
            group=self.config.writeback.group,
        )

    def salesforce_connector(self) -> SalesforceConnector:
        from connectors._salesforce_auth import SalesforceAuth
        from connectors.salesforce import SalesforceConnector

        sf = self.config.salesforce
        assert sf is not None
        auth = SalesforceAuth.from_settings(
            login_url=sf.login_url,
            instance_url=sf.instance_url,
            access_token=secret(sf.access_token) or None,
            client_id=sf.client_id,
            client_secret=secret(sf.client_secret) or None,
            username=sf.username,
            private_key_file=sf.private_key_file,
            timeout_s=sf.timeout_s,
        )
        return SalesforceConnector(
            **sf.model_dump(include=_SALESFORCE_CONNECTOR_KEYS),
            auth=auth,
            objects=tuple(sf.objects),
        )

    def explicit_triggers(self) -> bool:
        """Whether leadsync calls the CRM per qualification (else the CRM's automation reacts to the write)."""
        if self.config.crm == "salesforce" and self.config.salesforce is not None:
            return bool(self.config.salesforce.flow_api_name or self.config.salesforce.platform_event)
        return bool(
            self.config.crm == "hubspot" and self.config.hubspot is not None and self.config.hubspot.workflow_id
        )

    def store(self) -> StateStore:
        from sync.state import StateStore

        return StateStore.open(self.config.state.url)

    def pipeline(self, store: StateStore, progress: Progress | None = None) -> SyncPipeline:
        from sync.pipeline import SyncPipeline

        explicit = self.explicit_triggers()
        return SyncPipeline(
            connector=self.connector(),
            mapping=self.mapping,
            rules=self.rules,
            store=store,
            writeback=self.writeback,
            overlap=timedelta(seconds=self.config.sync.overlap_s),
            settle=timedelta(seconds=self.config.sync.settle_s),
            read_ahead=self.config.sync.read_ahead_pages,
            max_value_chars=self.config.sync.max_value_chars,
            explicit_triggers=bool(explicit),
            progress=progress,
            outcomes=self.config.outcomes.spec() if self.config.outcomes.enabled else None,
            outcome_window=(
                timedelta(days=self.config.outcomes.window_days)
                if self.config.outcomes.window_from == "created"
                else None  # from the first score: a creation date cannot tell that the window closed
            ),
            recheck_per_pass=self.config.outcomes.recheck_per_pass,
            recheck_interval=timedelta(seconds=self.config.outcomes.recheck_interval_s),
            challenger=self.challenger,
            challenger_split=self.config.challenger.split if self.config.challenger else 0.0,
            use_model=self.config.model.enabled,
            model_exclude=self.config.model.exclude,
        )


def load_scoring(section: Any, mapping: LeadMapping, *, source: str = "scoring") -> CompiledRules:
    """Rules whose counters and event kinds are checked against what ``mapping`` provides, compiled once."""
    attributes = {*mapping.fields, *(name for fields in mapping.objects.values() for name in fields)}
    return compile_rules(
        load_rules(section, source=source, known_attributes=attributes), mapping_version=mapping.version
    )


def load_csv_scoring(config: Path | None) -> tuple[str, CompiledRules, LeadMapping]:
    """The rules and CSV mapping of the offline commands (score, evaluate, report): no CRM section needed.

    Mistakes name the config file and the key, as for every other command.
    """
    source, sections = load_sections(config, ("scoring", "csv"))
    try:
        mapping = load_mapping("csv", split_csv_section(sections.get("csv"), source)[0], source="csv")
    except MappingError as exc:
        raise ConfigError(source, exc.where, exc.problem) from None
    try:
        rules = load_scoring(sections.get("scoring"), mapping)
    except ScoringError as exc:
        raise ConfigError(source, getattr(exc, "where", "scoring"), getattr(exc, "problem", str(exc))) from None
    return source, rules, mapping


def load_challenger(config: Config, mapping: LeadMapping) -> CompiledRules | None:
    """The ``challenger.rules`` file, read and checked as ``preview --rules`` reads one (relative to the
    config's directory). Mistakes name the rules file, or the config's ``challenger.rules`` when it is absent."""
    if config.challenger is None:
        return None
    path = Path(config.challenger.rules).expanduser()
    if not path.is_absolute() and Path(config.source).is_file():
        path = Path(config.source).parent / path
    if not path.is_file():
        raise ConfigError(config.source, "challenger.rules", f"{path} is not a file")
    source, section = load_rules_file(path)
    try:
        return load_scoring(section, mapping, source=source)
    except ScoringError as exc:
        raise ConfigError(source, getattr(exc, "where", "scoring"), getattr(exc, "problem", str(exc))) from None


def build_app(config: Config) -> App:
    """Validate the mapping and rules of a config; errors name the config file and the key."""
    where, section = load_mapping_section(config)
    try:
        mapping = load_mapping(config.crm, section)
    except MappingError as exc:
        if where != "mapping":  # a mapping file: name it, and the key inside it
            raise ConfigError(where, exc.where.removeprefix("mapping."), exc.problem) from None
        raise ConfigError(config.source, exc.where, exc.problem) from None
    try:
        rules = load_scoring(config.scoring, mapping)
    except RulesError as exc:
        raise ConfigError(config.source, exc.where, exc.problem) from None
    wb = config.writeback
    stage = mapping.fields.get("lifecycle_stage")
    if config.crm == "salesforce" and config.salesforce is not None:
        sf = config.salesforce
        # custom fields are Leadsync_Score__c...; Status is a lead's stage (contacts have none)
        writeback = WritebackSettings(
            prefix=wb.prefix,
            style="salesforce",
            stage_property=stage.property if stage else None,
            stage_on_qualify=sf.mql_status or None,
            stage_order=tuple(sf.status_order),
            stage_objects=frozenset({"lead"}),
        )
        return App(config, mapping, rules, writeback, load_challenger(config, mapping))
    writeback = WritebackSettings(
        prefix=wb.prefix,
        stage_property=stage.property if stage else None,
        stage_on_qualify=wb.lifecycle_stage or None,
        stage_order=tuple(wb.lifecycle_order),
    )
    return App(config, mapping, rules, writeback, load_challenger(config, mapping))
