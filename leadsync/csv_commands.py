"""The CSV authoring commands behind the CLI: ``check --input``, ``score`` and ``init --from-csv``.

They print on the consoles they are given and return the exit code; a file or config that cannot be used
raises (ConfigError, ScoreFileError, DialectError: the CLI turns each into one line and exit 2).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # imported by the commands that run (the CLI imports this module for its options)
    from leadsync.csv_check import FileCheck
    from leadsync.scorefile import OutputColumns, ScoreFileResult

DelimiterOption = Annotated[
    str | None,
    typer.Option("--delimiter", help="The CSV's delimiter: , ; | or tab (default: csv.delimiter, else detected)."),
]
EncodingOption = Annotated[
    str | None,
    typer.Option("--encoding", help="The CSV's text encoding (default: csv.encoding, else utf-8; latin-1, cp1252...)."),
]


def _print_findings(check: FileCheck, err: Console, *, verbose: bool) -> None:
    """Errors, warnings and notes; ``verbose`` (check) also the rules that cannot fire, which score leaves out."""
    for message in check.errors:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    for message in check.warnings:
        err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
    if check.never_fire and verbose:
        err.print(f"{len(check.never_fire)} rules cannot fire on this file:", highlight=False)
        by_reason: dict[str, list[str]] = {}
        for rule, why in check.never_fire.items():
            by_reason.setdefault(why, []).append(rule)
        for why, rules in by_reason.items():
            err.print(f"  {escape(', '.join(rules))}: {escape(why)}", highlight=False)

    for message in check.notes:
        err.print(f"[yellow]note:[/] {escape(message)}", highlight=False)


def run_check(
    source: Path, config: Path | None, *, delimiter: str | None, encoding: str | None, out: Console, err: Console
) -> int:
    """``leadsync check --input``: exit 1 when a rule or mapping does not fit the file, else 0."""
    from leadsync.csv_check import check_file

    check = check_file(source, config, delimiter=delimiter, encoding=encoding)
    _print_findings(check, err, verbose=True)
    sample = check.sample
    rows = f"all {len(sample.rows)} rows" if sample.complete else f"the first {len(sample.rows)} rows"
    dialect = check.dialect
    encoding_name = "utf-8" if dialect.encoding == "utf-8-sig" else dialect.encoding
    how = f"delimiter {dialect.delimiter_name}{' (detected)' if dialect.detected else ''}, {encoding_name}"
    verdict = f"{len(check.errors)} error{'s' if len(check.errors) != 1 else ''}" if check.errors else "[green]ok[/]"
    out.print(
        f"{verdict}: {escape(str(source))}: {len(sample.header)} columns, {rows} checked ({how}); "
        f"{len(check.rules.rule_names)} rules, {len(check.never_fire)} cannot fire, "
        f"{len(check.warnings)} warning{'s' if len(check.warnings) != 1 else ''}",
        highlight=False,
        soft_wrap=True,
    )
    return 1 if check.errors else 0


def run_score(
    source: Path,
    output: Path | None,
    config: Path | None,
    *,
    delimiter: str | None,
    encoding: str | None,
    max_record_lines: int,
    strict: bool,
    rejects: Path | None,
    columns: OutputColumns,
    err: Console,
    escape_formulas: bool = True,
) -> int:
    """``leadsync score``: the checks first (an error refuses, exit 2), then every row; exit 1 on rejects."""
    from leadsync.csv_check import check_file
    from leadsync.scorefile import ScoreFileError, score_csv

    check = check_file(source, config, delimiter=delimiter, encoding=encoding, max_record_lines=max_record_lines)
    _print_findings(check, err, verbose=False)
    if check.errors:
        raise ScoreFileError(
            f"{source}: the rules do not fit this file ({len(check.errors)} error"
            f"{'s' if len(check.errors) > 1 else ''} above); nothing scored. `leadsync check --input "
            f"{source}` checks it without scoring"
        )
    from leadsync.model_apply import MODEL_COLUMNS, offline_annotator

    target: IO[str] | Path = sys.stdout if output is None or str(output) == "-" else output
    annotate = offline_annotator(config, check.rules, check.mapping, datetime.now(UTC))  # the active model, if any
    result = score_csv(
        source,
        check.rules,
        check.mapping,
        target,
        dialect=check.dialect,
        on_problem=lambda p: err.print(f"[yellow]skipped[/] {escape(str(source))}: {escape(str(p))}", highlight=False),
        max_record_lines=max_record_lines,
        strict=strict,
        rejects=rejects,
        columns=columns,
        annotate=annotate,
        annotated_columns=MODEL_COLUMNS if annotate is not None else (),
        escape_formulas=escape_formulas,
    )
    _print_summary(result, err, output if target is not sys.stdout else None, rejects)
    return 1 if result.rejected else 0


def _print_summary(result: ScoreFileResult, err: Console, output: Path | None, rejects: Path | None) -> None:
    grades = ", ".join(f"{g} {n}" for g, n in result.grades.items())
    broken = f", {result.broken_records} of them broken records" if result.broken_records else ""
    coerced = sum(c.count for c in result.coerced.values())
    wrote = f"; wrote {output}" if output is not None else ""
    if rejects is not None:
        wrote += f"; rejected rows in {rejects}"
    err.print(
        f"scored {result.scored} of {result.rows} rows read, {result.rejected} rejected{broken} ({grades}; "
        f"{result.qualified} qualified); {coerced} value{'s' if coerced != 1 else ''} read as missing{wrote}",
        highlight=False,
    )
    for column, entry in sorted(result.coerced.items()):
        lines = ", ".join(str(n) for n in entry.lines) + (", ..." if entry.count > len(entry.lines) else "")
        examples = ", ".join(repr(e) for e in entry.examples)
        err.print(
            f"  column {escape(repr(column))}: {entry.count} not {escape(entry.expected)} (lines {lines}; "
            f"e.g. {escape(examples)}): read as missing",
            highlight=False,
        )
