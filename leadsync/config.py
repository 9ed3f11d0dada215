"""Loading ``leadsync.yaml``: one strict YAML loader, ${ENV} in connection settings only, validation, and
one clear message per mistake."""

from __future__ import annotations

import codecs
import contextlib
import difflib
import os
import re
import string
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url

from connectors.base import LIFECYCLE_STAGES, OutcomeSpec
from leadsync.logs import register_secret
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


#: how deep YAML may nest: far beyond any real config, and shallow enough that a hostile file is rejected
#: at once instead of exhausting the parser's recursion
MAX_DEPTH = 100

#: the largest config or rules file read: a fitted config with every lookup table is tens of kilobytes, so a
#: file this large is a mistake or an attack, refused before YAML sees it
MAX_BYTES = 1 << 20

#: how many nodes a file may expand to once its aliases are followed: a thousand rules of a dozen tests is
#: about 50,000; a "billion laughs" alias bomb is refused here, while composing, instead of later, when
#: pydantic or the environment-reference walk would expand it into memory
MAX_NODES = 200_000


class _FromEnv:
    """Marks a connection setting (token, secret, key, URL): the only values ``${NAME}`` is replaced in."""

    def __repr__(self) -> str:
        return "FROM_ENV"


FROM_ENV = _FromEnv()


def _stripped(value: Any) -> Any:
    """Secrets lose surrounding whitespace: a Kubernetes secret file ends with a newline."""
    return value.strip() if isinstance(value, str) else value


#: a token or secret: may be ``${NAME}``; stripped; never shown
Secret = Annotated[SecretStr, FROM_ENV, BeforeValidator(_stripped)]
OptionalSecret = Annotated[SecretStr | None, FROM_ENV, BeforeValidator(_stripped)]
#: a URL, key or name of a connection: may be ``${NAME}``
EnvText = Annotated[str, FROM_ENV]
OptionalEnvText = Annotated[str | None, FROM_ENV]


class _EnvTemplate(string.Template):
    """string.Template with the braced form only, so that a bare ``$`` (``^vp$``) stays as it is;
    ``$${`` is a literal ``${``."""

    #: Template compiles this text itself (typeshed types the attribute as the compiled pattern)
    pattern = r"""
    \$(?:
      (?P<escaped>\$(?=\{)) |
      (?P<named>(?!)) |
      \{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\} |
      (?P<invalid>\{)
    )"""  # type: ignore[assignment]


#: ``${NAME}`` is written with these reserved characters during YAML parsing, so that it is plain text in
#: flow style too (``{access_token: ${TOKEN}}`` is otherwise a YAML syntax error); one character for one,
#: so that lines and columns in YAML messages stay right
_RESERVED = "\ue000\ue001\ue002"
_PROTECT = str.maketrans("${}", _RESERVED)
_RESTORE = str.maketrans(_RESERVED, "${}")
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def _protect(text: str) -> str:
    return _REFERENCE.sub(lambda m: m.group(0).translate(_PROTECT), text)


def _restore(value: Any) -> Any:
    if isinstance(value, str):
        return value.translate(_RESTORE)
    if isinstance(value, dict):
        return {_restore(k): _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


class _Loader(yaml.SafeLoader):
    """The one YAML loader of every user file: safe, no duplicate keys, at most :data:`MAX_DEPTH` levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        #: expanded size of every composed node, by identity: an alias returns the anchored node itself,
        #: so a parent counts the whole subtree again for each alias, which is what expansion will cost
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                self._refuse(f"nested deeper than {MAX_DEPTH} levels")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None and id(node) not in self._sizes:
            self._sizes[id(node)] = size = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
            if size > MAX_NODES:
                self._refuse(f"expands to more than {MAX_NODES:,} values (aliases that repeat aliases?)")
        return node

    def _refuse(self, problem: str) -> NoReturn:
        raise yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)  # type: ignore[no-untyped-call]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_restore(key)!r} (also at line {first[key]})", key_node.start_mark
                )
            first[key] = line
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _read_yaml(resolved: Path) -> Any:
    """Parse one user YAML file (config or rules) with :class:`_Loader`; every problem is a ConfigError."""
    try:
        size = resolved.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                resolved, "", f"is {size / 1e6:.1f} MB; a config or rules file may be at most {MAX_BYTES // 1024} KB"
            )
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(resolved, "", "file not found (create one with `leadsync init`)") from None
    except OSError as exc:
        raise ConfigError(resolved, "", f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(resolved, "", "cannot be read (expected UTF-8 text)") from None
    if any(c in text for c in _RESERVED):
        raise ConfigError(resolved, "", "contains U+E000..U+E002, characters leadsync reserves")
    loader = _Loader(_protect(text))
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(resolved, where, f"invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return _restore(data)


def key_lines(resolved: Path) -> dict[tuple[str | int, ...], int]:
    """The line (1-based) of every key and list item of a YAML file, by its path (``("scoring", "fit", 2)``),
    so that findings about a rule or a mapped field can point at it. Empty when the file cannot be read
    (its own problems are reported by :func:`_read_yaml`)."""
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    loader = _Loader(_protect(text))
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return {}
    finally:
        loader.dispose()
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node | None, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    child = (*path, _restore(key.value))
                    lines.setdefault(child, key.start_mark.line + 1)
                    walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault((*path, i), item.start_mark.line + 1)
                walk(item, (*path, i))

    walk(root, ())
    return lines


class _Interpolation:
    """One pass over parsed config data: ``${NAME}`` is replaced in connection settings and rejected
    anywhere else, so that a rule's label or points can never carry a token into the CRM."""

    def __init__(self, source: str, *, resolve: bool = True) -> None:
        self.source = source
        #: False: check where references stand, but leave them (offline commands need no CRM token)
        self.resolve = resolve
        #: key -> the variables its value came from (messages say "the value of ${NAME}", never the value)
        self.used: dict[str, list[str]] = {}

    def walk(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.walk(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return self._text(value, key)
        return value

    def _text(self, text: str, key: str) -> str:
        template = _EnvTemplate(text)
        names = template.get_identifiers()
        if not template.is_valid():
            raise ConfigError(
                self.source, key, "expected `${NAME}` (letters, digits, _); write `$${` for a literal `${`"
            )
        if key not in env_keys():
            if names:
                raise ConfigError(
                    self.source,
                    key,
                    f"`${{{names[0]}}}` is not replaced here: environment variables are read only in connection "
                    f"settings ({', '.join(sorted(env_keys()))}); write `$${{` for a literal `${{`",
                )
            return template.substitute()
        if not self.resolve or not names:
            return text if names else template.substitute()
        values: dict[str, str] = {}
        for name in names:
            raw = os.environ.get(name)
            if raw is None:
                raise ConfigError(self.source, key, f"environment variable {name} is not set (used as ${{{name}}})")
            if key in secret_keys():
                register_secret(raw)
            values[name] = raw.strip()
        self.used[key] = names
        return template.substitute(values)


def interpolate(data: Any, source: str) -> Any:
    """``data`` with ``${NAME}`` replaced in connection settings; a ConfigError for one anywhere else."""
    return _Interpolation(source).walk(data)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSpotConfig(_Section):
    access_token: Secret
    base_url: EnvText = "https://api.hubapi.com"
    #: a budget of requests per rolling 10 s that leadsync never exceeds (a share of the portal's limit);
    #: unset: start at 100 and follow the portal's own X-HubSpot-RateLimit-Max (100, 190 or more)
    rate_limit_per_10s: int | None = Field(default=None, gt=0)
    #: share of the portal's advertised limit left unused, for the portal's other integrations and clock skew
    rate_limit_margin: float = Field(default=0.1, ge=0, lt=1)
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
    instance_url: OptionalEnvText = None
    login_url: EnvText = "https://login.salesforce.com"
    access_token: OptionalSecret = None
    client_id: OptionalEnvText = None
    client_secret: OptionalSecret = None
    username: OptionalEnvText = None
    private_key_file: OptionalEnvText = None
    ca_file: OptionalEnvText = None
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
    lifecycle_order: list[str] = Field(default_factory=lambda: list(LIFECYCLE_STAGES))
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
    #: pages read ahead by a reader thread while the pass scores and writes (0: no thread); the rate
    #: limiter shared by both threads still caps the calls
    read_ahead_pages: int = Field(default=2, ge=0, le=16)
    #: a record with a longer value (characters) is refused on its own (``sync.refusals``), never scored
    max_value_chars: int = Field(default=8 * 1024 * 1024, ge=65_536)


class StateConfig(_Section):
    url: EnvText = "sqlite:///leadsync-state.db"


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
    #: re-evaluate the scores against outcomes (leadsync evaluate, logged and exported as gauges)
    evaluate: JobScheduleConfig | None = Field(default_factory=lambda: JobScheduleConfig(every=15 * 86400))
    #: retrain the predictive model; the new one becomes active only if it beats the active one
    train: JobScheduleConfig | None = Field(default_factory=lambda: JobScheduleConfig(every=15 * 86400))


class OutcomesConfig(_Section):
    """What counts as converted, and the window it must happen in (``leadsync evaluate`` and the daemon)."""

    #: read outcomes with the leads (off: no outcome reads, evaluation only from a labeled CSV)
    enabled: bool = True
    #: HubSpot: reaching this lifecycle stage counts (its hs_lifecyclestage_<stage>_date); null: it does not
    lifecycle_stage: Literal["customer", "opportunity", "salesqualifiedlead"] | None = "customer"
    #: an associated deal closed won (HubSpot) / a won Opportunity (Salesforce) counts
    closed_won: bool = True
    #: Salesforce: a converted Lead counts even when its Opportunity is not (yet) won
    converted_lead: bool = False
    #: converted within this many days of the anchor counts; younger unconverted leads are pending
    window_days: int = Field(default=90, gt=0)
    #: the window starts when the lead was created, or when leadsync first scored it
    window_from: Literal["created", "first_scored"] = "created"
    #: the score evaluated is the one the lead had this many days before its outcome (never after it)
    lead_time_days: float = Field(default=1, ge=0)
    #: the scheduled evaluation warns when AUC falls by more than this from the previous one
    auc_drop_warn: float = Field(default=0.05, ge=0, le=1)
    #: cached leads without an outcome (window still open) asked again each pass: conversions that do not
    #: modify the lead (a converted Salesforce Lead, a HubSpot deal closing won) are otherwise missed; 0: off
    recheck_per_pass: int = Field(default=5000, ge=0)
    #: seconds between two such re-checks (a pass in between asks nothing: outcomes are slow, calls are not free)
    recheck_interval_s: float = Field(default=3600, ge=0)

    def spec(self) -> OutcomeSpec:
        """The CRM-neutral definition the connectors read."""
        return OutcomeSpec(
            lifecycle_stage=self.lifecycle_stage, closed_won=self.closed_won, converted_lead=self.converted_lead
        )


class ModelConfig(_Section):
    """The predictive model (``leadsync model train``, the daemon's ``schedule.train``; see the README)."""

    #: score with the active model during sync and ``score --input`` (off: rules alone)
    enabled: bool = True
    #: labeled leads needed to train (never fewer than 100), and leads of the smaller outcome (never fewer than 20)
    min_labeled: int = Field(default=100, ge=100)
    min_minority: int = Field(default=20, ge=20)
    #: attributes or CSV columns never used as features (e.g. fields sales fills in during the deal)
    exclude: list[str] = Field(default_factory=list)
    #: features the leakage guard lets through (known before the outcome despite separating it so well)
    allow_leaky: list[str] = Field(default_factory=list)
    #: share of labeled leads held out for the metrics (the latest ones when dates exist)
    holdout: float = Field(default=0.2, ge=0.1, le=0.5)
    #: most values a categorical keeps (the rest share one "other" value)
    max_categories: int = Field(default=60, ge=2, le=250)


class ChallengerConfig(_Section):
    """A shadow rule set scored beside the configured one every pass (``challenger:``; see the README).

    Top level rather than under ``scoring:``, whose keys are the rules and are checked strictly.
    """

    #: the challenger's rules: a bare rules file or a config-like file with a ``scoring:`` key (as
    #: ``preview --rules``); a relative path is read from the config file's directory
    rules: str
    #: the share of leads (by a stable hash of their id) for which the challenger's score is written
    split: float = Field(default=0.0, ge=0, le=1)


class RunConfig(_Section):
    """The daemon process: HTTP endpoints, leases between replicas, shutdown."""

    #: /healthz, /readyz and /metrics (9464: the usual Prometheus exporter port); 0 picks a free port
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    host: str = "0.0.0.0"
    #: on SIGTERM, finish or checkpoint the page in flight and exit within this many seconds
    shutdown_grace_s: float = Field(default=30, gt=0)
    #: a replica holds the job lease this long past its last renewal; another takes over after it dies
    lease_ttl_s: float = Field(default=30, ge=1)
    #: hold the job under a lock that dies with its holder (PostgreSQL advisory lock / file lock beside a
    #: SQLite file): a standby takes over within about a second of a crash instead of ``lease_ttl_s``; turn
    #: off only behind a PgBouncer in transaction mode, which cannot keep a session's advisory lock
    job_lock: bool = True
    #: how often /readyz re-checks the state store and the CRM in the background
    probe_interval_s: float = Field(default=15, gt=0)


class WebhooksConfig(_Section):
    """Near-real-time scoring from the CRM's change notifications (``/webhooks/hubspot``, ``/webhooks/salesforce``
    on the ``run.port``); off by default. The scheduled ``sync`` pass stays the safety net."""

    enabled: bool = False
    #: HubSpot: the app's client secret, the key of ``X-HubSpot-Signature-v3``
    hubspot_client_secret: OptionalSecret = None
    #: Salesforce: the shared secret (``X-Leadsync-Secret`` header, ``?secret=`` of an Outbound Message URL)
    #: or the HMAC key (``X-Leadsync-Signature``)
    salesforce_secret: OptionalSecret = None
    #: Salesforce: only Outbound Messages of this org are accepted (None: any org with the secret)
    salesforce_org_id: OptionalEnvText = None
    #: the URL HubSpot is configured to call, as it signs it (behind a proxy or TLS terminator the request's
    #: own host and scheme differ); None: rebuilt from the request (``Host``, ``X-Forwarded-Proto``)
    public_url: OptionalEnvText = None
    #: notified ids are gathered this long before one micro-pass reads them (one batch read per 100 ids)
    batch_window_s: float = Field(default=2.0, gt=0, le=60)
    #: ids waiting at most; past it, notifications are answered 2xx and left to a catch-up pass
    queue_size: int = Field(default=10_000, ge=1)
    #: a signed request with a timestamp further than this from now is a replay (HubSpot: 5 minutes)
    max_age_s: float = Field(default=300, gt=0, le=3600)
    #: the largest request body read (a HubSpot batch of 100 events is about 30 KiB)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)


#: cells read as missing in a CSV (``csv.null_values`` adds to them; ``csv.default_null_values: false`` drops them)
DEFAULT_NULL_VALUES = ("", "NA", "N/A", "n/a", "null", "NULL", "None", "#N/A")
#: the delimiters ``leadsync score`` and ``check --input`` detect (``csv.delimiter`` / ``--delimiter`` force one)
CSV_DELIMITERS = (",", ";", "\t", "|")
#: the keys of the ``csv:`` section that describe the file rather than the column mapping
CSV_FILE_KEYS = ("null_values", "default_null_values", "delimiter", "encoding", "max_line_chars")
#: the longest line of a CSV input read (characters): a longer one is reported on its own and skipped
#: without being held in memory (a 100 MB line is a broken export, never a lead)
CSV_MAX_LINE_CHARS = 1 << 20


class CsvFileConfig(_Section):
    """How a CSV export is read (the ``csv:`` section's file keys; the rest of it is the column mapping)."""

    #: placeholders that mean "no value" in this export (a form's ``Select``, ``-``), added to the defaults
    null_values: list[str] = Field(default_factory=list)
    #: also read :data:`DEFAULT_NULL_VALUES` as missing (off: a country code ``NA`` is Namibia)
    default_null_values: bool = True
    #: one of , ; tab | (default: detected from the file)
    delimiter: str | None = None
    #: the file's text encoding (default utf-8, a BOM accepted; latin-1 and cp1252 for older exports)
    encoding: str | None = None
    #: a longer line is rejected on its own (and not read into memory); see :data:`CSV_MAX_LINE_CHARS`
    max_line_chars: int = Field(default=CSV_MAX_LINE_CHARS, ge=1024)

    @field_validator("delimiter", mode="before")
    @classmethod
    def _one_delimiter(cls, value: Any) -> Any:
        return check_delimiter(value) if value is not None else None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        return check_encoding(value) if value is not None else None

    def nulls(self) -> frozenset[str]:
        """Every cell text (after trimming) read as missing."""
        base = DEFAULT_NULL_VALUES if self.default_null_values else ("",)
        return frozenset(v.strip() for v in (*base, *self.null_values))


def check_delimiter(value: Any) -> str:
    """``,`` ``;`` ``|`` or a tab (also written ``tab`` or ``\\t``); a ValueError naming the choices otherwise."""
    text = "\t" if value in ("tab", "\\t", "TAB") else value
    if text not in CSV_DELIMITERS:
        raise ValueError(f"expected one of , ; | or tab, got {value!r}")
    return str(text)


def check_encoding(value: str) -> str:
    """A text encoding Python knows (utf-8, latin-1, cp1252, ...); a ValueError otherwise."""
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown text encoding {value!r} (expected e.g. utf-8, latin-1 or cp1252)") from None
    return value


def split_csv_section(section: Any, source: str) -> tuple[dict[str, Any] | None, CsvFileConfig]:
    """The ``csv:`` section as (column mapping for ``load_mapping``, how the file is read)."""
    if not isinstance(section, dict):
        return section, CsvFileConfig()
    mapping = {k: v for k, v in section.items() if k not in CSV_FILE_KEYS}
    try:
        options = CsvFileConfig.model_validate({k: v for k, v in section.items() if k in CSV_FILE_KEYS})
    except ValidationError as exc:
        key, message = _describe(exc.errors()[0], {})
        raise ConfigError(source, f"csv.{key}", message) from None
    return mapping or None, options


class Config(_Section):
    crm: Literal["hubspot", "salesforce"]
    hubspot: HubSpotConfig | None = None
    salesforce: SalesforceConfig | None = None
    #: the mapping section, or the path of a mapping file (``leadsync mappings discover --output``)
    mapping: dict[str, Any] | str | None = None
    #: column -> attribute mapping for `leadsync score --input file.csv`
    csv: dict[str, Any] | None = None
    scoring: dict[str, Any] | None = None
    writeback: WritebackConfig = Field(default_factory=WritebackConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    outcomes: OutcomesConfig = Field(default_factory=OutcomesConfig)
    #: a shadow challenger rule set (None: the configured rules only)
    challenger: ChallengerConfig | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)

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

    @model_validator(mode="after")
    def _webhook_secret_present(self) -> Config:
        key = "hubspot_client_secret" if self.crm == "hubspot" else "salesforce_secret"
        if self.webhooks.enabled and getattr(self.webhooks, key) is None:
            raise ValueError(
                f"webhooks are enabled for {self.crm}, so webhooks.{key} is required (e.g. ${{WEBHOOK_SECRET}}): "
                "unauthenticated notifications are never accepted"
            )
        return self


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models(arg)


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every field of ``model`` and of its nested sections, as (dotted key, FieldInfo)."""
    for name, info in model.model_fields.items():
        yield prefix + name, info
        for nested in _models(info.annotation):
            yield from _fields(nested, f"{prefix}{name}.")


@cache
def env_keys() -> frozenset[str]:
    """The connection settings ``${NAME}`` is replaced in (fields marked FROM_ENV)."""
    return frozenset(key for key, info in _fields(Config) if FROM_ENV in info.metadata)


@cache
def secret_keys() -> frozenset[str]:
    """The settings that hold secrets: their values are registered with the scrubber, never shown."""
    return frozenset(key for key, info in _fields(Config) if SecretStr in set(_leaf_types(info.annotation)))


def _leaf_types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in get_args(annotation):
        yield from _leaf_types(arg)


def _describe(error: Mapping[str, Any], used: Mapping[str, list[str]]) -> tuple[str, str]:
    key = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; `leadsync init` writes every key with comments)"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif key in used:
        message = f"{message} (got {' and '.join(f'the value of ${{{name}}}' for name in used[key])})"
    elif key in secret_keys():
        pass  # never echo what was given as a secret
    elif "input" in error and not isinstance(error["input"], dict | list):
        message = f"{message} (got {error['input']!r})"
    return key, message


def _check_top_level(data: Any, source: str) -> dict[str, Any]:
    """The same check for every command: a YAML mapping whose keys are all known sections."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a YAML mapping at the top level (e.g. `crm: hubspot`)")
    known = list(Config.model_fields)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(source, str(key), f"unknown key ({hint}expected one of: {', '.join(known)})")
    return data


def _register_secrets(config: Config) -> None:
    """Tell the one scrubber (logs and CLI messages) every secret of this config."""
    for key in secret_keys():
        section, _, name = key.partition(".")
        value = getattr(getattr(config, section, None), name, None)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
    with contextlib.suppress(Exception):  # an unparsable URL fails later, with its own message
        register_secret(make_url(config.state.url).password)


def parse_config(data: Any, source: str = "<memory>") -> Config:
    """Validate already-parsed YAML data."""
    interpolation = _Interpolation(source)
    data = interpolation.walk(_check_top_level(data, source))
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        key, message = _describe(exc.errors()[0], interpolation.used)
        raise ConfigError(source, key, message) from None
    config._source = source
    _register_secrets(config)
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

    The whole file is checked as strictly as for ``load_config`` (one loader, known top-level keys,
    ``${NAME}`` only in connection settings), but environment variables are not read and no CRM section is
    required. Without ``--config`` and without a default file, returns no sections: the packaged defaults
    apply.
    """
    resolved = resolve_path(path)
    if path is None and not resolved.exists():
        return "<defaults>", {}
    source = str(resolved)
    data = _Interpolation(source, resolve=False).walk(_check_top_level(_read_yaml(resolved), source))
    return source, {k: data[k] for k in keys if data.get(k) is not None}


def load_rules_file(path: Path) -> tuple[str, Any]:
    """A proposed ``scoring:`` section (``leadsync preview --rules``): a config-like file with a
    ``scoring:`` key, or a bare rules file; read and checked like a config. Returns (source, section)."""
    source = str(path)
    data = _read_yaml(path)
    if isinstance(data, dict) and "scoring" in data:
        checked = _Interpolation(source, resolve=False).walk(_check_top_level(data, source))
        return f"{source}: scoring", checked["scoring"]
    return source, _Interpolation(source, resolve=False).walk(data, "scoring")


def mapping_file(config: Config) -> Path | None:
    """The mapping file a ``mapping: FILE`` config names (relative to the config's directory), else None."""
    if not isinstance(config.mapping, str):
        return None
    path = Path(config.mapping).expanduser()
    if not path.is_absolute() and Path(config.source).is_file():
        path = Path(config.source).parent / path
    return path


def load_mapping_section(config: Config) -> tuple[str, dict[str, Any] | None]:
    """(where it was read, the mapping section): inline ``mapping:``, or a mapping file read as strictly as a
    config (bare, or with a top-level ``mapping:`` key)."""
    path = mapping_file(config)
    if path is None:
        return "mapping", config.mapping if isinstance(config.mapping, dict) else None
    if not path.is_file():
        raise ConfigError(config.source, "mapping", f"{path} is not a file (a mapping section or a mapping file)")
    data = _Interpolation(str(path), resolve=False).walk(_read_yaml(path), "mapping")
    if isinstance(data, dict) and set(data) == {"mapping"}:
        data = data["mapping"]
    if not isinstance(data, dict):
        raise ConfigError(path, "", "expected a mapping with `fields:` (and optionally `object_type:`, `objects:`)")
    return str(path), data


def secret(value: SecretStr | None) -> str:
    """The plain value of a secret (only at the point of use; never logged)."""
    return value.get_secret_value() if value is not None else ""
