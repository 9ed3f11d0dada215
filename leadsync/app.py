"""Wiring: config -> connector, mapping, rules, state store, pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from connectors.hubspot import HubSpotConnector
from leadsync.config import Config, ConfigError, secret
from mappings import LeadMapping, MappingError, load_mapping
from scoring import CompiledRules, RulesError, compile_rules, load_rules
from sync.pipeline import Progress, SyncPipeline
from sync.state import StateStore
from sync.writeback import WritebackSettings


@dataclass
class App:
    """Everything one config builds; ``close`` releases the state store."""

    config: Config
    mapping: LeadMapping
    rules: CompiledRules
    writeback: WritebackSettings

    def connector(self) -> HubSpotConnector:
        if self.config.crm != "hubspot" or self.config.hubspot is None:
            raise ConfigError(self.config.source, "crm", "only `hubspot` is supported by this version")
        hs = self.config.hubspot
        return HubSpotConnector(
            access_token=secret(hs.access_token),
            base_url=hs.base_url,
            rate_limit_per_10s=hs.rate_limit_per_10s,
            search_rate_per_s=hs.search_rate_per_s,
            timeout_s=hs.timeout_s,
            max_retries=hs.max_retries,
            workflow_id=hs.workflow_id,
            group=self.config.writeback.group,
            daily_reserve=hs.daily_reserve,
        )

    def store(self) -> StateStore:
        return StateStore.open(self.config.state.url)

    def pipeline(self, store: StateStore, progress: Progress | None = None) -> SyncPipeline:
        explicit = self.config.crm == "hubspot" and self.config.hubspot is not None and self.config.hubspot.workflow_id
        return SyncPipeline(
            connector=self.connector(),
            mapping=self.mapping,
            rules=self.rules,
            store=store,
            writeback=self.writeback,
            overlap=timedelta(seconds=self.config.sync.overlap_s),
            settle=timedelta(seconds=self.config.sync.settle_s),
            explicit_triggers=bool(explicit),
            progress=progress,
        )


def build_app(config: Config) -> App:
    """Validate the mapping and rules of a config; errors name the config file and the key."""
    try:
        mapping = load_mapping(config.crm, config.mapping)
    except MappingError as exc:
        raise ConfigError(config.source, exc.where, exc.problem) from None
    try:
        rules = compile_rules(load_rules(config.scoring, source="scoring"))
    except RulesError as exc:
        raise ConfigError(config.source, exc.where, exc.problem) from None
    wb = config.writeback
    stage = mapping.fields.get("lifecycle_stage")
    writeback = WritebackSettings(
        prefix=wb.prefix,
        stage_property=stage.property if stage else None,
        stage_on_qualify=wb.lifecycle_stage or None,
        stage_order=tuple(wb.lifecycle_order),
    )
    return App(config=config, mapping=mapping, rules=rules, writeback=writeback)
