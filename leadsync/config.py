"""Loading ``leadsync.yaml``: ${ENV} interpolation, validation, and one clear message per mistake."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sync.schedule import DEFAULT_PORT, crontab_trigger, parse_duration, parse_timezone

CONFIG_ENV = "LEADSYNC_CONFIG"
DEFAULT_CONFIG = "leadsync.yaml"


class ConfigError(Exception):
    """A config mistake: names the file, the key and what is expected."""

    def __init__(self, path: str | Path, key: str, expected: str) -> None:
        self.path = str(path)
        self.key = key
        self.expected = expected
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {expected}")


#: ``${NAME}`` in the file; ``$${NAME}`` stays literal. Only the braced form, so regexes such as ``^vp$``
#: in rules are left alone.
_ENV_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: what a reference becomes before YAML parsing: a plain scalar that is valid in block and flow style alike
#: (``{access_token: ${TOKEN}}`` is otherwise a YAML syntax error)
_ESCAPED_DOLLAR = "__LEADSYNC_DOLLAR__"
_PLACEHOLDER = re.compile(r"__LEADSYNC_ENV_([A-Za-z_][A-Za-z0-9_]*)__")


def protect_references(text: str) -> str:
    """Turn ``${NAME}`` into placeholders that YAML parses as plain text wherever they stand."""
    text = _ENV_REFERENCE.sub(lambda m: f"__LEADSYNC_ENV_{m.group(1)}__", text)
    return text.replace("$${", _ESCAPED_DOLLAR + "{")


def interpolate(value: Any, path: str, key: str = "") -> Any:
    """Replace every ``${VAR}`` (already protected as a placeholder) with the environment's value."""
    if isinstance(value, dict):
        return {k: interpolate(v, path, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, path, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        value = protect_references(value) if "${" in value else value
        if "__LEADSYNC_ENV_" in value:
            for name in _PLACEHOLDER.findall(value):
                if name not in os.environ:
                    raise ConfigError(path, key, f"environment variable {name} is not set (used as ${{{name}}})")
            value = _PLACEHOLDER.sub(lambda m: os.environ[m.group(1)], value)
        return value.replace(_ESCAPED_DOLLAR, "$")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSpotConfig(_Section):
    access_token: SecretStr
    base_url: str = "https://api.hubapi.com"
    #: requests allowed per rolling 10 s for this portal (HubSpot private apps: 100 or 190)
    rate_limit_per_10s: int = Field(default=100, gt=0)
    #: CRM search has its own lower limit (requests per second)
    search_rate_per_s: float = Field(default=5, gt=0)
    #: stop the run cleanly when fewer than this share of the daily allowance is left
    daily_reserve: float = Field(default=0.1, ge=0, lt=1)
    timeout_s: float = Field(default=30, gt=0)
    max_retries: int = Field(default=6, ge=0)
    #: optional legacy-workflow enrollment of qualified contacts
    workflow_id: int | None = None
    #: read calls, emails, meetings and notes logged on contacts (one association read per 1,000 contacts
    #: and type, one object read per 100 activities); off: score on the contact's counters only
    read_activities: bool = True
    activity_types: list[Literal["emails", "calls", "meetings", "notes", "tasks"]] = Field(
        default_factory=lambda: ["emails", "calls", "meetings", "notes"]
    )
    #: activities older than this many days are not read (bounds memory; decay makes them worthless)
    activity_horizon_days: float | None = Field(default=365, gt=0)


TSalesforceObject = Literal["lead", "contact"]
SALESFORCE_OBJECTS: tuple[TSalesforceObject, ...] = ("lead", "contact")


class SalesforceConfig(_Section):
    instance_url: str | None = None
    login_url: str = "https://login.salesforce.com"
    access_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    private_key_file: str | None = None
    ca_file: str | None = None
    api_version: str = "59.0"
    mql_status: str = "Working - Contacted"
    #: lead statuses in funnel order: leadsync only moves a lead forward to mql_status (statuses not listed,
    #: such as "Closed - Not Converted", are never touched)
    status_order: list[str] = Field(
        default_factory=lambda: ["Open - Not Contacted", "Working - Contacted", "Closed - Converted"]
    )
    timeout_s: float = Field(default=30, gt=0)
    max_retries: int = Field(default=6, ge=0)
    #: optional cap on requests per rolling 10 s (Salesforce itself has none; off by default)
    rate_limit_per_10s: int | None = Field(default=None, gt=0)
    #: stop the run cleanly when fewer than this share of the org's daily API allocation is left
    daily_reserve: float = Field(default=0.1, ge=0, lt=1)
    #: full syncs of an object with more records than this use a Bulk API 2.0 query job
    bulk_threshold: int = Field(default=10_000, ge=0)
    #: which objects are scored
    objects: list[TSalesforceObject] = Field(default_factory=lambda: list(SALESFORCE_OBJECTS), min_length=1)
    #: read Tasks, Events and campaign responses of the records (three queries per 450 records)
    read_activities: bool = True
    activity_horizon_days: int | None = Field(default=365, gt=0)
    #: optional autolaunched Flow run once per qualification (input variable `recordId`)
    flow_api_name: str | None = None
    #: optional platform event published once per qualification (fields Record_Id__c, Email__c)
    platform_event: str | None = None

    @model_validator(mode="after")
    def _credentials(self) -> SalesforceConfig:
        if self.mql_status and self.mql_status not in self.status_order:
            raise ValueError(f"mql_status '{self.mql_status}' is not in status_order")
        if self.flow_api_name and self.platform_event:
            raise ValueError("set at most one of flow_api_name and platform_event")
        jwt_flow = self.client_id and self.username and self.private_key_file
        client_credentials = self.client_id and self.client_secret
        token = self.access_token and self.instance_url
        if not (jwt_flow or client_credentials or token):
            raise ValueError(
                "expected client_id + client_secret (client credentials), client_id + username + "
                "private_key_file (JWT bearer), or access_token + instance_url"
            )
        return self


class WritebackConfig(_Section):
    #: prefix of every property leadsync writes (HubSpot); Salesforce uses Leadsync_*__c
    prefix: str = "leadsync_"
    group: str = "leadsync"
    #: lifecycle stage set on qualification (only ever forward); empty to leave the stage alone
    lifecycle_stage: str | None = "marketingqualifiedlead"
    lifecycle_order: list[str] = Field(
        default_factory=lambda: [
            "subscriber",
            "lead",
            "marketingqualifiedlead",
            "salesqualifiedlead",
            "opportunity",
            "customer",
            "evangelist",
        ]
    )
    batch_size: int = Field(default=100, gt=0, le=100)

    @model_validator(mode="after")
    def _stage_is_known(self) -> WritebackConfig:
        if self.lifecycle_stage and self.lifecycle_stage not in self.lifecycle_order:
            raise ValueError(f"lifecycle_stage '{self.lifecycle_stage}' is not in lifecycle_order")
        return self


class SyncConfig(_Section):
    #: read only changes older than this: HubSpot's search index lags writes by a few seconds, so the
    #: newest changes wait for the next pass instead of being missed (or re-read every pass)
    settle_s: float = Field(default=30, ge=0)
    #: also re-read this much before the watermark, for changes the index took longer than settle_s to show
    overlap_s: float = Field(default=60, ge=0)


class StateConfig(_Section):
    url: str = "sqlite:///leadsync-state.db"


class JobScheduleConfig(_Section):
    """When one daemon job runs: ``{every: 5m}`` or ``{cron: "0 3 * * *"}``, plus optional knobs."""

    #: run every so long (a duration: 2s, 5m, 1h, or seconds)
    every: float | None = None
    #: or at crontab times (minute hour day month weekday; 0 and 7 are Sunday)
    cron: str | None = None
    #: the time zone cron times are read in
    timezone: str = "UTC"
    #: delay each run by a random part of this, so that replicas and tenants do not hit the CRM at once
    jitter: float = 0.0
    #: a run the scheduler could not start on time (process suspended, previous run still going) is still
    #: started when it is at most this late (default: one interval; one hour for cron jobs)
    misfire_grace: float | None = None
    #: start the first run at once (default: yes for `every`, no for `cron`)
    run_at_start: bool | None = None

    @field_validator("every", "jitter", "misfire_grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("every")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("expected a duration longer than 0s, such as 2s or 5m")
        return value

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        if value is not None:
            crontab_trigger(value, timezone=parse_timezone("UTC"))  # the syntax does not depend on the zone
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> JobScheduleConfig:
        if (self.every is None) == (self.cron is None):
            raise ValueError('expected exactly one of `every` (e.g. every: 5m) or `cron` (e.g. cron: "0 3 * * *")')
        return self


class ScheduleConfig(_Section):
    """The daemon's jobs (``leadsync run``); ``null`` switches a job off."""

    #: incremental passes
    sync: JobScheduleConfig | None = Field(default_factory=lambda: JobScheduleConfig(every=300))
    #: passes that read every record (e.g. nightly), to catch anything an incremental window missed
    full_sync: JobScheduleConfig | None = None


class RunConfig(_Section):
    """The daemon process: HTTP endpoints, leases between replicas, shutdown."""

    #: /healthz, /readyz and /metrics (9464: the usual Prometheus exporter port); 0 picks a free port
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    host: str = "0.0.0.0"
    #: on SIGTERM, finish or checkpoint the page in flight and exit within this many seconds
    shutdown_grace_s: float = Field(default=30, gt=0)
    #: a replica holds the job lease this long past its last renewal; another takes over after it dies
    lease_ttl_s: float = Field(default=30, ge=1)
    #: how often /readyz re-checks the state store and the CRM in the background
    probe_interval_s: float = Field(default=15, gt=0)


class Config(_Section):
    crm: Literal["hubspot", "salesforce"]
    hubspot: HubSpotConfig | None = None
    salesforce: SalesforceConfig | None = None
    mapping: dict[str, Any] | None = None
    #: column -> attribute mapping for `leadsync score --input file.csv`
    csv: dict[str, Any] | None = None
    scoring: dict[str, Any] | None = None
    writeback: WritebackConfig = Field(default_factory=WritebackConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    state: StateConfig = Field(default_factory=StateConfig)

    #: where this config was read from (for messages)
    _source: str = PrivateAttr(default="<memory>")

    @property
    def source(self) -> str:
        return self._source

    @model_validator(mode="after")
    def _crm_section_present(self) -> Config:
        if getattr(self, self.crm) is None:
            raise ValueError(f"crm is {self.crm}, so a `{self.crm}:` section is required")
        return self


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    key = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; `leadsync init` writes every key with comments)"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif "input" in error and not isinstance(error["input"], dict | list):
        message = f"{message} (got {error['input']!r})"
    return key, message


def parse_config(data: Any, source: str = "<memory>") -> Config:
    """Validate already-parsed YAML data."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a YAML mapping at the top level (e.g. `crm: hubspot`)")
    data = interpolate(data, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        key, message = _describe(exc.errors()[0])
        raise ConfigError(source, key, message) from None
    config._source = source
    return config


def resolve_path(path: str | Path | None) -> Path:
    """``--config``, else ``$LEADSYNC_CONFIG``, else ``./leadsync.yaml``."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None) -> Config:
    """Read, interpolate and validate a config file."""
    resolved = resolve_path(path)
    return parse_config(_read_yaml(resolved), str(resolved))


def load_sections(path: str | Path | None, keys: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """Only some sections of a config (no CRM needed), for offline commands such as ``leadsync score``.

    Without ``--config`` and without a default file, returns no sections: the packaged defaults apply.
    """
    resolved = resolve_path(path)
    if path is None and not resolved.exists():
        return "<defaults>", {}
    data = _read_yaml(resolved)
    if not isinstance(data, dict):
        raise ConfigError(resolved, "", "expected a YAML mapping at the top level")
    return str(resolved), {k: interpolate(data[k], str(resolved), k) for k in keys if data.get(k) is not None}


def _read_yaml(resolved: Path) -> Any:
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(resolved, "", "file not found (create one with `leadsync init`)") from None
    except OSError as exc:
        raise ConfigError(resolved, "", f"cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(protect_references(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(resolved, where, f"invalid YAML: {problem}") from None
    return data


def secret(value: SecretStr | None) -> str:
    """The plain value of a secret (only at the point of use; never logged)."""
    return value.get_secret_value() if value is not None else ""
