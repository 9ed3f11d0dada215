"""The ``leadsync`` command line (typer). Thin: every command wires config -> app -> sync/scoring."""

from __future__ import annotations

import csv
import dataclasses
import functools
import gc
import inspect
import json
import sys
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from leadsync.csv_commands import DelimiterOption, EncodingOption
from leadsync.logs import configure_logging, scrub
from leadsync.starter import TEMPLATES
from sync.schedule import DEFAULT_PORT

# Start-up (issue 21): registering the commands imports only typer, rich's console and the light modules
# above; each command imports what it uses in its body (`leadsync --help` and `explain` stay fast, and
# tests/test_startup.py checks which modules they load).
if TYPE_CHECKING:
    from rich.progress import Progress

    from leadsync.app import App
    from sync.pipeline import Progress as ProgressCallback
    from sync.pipeline import SyncSummary
    from sync.state import StateStore

app = typer.Typer(
    name="leadsync",
    help="Lead scoring for HubSpot and Salesforce: pull, score with YAML rules, write back, trigger workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $LEADSYNC_CONFIG, else ./leadsync.yaml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def shared_options(options: type[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Commands that take a group of options as one dataclass (``command(options_object, **own_options)``).

    Typer reads a command's options off its signature: the decorated function's lists the command's own
    options, then the dataclass's fields (typed and documented there), and each call gathers those back into
    one ``options`` object. One declaration serves every command that shares the group.
    """
    hints = typing.get_type_hints(options, include_extras=True)
    shared = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name], default=f.default)
        for f in dataclasses.fields(options)
    ]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        _, *own = signature.parameters.values()  # the first one receives the options object
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared

        @functools.wraps(command)
        def run_command(**given: Any) -> None:
            command(options(**{p.name: given.pop(p.name) for p in shared}), **given)

        run_command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run_command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return run_command

    return decorate


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, every known secret scrubbed (whatever shape it takes in the message), then exit."""
    err.print(f"[bold red]error:[/] {escape(scrub(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _os_problem(exc: OSError) -> str:
    """``path: strerror`` (both paths of a rename), else the error's own text."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if paths and exc.strerror:
        return f"{' -> '.join(paths)}: {exc.strerror}"
    return exc.strerror or str(exc) or type(exc).__name__


#: the errors that end a command with their message and this exit code, tried in this order (a subclass
#: before its base): (module, class, exit code). Looked up in ``sys.modules``, never imported: an exception
#: whose class's module was never imported cannot have been raised, and a command that fails early (a bad
#: option, a missing file) does not pay for importing the config, the scoring engine or SQLAlchemy to say so.
_CLEAN_ERRORS: typing.Final = (
    ("leadsync.config", "ConfigError", 2),
    ("mappings.errors", "MappingError", 2),
    ("scoring.errors", "ScoringError", 2),
    ("connectors.errors", "BudgetExhausted", 4),
    ("connectors.errors", "ConnectorError", 3),
    ("sync.state.engine", "StateStoreError", 2),
)


def _clean_exit_code(exc: BaseException) -> int | None:
    """The exit code of a known error (:data:`_CLEAN_ERRORS`), None for any other exception."""
    for module_name, class_name, code in _CLEAN_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return code
    return None


@contextmanager
def clean_errors() -> Iterator[None]:
    """Bad input, host and CRM failures end a command with one message and a non-zero exit, no traceback."""
    try:
        yield
    except Exception as exc:
        code = _clean_exit_code(exc)
        if code is not None:
            fail(str(exc), code)
        if isinstance(exc, OSError):  # missing folder, read-only file system, full disk
            fail(_os_problem(exc), 2)
        if isinstance(exc, RecursionError):
            fail("the input is nested too deeply to process", 2)
        raise


#: the --log-level given on the command line (None: each command's default; `run` logs at info)
_log_level: dict[str, str | None] = {"given": None}


@app.callback()
def main_options(
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", help="debug, info, warning or error (JSON on stderr; default warning, info for run)."
        ),
    ] = None,
) -> None:
    _log_level["given"] = log_level
    configure_logging(log_level or "warning")


@app.command()
def init(
    crm: Annotated[str, typer.Option(help="hubspot or salesforce")] = "hubspot",
    path: Annotated[Path, typer.Option("--path", help="Where to write the config.")] = Path("leadsync.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    from_csv: Annotated[
        Path | None, typer.Option("--from-csv", help="Write a config for this CSV: its columns, tables of its values.")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="With --from-csv: conversion rates from COL.")] = None,
) -> None:
    """Write a commented starter config (for a CRM, or for a CSV export with --from-csv)."""
    if from_csv is not None:
        from leadsync.init_csv import write_starter

        _csv_command(from_csv, lambda: write_starter(from_csv, label, path, force=force) and 0)
        out.print(f"wrote {path}; fill in the points, then `leadsync check --input {from_csv} --config {path}`")
        return
    if crm not in TEMPLATES:
        fail(f"--crm: expected one of {', '.join(TEMPLATES)}, got {crm!r}", 2)
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)", 2)
    path.write_text(TEMPLATES[crm], encoding="utf-8")
    out.print(f"wrote {path}; set the token in the environment, then run `leadsync check --config {path}`")


@app.command()
def check(
    config: ConfigOption = None,
    input_path: Annotated[
        Path | None, typer.Option("--input", "-i", help="Check the rules against this CSV instead (no CRM).")
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
) -> None:
    """Validate config and mapping, check CRM connectivity and the custom properties (or, with --input, the
    rules against a CSV's columns and values)."""
    if input_path is not None:
        from leadsync.csv_commands import run_check

        raise typer.Exit(
            _csv_command(
                input_path,
                lambda: run_check(input_path, config, delimiter=delimiter, encoding=encoding, out=out, err=err),
            )
        )
    with clean_errors():
        application = load_app(config)
        connector = application.connector()
        schema = connector.describe()
        out.print(f"[green]ok[/] config {application.config.source}; {application.config.crm} reachable")
        from leadsync.mapping_check import validate_mapping
        from leadsync.mappings_cli import print_findings

        checked = validate_mapping(application, connector)
        print_findings(checked.findings)
        problems = checked.errors
        specs = application.writeback.property_specs()
        lister = getattr(connector, "missing_properties", None)  # Salesforce: per object (Lead.X, Contact.X)
        missing = lister(specs) if lister is not None else [s.name for s in specs if s.name not in schema]
        if missing:
            err.print(
                f"[yellow]missing properties[/] (created by the first sync): {', '.join(missing)}", highlight=False
            )
        _check_state_store(application)
        out.print(f"rules version {application.rules.version}")
        if problems:
            raise typer.Exit(1)


def _check_state_store(application: App) -> None:
    """Connect to the state store (without migrating it) and say which one it is, or fail naming it (exit 2)."""
    from sync.state import StateStore, StateStoreError

    store = StateStore(application.config.state.url)
    try:
        store.ping()
        revision, head = store.schema_revision(), store.head_revision()
    except StateStoreError as exc:
        fail(str(exc), 2)
    finally:
        store.close()
    schema = f"schema {revision}" if revision else "empty (the first sync creates the schema)"
    if revision and revision != head:
        schema += f", {head} available (the next sync or `leadsync migrate` upgrades it)"
    out.print(f"[green]ok[/] state store {store.where} reachable; {schema}", highlight=False)


def load_app(config: Path | None) -> App:
    """The config's application (mapping, rules, writeback checked); mistakes raise, for :func:`clean_errors`."""
    from leadsync.app import build_app
    from leadsync.config import load_config

    return build_app(load_config(config))


def _progress_bar() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _with_progress(quiet: bool, work: Callable[[Callable[[str, int], None]], T]) -> T:
    """Run ``work(progress_callback)`` under a rich progress display (on stderr; none when quiet)."""
    if quiet or not err.is_terminal:
        return work(lambda event, n: None)
    with _progress_bar() as bar:
        tasks = {name: bar.add_task(name, total=None) for name in ("read", "scored", "written")}

        def advance(event: str, n: int) -> None:
            if event in tasks:
                bar.advance(tasks[event], n)

        return work(advance)


def print_summary(summary: dict[str, Any], title: str) -> None:
    from rich.table import Table

    from sync.pipeline import SUMMARY_KEYS

    table = Table(title=title, show_header=False, title_justify="left")
    for key in SUMMARY_KEYS:
        table.add_row(key.replace("_", " "), str(summary[key]))
    grades = summary.get("grades") or {}
    table.add_row("grades", ", ".join(f"{g} {n}" for g, n in grades.items()))
    if summary.get("records_refused"):  # a partial pass: the refused records are listed by `leadsync status`
        by_reason = ", ".join(f"{r} {n}" for r, n in summary["refused_by_reason"].items())
        table.add_row("records refused", f"{summary['records_refused']} ({by_reason}; see `leadsync status`)")
    out.print(table)


@app.command()
def sync(
    config: ConfigOption = None,
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit (the daemon is `leadsync run`).")] = False,
    full: Annotated[bool, typer.Option("--full", help="Read every record, not just the changed ones.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Score and diff, write nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """One sync pass: pull, score, write back what changed, trigger workflows."""
    if not once:
        fail("`leadsync sync` runs one pass: pass --once (the scheduled daemon is `leadsync run`)", 2)
    with clean_errors():
        application = load_app(config)
        store = application.store()
        try:
            summary = _with_progress(as_json, lambda progress: _one_pass(application, store, progress, full, dry_run))
        finally:
            store.close()
    if as_json:
        sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    else:
        print_summary(summary.as_dict(), "dry run (nothing written)" if dry_run else "sync")


def _one_pass(
    application: App, store: StateStore, progress: ProgressCallback, full: bool, dry_run: bool
) -> SyncSummary:
    """One pass under the job's lease, so a one-off sync never writes beside a running daemon."""
    from sync.daemon import RUN_JOB, GuardedConnector
    from sync.joblock import job_lock
    from sync.lease import LeaseKeeper, lease_name

    pipeline = application.pipeline(store, progress)
    if dry_run:
        return pipeline.run_once(full=full, dry_run=True)  # writes nothing: no lease needed
    name, run = lease_name(pipeline.stream), application.config.run
    lock = job_lock(store.connect_url, name) if run.job_lock else None
    keeper = LeaseKeeper(store, name, pipeline.owner, run.lease_ttl_s, lock=lock)
    keeper.start()
    try:
        if not keeper.held():
            holder = store.lease_holder(keeper.name)
            fail(
                f"another leadsync ({holder[0] if holder else 'unknown'}) holds the lease of {pipeline.stream}: "
                "stop it or let its pass finish, then try again",
                1,
            )
        # holding the lease, nobody else runs this job: a run still `running` is one whose process died
        store.abandon_runs(RUN_JOB)
        pipeline.connector = GuardedConnector(pipeline.connector, keeper.check)
        return pipeline.run_once(full=full, dry_run=False)
    finally:
        keeper.stop()


@app.command()
def status(config: ConfigOption = None, as_json: JsonOption = False, limit: int = 10) -> None:
    """Last runs, watermarks, pending/failed writes, records refused and the workflow outbox."""
    from rich.table import Table

    from sync.lease import lease_name

    with clean_errors():
        application = load_app(config)
        store = application.store()
        try:
            stream = f"{application.config.crm}:{application.mapping.object_type}s"
            runs = store.last_runs(limit, lease=lease_name(stream))  # a killed run shows as abandoned
            watermark = store.get_watermark(stream)
            failures = store.failed_writes()
            outbox = store.outbox_counts()
            cached = store.count_leads()
            lease = store.lease_holder(lease_name(stream))
        finally:
            store.close()
    lag = round((datetime.now(UTC) - watermark).total_seconds(), 1) if watermark else None
    lease_info = {"name": lease_name(stream), "holder": lease[0], "expires_at": lease[1].isoformat()} if lease else None
    data = {
        "watermarks": {stream: watermark.isoformat() if watermark else None},
        "watermark_lag_s": {stream: lag},
        "lease": lease_info,
        "leads_cached": cached,
        "rate_limit": next((r.summary.get("rate_limit") for r in runs if r.summary.get("rate_limit")), None),
        "runs": [
            {
                "id": r.id,
                "job": r.job,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "status": r.status,
                "error": r.error,
                "leads_read": r.summary.get("leads_read"),
                "leads_written": r.summary.get("leads_written"),
                "records_refused": r.summary.get("records_refused", 0),
            }
            for r in runs
        ],
        # the records the last pass that refused any refused, with the CRM's context (sync.refusals)
        "refused_records": next((r.summary["refusals"] for r in runs if r.summary.get("refusals")), []),
        "failed_writes": [
            {
                "lead_id": f.lead_id,
                "message": f.message,
                "retriable": f.retriable,
                "attempts": f.attempts,
                "last_failed_at": f.last_failed_at.isoformat(),
            }
            for f in failures
        ],
        "outbox": outbox,
    }
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    out.print(f"watermark {stream}: {data['watermarks'][stream] or 'none (next sync reads everything)'}")
    if lag is not None:
        out.print(f"watermark lag: {lag:.0f}s")
    holder = f"held by {lease[0]} until {lease[1].isoformat()}" if lease else "free (no daemon running)"
    out.print(f"daemon lease: {holder}")
    out.print(f"leads cached: {cached}; outbox: {outbox or 'empty'}")
    from sync.pipeline import describe_rate_limit

    out.print(f"rate limit: {describe_rate_limit(data['rate_limit'])}")
    columns = ("run", "started", "status", "read", "written", "refused", "error")
    runs_table = Table(*columns, title="last runs", title_justify="left")
    for r in data["runs"]:
        read, written, refused = (str(r[k]) for k in ("leads_read", "leads_written", "records_refused"))
        runs_table.add_row(str(r["id"]), r["started_at"], r["status"], read, written, refused, r["error"] or "")
    out.print(runs_table)
    if data["refused_records"]:
        refused_table = Table("object", "record", "call", "problem", title="refused records", title_justify="left")
        for f in data["refused_records"]:
            refused_table.add_row(f["object"], f["id"] or "(none)", f["call"], f["problem"])
        out.print(refused_table)
    if failures:
        fail_table = Table("lead", "attempts", "retriable", "CRM message", title="failed writes", title_justify="left")
        for f in data["failed_writes"]:
            fail_table.add_row(f["lead_id"], str(f["attempts"]), "yes" if f["retriable"] else "no", f["message"])
        out.print(fail_table)


def _now() -> datetime:
    return datetime.now(UTC)


@app.command()
def explain(
    lead: Annotated[str, typer.Argument(metavar="EMAIL_OR_ID", help="Email address or CRM id of the lead.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """The score, grade and every rule hit of one lead, from the local cache (no CRM call)."""
    from rich.table import Table

    from leadsync.inspect_cache import explain as explain_lead

    with clean_errors():
        application = load_app(config)
        store = application.store()
        try:
            found = explain_lead(store, application.rules, application.mapping, lead, _now())
            model = None
            # scikit-learn only for a store with an active model (seconds of imports an explanation without
            # one does not need)
            if found is not None and application.config.model.enabled and store.active_model_version():
                from leadsync.model_apply import explain_likelihood

                exclude = application.config.model.exclude
                model = explain_likelihood(
                    store, application.rules, application.mapping, found.lead.id, _now(), exclude
                )
        finally:
            store.close()
    if found is None:
        fail(f"no lead '{lead}' in the local cache (run `leadsync sync --once` first, or check the address)", 1)
    data = found.as_dict() | {"model": model}
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    status = "qualified (MQL)" if data["qualified"] else "not qualified"
    out.print(
        f"[bold]{data['email'] or data['id']}[/] (id {data['id']}): score [bold]{data['score']}[/], "
        f"grade {data['grade']}, {status}",
        highlight=False,
    )
    out.print(
        f"fit {data['fit']} + engagement {data['engagement']} + penalties {data['penalties']} "
        f"= {data['points']:g} points; rules {data['rules_version']}",
        highlight=False,
    )
    if data["last_synced_score"] is not None and data["last_synced_score"] != data["score"]:
        out.print(
            f"[yellow]the CRM holds {data['last_synced_score']} from the last sync "
            f"(rules {data['last_synced_rules_version']}); the next sync writes {data['score']}[/]",
            highlight=False,
        )
    table = Table("part", "rule", "points", "matched", title="rule hits", title_justify="left")
    for hit in data["hits"]:
        count = f" x{hit['count']}" if hit["count"] > 1 else ""
        table.add_row(hit["part"], hit["rule"], f"{hit['points']:+g}", f"{hit['value']}{count}")
    out.print(table)
    if model is not None:
        from leadsync.model_apply import print_factors

        print_factors(out, model)


@app.command()
def preview(
    rules: Annotated[Path, typer.Option("--rules", help="YAML with the proposed `scoring:` section.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Impact of a rules change before it goes live, from the local cache: grades, MQL crossings, examples."""
    from rich.table import Table

    from leadsync.app import load_scoring
    from leadsync.config import load_rules_file
    from leadsync.inspect_cache import preview as preview_rules
    from scoring import ScoringError

    with clean_errors():
        application = load_app(config)
        source, section = load_rules_file(rules)  # with or without the `scoring:` key
        try:
            proposed = load_scoring(section, application.mapping, source=source)
        except ScoringError as exc:
            fail(str(exc), 2)
        store = application.store()
        try:
            impact = preview_rules(store, application.rules, proposed, application.mapping, _now())
        finally:
            store.close()
    data = impact.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    if not impact.leads:
        fail("the local cache is empty: run `leadsync sync --once` first", 1)
    out.print(
        f"rules {impact.current_version} -> {impact.new_version} over {impact.leads} cached leads: "
        f"{impact.score_changes} scores change (mean {impact.mean_delta:+}), {impact.grade_changes} change grade, "
        f"{impact.newly_qualified} would become MQL, {impact.newly_unqualified} would stop being MQL",
        highlight=False,
    )
    grades = ["hot", "warm", "cold"]
    matrix = Table("now \\ proposed", *grades, title="grades", title_justify="left")
    for old in grades:
        matrix.add_row(old, *(str(impact.grade_matrix.get(old, {}).get(new, 0)) for new in grades))
    out.print(matrix)
    for kind, title in (
        ("qualify", "would become MQL"),
        ("unqualify", "would stop being MQL"),
        ("regrade", "regraded"),
    ):
        if impact.examples[kind]:
            table = Table("lead", "score", "grade", title=f"examples: {title}", title_justify="left")
            for c in impact.examples[kind]:
                table.add_row(c.email or c.id, f"{c.old_total} -> {c.new_total}", f"{c.old_grade} -> {c.new_grade}")
            out.print(table)


@app.command()
def score(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="CSV with a header row.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Scored CSV (default or '-': stdout); a FIFO or device is written as a stream."
        ),
    ] = None,
    config: ConfigOption = None,
    max_record_lines: Annotated[
        int,
        typer.Option(
            "--max-record-lines",
            min=1,
            help="A quoted field spanning more lines than this is a stray quote: that record is skipped.",
        ),
    ] = 20,  # leadsync.scorefile.MAX_RECORD_LINES
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Write the skipped records (line, reason, text) to this CSV.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="A value unreadable as its mapped type rejects its row (default: missing).")
    ] = False,
    output_prefix: Annotated[
        str, typer.Option("--output-prefix", help="Name the score columns P + column (score -> P_score...).")
    ] = "",
    replace_columns: Annotated[
        bool, typer.Option("--replace-columns", help="Write over input columns named like score columns.")
    ] = False,
    escape_formulas: Annotated[
        bool,
        typer.Option(
            "--escape-formulas/--no-escape-formulas",
            help="Prefix ' to cells a spreadsheet would run as formulas (= + - @ tab CR; not plain numbers).",
        ),
    ] = True,
) -> None:
    """Score a CSV file with the configured rules, no CRM: input columns + score, fit, engagement, grade, reasons.

    The rules are checked against the file first (as `check --input`; an error refuses, exit 2). Exit 1 when
    rows were rejected (each is reported with its line, the others are scored), 2 when the input or output is
    unusable.
    """
    from leadsync.csv_commands import run_score
    from leadsync.scorefile import OutputColumns

    columns = OutputColumns(prefix=output_prefix, replace=replace_columns)
    raise typer.Exit(
        _csv_command(
            input_path,
            lambda: run_score(
                input_path,
                output,
                config,
                delimiter=delimiter,
                encoding=encoding,
                max_record_lines=max_record_lines,
                strict=strict,
                rejects=rejects,
                columns=columns,
                err=err,
                escape_formulas=escape_formulas,
            ),
        )
    )


def _csv_command(input_path: Path, command: Callable[[], int]) -> int:
    """Run a CSV command; an unusable file, config or output is one line and exit 2, a stop signal 128+N."""
    from leadsync.scorefile import Terminated

    if not input_path.is_file():
        fail(f"--input: {input_path} is not a file", 2)
    with clean_errors():
        try:
            return command()
        except Terminated as exc:
            fail(f"stopped by {exc}; no partial output file is left", 128 + exc.signum)
        except (UnicodeDecodeError, csv.Error) as exc:  # before ValueError, which UnicodeDecodeError is
            fail(f"{input_path}: not a readable CSV file ({exc})", 2)
        except ValueError as exc:  # ScoreFileError, DialectError
            fail(str(exc), 2)


@app.command()
def run(
    config: ConfigOption = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help=f"Port of /healthz, /readyz, /metrics (default: run.port, else {DEFAULT_PORT}; 0: any free)."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default: run.host).")] = None,
) -> None:
    """The daemon: scheduled syncs, one active replica per store, /healthz /readyz /metrics, stops on SIGTERM."""
    from leadsync.runner import run_daemon

    if _log_level["given"] is None:
        configure_logging("info")  # a daemon says what it is doing unless told to be quiet
    with clean_errors():
        application = load_app(config)
        from leadsync.mappings_cli import refuse_unfit_mapping

        refuse_unfit_mapping(application)
        code = run_daemon(application, port=port, host=host)
    raise typer.Exit(code)


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the state store's schema (alembic upgrade head); `run` and `sync` also do it."""
    from leadsync.runner import migrate as migrate_store

    with clean_errors():
        application = load_app(config)
        before, after = migrate_store(application)  # an unreachable store: clean_errors, exit 2
    if before == after:
        out.print(f"state store at revision {after}: up to date")
    else:
        out.print(f"state store migrated from {before or 'empty'} to {after}")


def main() -> None:
    try:
        app()
    finally:
        # The process ends here. Without this, the interpreter's last garbage collections walk every object
        # the command's imports made (about 0.2 s of `explain`); frozen objects are left to the OS, while
        # atexit handlers and the objects that reference counting frees are finalized as before.
        gc.freeze()


@app.command()
def demo(
    as_json: JsonOption = False,
    contacts: Annotated[int, typer.Option(help="Synthetic contacts (Salesforce: leads and contacts) to seed.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic portal.")] = 7,
    crm: Annotated[str, typer.Option("--crm", help="hubspot or salesforce.")] = "hubspot",
) -> None:
    """The embedded end-to-end default: in-process CRM sandbox, seed, sync twice, summary."""
    from rich.table import Table

    from leadsync.demo import run_demo

    if crm not in ("hubspot", "salesforce"):
        fail(f"--crm: expected hubspot or salesforce, got {crm}", 2)
    with clean_errors():
        result = run_demo(contacts=contacts, seed=seed, progress=None if as_json else _with_progress, crm=crm)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    label = "HubSpot" if crm == "hubspot" else "Salesforce (HTTPS, test CA)"
    out.print(
        f"[bold]leadsync demo[/]: in-process {label} sandbox at {result['sandbox']['url']} "
        f"with {contacts} synthetic {'contacts' if crm == 'hubspot' else 'leads and contacts'} (seed {seed})"
    )
    first, second = result["passes"]
    print_summary(first, "1st sync: first run reads everything, creates the leadsync properties, writes scores")
    out.print(f"properties created: {', '.join(first['properties_created']) or 'none'}")
    out.print(f"between syncs: {result['engaged_between_passes']} contacts showed new engagement in the CRM")
    print_summary(second, "2nd sync: incremental, writes only what changed")
    top = Table("contact", "score", "grade", "why", title="hottest leads", title_justify="left")
    for row in result["top_leads"]:
        top.add_row(row["email"] or row["id"], str(row["score"]), row["grade"], row["reasons"])
    out.print(top)
    calls = result["sandbox"]["by_endpoint"]
    out.print("API calls by endpoint: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())), highlight=False)
    out.print("[green]done[/]: sandbox stopped, temporary state removed")


InputOption = Annotated[
    Path | None, typer.Option("--input", "-i", help="Labeled CSV: lead columns (as for `score`) plus the label.")
]
LabelOption = Annotated[
    str | None, typer.Option("--label", help="Column with the outcome: 0/1, true/false, yes/no (empty = unlabeled).")
]
CandidateOption = Annotated[
    Path | None, typer.Option("--rules", help="Candidate rules (a `scoring:` section) to compare with the configured.")
]
ObjectiveOption = Annotated[
    str, typer.Option("--objective", help="f1, precision:P (e.g. precision:0.4) or capacity:N/week (needs dates).")
]
DateOption = Annotated[
    str | None,
    typer.Option("--date", help="Date column for MQLs a week and drift (default: the mapped created_at column)."),
]
BackfillOption = Annotated[
    bool,
    typer.Option(
        "--backfill",
        help="Leads first scored after their outcome: rescore the rules as of before it from the cache "
        "(labelled in the output; cached attribute values and CRM-kept counters are today's).",
    ),
]
RankByOption = Annotated[
    str,
    typer.Option(
        "--rank-by",
        help="Rank leads by `score` (0..100, what the CRM shows) or `points` (the unclamped total, which keeps "
        "apart the leads that all score 0).",
    ),
]
AsOfOption = Annotated[
    datetime | None,
    typer.Option("--as-of", help="When the CSV's columns were taken (decay is computed from it; default now)."),
]


@dataclass(frozen=True)
class LabeledInput:
    """The options ``evaluate`` and ``report`` share: where the labeled leads come from and how they are judged."""

    input_path: InputOption = None
    label: LabelOption = None
    config: ConfigOption = None
    rules: CandidateOption = None
    objective: ObjectiveOption = "f1"
    date: DateOption = None
    as_of: AsOfOption = None
    backfill: BackfillOption = False
    rank_by: RankByOption = "score"


def _as_of(as_of: datetime | None) -> datetime | None:
    return (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)) if as_of is not None else None


def _print_store_evaluation(result: Any) -> bool:
    """The store path's counts (and why there is no evaluation yet); True when there is nothing more to print."""
    c = result.labels.counts()
    out.print(
        f"{c['leads']} cached leads: {c['evaluated']} evaluated ({c['positives']} converted within "
        f"{result.settings.window_days} days), {c['pending']} pending (window still open), "
        f"{c['excluded_no_history']} without a score before their moment, "
        f"{c['excluded_no_anchor'] + c['excluded_converted_before_window']} without a usable window",
        highlight=False,
    )
    _say_backfilled(result, out)
    message = result.message()
    if message is not None:
        out.print(f"[yellow]{escape(message)}[/]", highlight=False)
        return True
    return False


def _say_backfilled(result: Any, console: Any = None) -> None:
    """The --backfill label: how many scores are rescored from the cache rather than read from the history."""
    n = result.labels.counts()["backfilled"]
    if n:
        (console or err).print(
            f"[yellow]backfilled[/]: {n} of {len(result.labels.outcomes)} scores rescored from the cache as of "
            f"before the outcome (score source: {result.labels.score_source}); cached attribute values and "
            "CRM-kept counters are today's and may leak what happened after it",
            highlight=False,
        )


def _labeled_run(labeled: LabeledInput, *, report: bool = False) -> Any:
    """Score the labeled CSV with the configured (and candidate) rules and evaluate; bad input exits 2.

    Without ``--input``: the state store's outcomes and score history (:mod:`leadsync.evaluate_store`).
    """
    from leadsync.app import load_csv_scoring
    from leadsync.evaluate_cmd import RANK_BY, InputError, labeled_dialect, load_candidate, load_labeled, run_evaluation
    from scoring.evaluation import parse_objective

    input_path, label, objective = labeled.input_path, labeled.label, labeled.objective
    if labeled.rank_by not in RANK_BY:
        fail(f"--rank-by: expected one of {', '.join(RANK_BY)}, got {labeled.rank_by!r}", 2)
    if input_path is None:
        from leadsync.evaluate_store import evaluate_configured

        try:
            parse_objective(objective)
            return evaluate_configured(
                labeled.config,
                labeled.rules,
                objective,
                now=_as_of(labeled.as_of),
                contributions=report,
                backfill=labeled.backfill,
                rank_by=labeled.rank_by,
            )
        except InputError as exc:
            fail(str(exc), 2)
    if labeled.backfill:
        fail("--backfill applies to the state store (without --input): a labeled CSV has no score history", 2)
    if label is None:
        fail("--input needs --label COL (the column saying who converted)", 2)
    try:
        parse_objective(objective)
        _, compiled, mapping = load_csv_scoring(labeled.config)
        candidate = load_candidate(labeled.rules, mapping) if labeled.rules is not None else None
        now = _as_of(labeled.as_of) or _now()
        data = load_labeled(
            input_path,
            label,
            compiled,
            mapping,
            candidate=candidate,
            date_column=labeled.date,
            now=now,
            dialect=labeled_dialect(labeled.config, input_path),
            on_problem=lambda p: err.print(f"[yellow]skipped[/] {input_path}: {p}", highlight=False),
        )
        return run_evaluation(data, objective, rank_by=labeled.rank_by)
    except InputError as exc:
        fail(str(exc), 2)


@app.command()
@shared_options(LabeledInput)
def evaluate(labeled: LabeledInput, as_json: JsonOption = False) -> None:
    """Scores vs outcomes: AUC, lift by grade and decile, a recommended MQL threshold, champion vs candidate."""
    from rich.table import Table

    with clean_errors():
        result = _labeled_run(labeled)
    data = result.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    shadow = (data.get("challenger") or {}).get("summary", [])  # store path with `challenger:` configured
    if labeled.input_path is None:
        if _print_store_evaluation(result):
            return
        result = result.run
        data = result.as_dict()  # the store's JSON drops the CSV counts the lines below print
    ev = result.champion
    auc = ev.auc
    out.print(
        f"{ev.n} labeled leads ({data['unlabeled']} unlabeled, {data['rows_rejected']} unreadable left out), "
        f"{ev.positives} converted ({ev.base_rate:.1%})",
        highlight=False,
    )
    out.print(_ranked_by(labeled.rank_by, labeled.input_path is None), highlight=False)
    out.print(f"AUC {auc.value:.3f} (95% CI {auc.ci_low:.3f} to {auc.ci_high:.3f})", highlight=False)
    for title, rows in (("by grade", ev.grades), ("by score decile", ev.deciles)):
        table = Table(
            "group", "scores", "leads", "converted", "rate", "lift", "capture", title=title, title_justify="left"
        )
        for r in rows:
            table.add_row(
                r.label,
                f"{r.min_score:g}-{r.max_score:g}",
                str(r.n),
                str(r.positives),
                f"{r.rate:.1%}",
                f"{r.lift:.2f}",
                f"{r.capture:.0%}",
            )
        out.print(table)
    t = ev.threshold
    weekly = f", {t.mqls_per_week:.1f} a week" if t.mqls_per_week is not None else ""
    precision = "n/a" if t.precision is None else f"{t.precision:.1%}"
    out.print(
        f"threshold {t.threshold:g}: {t.mqls} MQLs{weekly}, precision {precision}, recall {t.recall:.1%}",
        highlight=False,
    )
    rec = ev.recommendation
    if rec.change is not None:
        out.print(
            f"recommended ({rec.objective}): {rec.threshold:g}, {rec.reason}; {rec.change.summary}", highlight=False
        )
    else:
        out.print(f"[yellow]no recommended threshold[/] ({rec.objective}): {rec.reason}", highlight=False)
    if result.comparison is not None:
        out.print(result.comparison.summary, highlight=False)
    for line in shadow:
        out.print(line, highlight=False)


def _ranked_by(rank_by: str, from_store: bool) -> str:
    """The line saying what the evaluation ranks leads by."""
    if rank_by == "score":
        return "ranked by score (0..100, as the CRM shows it; --rank-by points for the unclamped total)"
    note = "; the history keeps scores only, so points are rescored from the cache as of each lead's moment"
    return "ranked by points (the unclamped total after part caps; thresholds and groups are in points)" + (
        note if from_store else ""
    )


@app.command()
@shared_options(LabeledInput)
def report(
    labeled: LabeledInput, output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")]
) -> None:
    """One self-contained HTML report (opens offline): distributions, lift, ROC, thresholds, rules, drift."""
    from leadsync.report import render_report
    from leadsync.scorefile import ScoreFileError, open_output

    with clean_errors():
        result = _labeled_run(labeled, report=True)
        shadow: list[str] | None = None
        if labeled.input_path is None:
            if result.run is None:
                fail(f"no report written: {result.message()}", 1)
            _say_backfilled(result)
            shadow = result.challenger.summary() if result.challenger is not None else None
            result = result.run
        from leadsync.model_apply import active_model_section

        page = render_report(result, shadow=shadow, model=active_model_section(labeled.config))
    try:
        with open_output(output) as handle:  # the same output rules as `score`: atomic, links followed
            handle.write(page)
    except ScoreFileError as exc:
        fail(str(exc), 2)
    err.print(f"wrote {output} ({len(page) // 1024} KiB); open it in any browser", highlight=False)


from leadsync.model_cmd import model_app  # noqa: E402 (its commands import this module's helpers lazily)

app.add_typer(model_app, name="model")

from leadsync.rules_cli import rules_app  # noqa: E402  (after the shared helpers it uses)

app.add_typer(rules_app, name="rules")

from leadsync.sandbox_cli import sandbox_app  # noqa: E402  (after the shared helpers it uses)

app.add_typer(sandbox_app, name="sandbox")

from leadsync.mappings_cli import mappings_app  # noqa: E402  (after the shared helpers it uses)

app.add_typer(mappings_app, name="mappings")
