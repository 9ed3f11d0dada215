"""``leadsync mappings ...``: a starter mapping from the CRM's schema (``discover``) and the mapping and rules
checked against it (``validate``); registered by :mod:`leadsync.cli` as a sub-app. The work is in
:mod:`mappings.discover`, :mod:`mappings.validate` and :mod:`leadsync.mapping_check`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from leadsync.cli import ConfigOption, JsonOption, clean_errors, err, fail, out
from leadsync.logs import scrub

if TYPE_CHECKING:
    from leadsync.app import App

mappings_app = typer.Typer(help="Map CRM fields: discover a starter mapping, validate it against the CRM.")


@mappings_app.command("discover")
def mappings_discover(
    config: ConfigOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the mapping here (default: stdout).")
    ] = None,
    sample: Annotated[int, typer.Option("--sample", help="Records sampled per object for fill rates.")] = 100,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output file.")] = False,
) -> None:
    """A commented starter mapping: every canonical attribute matched to its most likely CRM field."""
    from leadsync.app import build_app
    from leadsync.config import load_config
    from leadsync.mapping_check import read_crm_schema
    from mappings.discover import discover_mapping

    if output is not None and output.exists() and not force:
        fail(f"{output} already exists (use --force to overwrite)", 2)
    with clean_errors():
        application = build_app(load_config(config))
        connector = application.connector()
        schema = read_crm_schema(connector, sample=max(0, sample))
        text = discover_mapping(schema, sampled=sample or None)
    if output is None:
        sys.stdout.write(text)
        err.print(f"discovered with {schema.api_calls} API calls", highlight=False)
        return
    output.write_text(text, encoding="utf-8")
    out.print(
        f"wrote {output} ({schema.api_calls} API calls); edit it, set `mapping: {output}` in the config, then run "
        "`leadsync mappings validate`",
        highlight=False,
    )


@mappings_app.command("validate")
def mappings_validate(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The mapping and rules against the CRM's schema: unknown fields, type mismatches, picklist values the
    CRM lacks, drift since the last run. Exit 1 when there are errors."""
    from leadsync.app import build_app
    from leadsync.config import load_config
    from leadsync.mapping_check import validate_mapping

    with clean_errors():
        application = build_app(load_config(config))
        result = validate_mapping(application, application.connector())
    if as_json:
        data = {"ok": not result.errors, "findings": [f.as_dict() for f in result.findings]}
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        print_findings(result.findings)
        if not result.errors:
            out.print(
                f"[green]ok[/] mapping fits {application.config.crm}"
                + (f" ({len(result.findings)} warnings)" if result.findings else ""),
                highlight=False,
            )
    if result.errors:
        raise typer.Exit(1)


def print_findings(findings: Sequence[object]) -> None:
    """Each finding on one line of stderr: errors red, warnings yellow."""
    for finding in findings:
        level = getattr(finding, "level", "error")
        colour = "red" if level == "error" else "yellow"
        err.print(f"[{colour}]{level}:[/] {escape(scrub(str(finding)))}", highlight=False)


def refuse_unfit_mapping(application: App) -> None:
    """The daemon does not start on a mapping or rules the CRM's schema contradicts (a field or picklist
    value it lacks): scoring every lead zero for it silently would be worse. A CRM that cannot be reached now
    is no reason to stay down: the daemon starts and reports it on /readyz."""
    import structlog

    from connectors.errors import ConnectorError
    from leadsync.mapping_check import validate_mapping

    log = structlog.get_logger("leadsync.mappings")
    try:
        checked = validate_mapping(application, application.connector())
    except ConnectorError as exc:
        log.warning("mappings.not_validated", reason=f"the CRM did not answer: {exc}")
        return
    for finding in checked.findings:
        if finding.level != "error":  # the daemon logs JSON lines: warnings are log events
            log.warning("mappings.finding", **finding.as_dict())
    if checked.errors:
        print_findings(checked.errors)
        fail(
            f"the mapping or rules do not fit {application.config.crm}: {len(checked.errors)} error(s) above; "
            "the daemon does not start (fix them, then `leadsync mappings validate`)",
            2,
        )
