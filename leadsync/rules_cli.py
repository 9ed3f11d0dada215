"""``leadsync rules ...``: rules from data (``rules fit``: points fitted from outcomes), registered by
:mod:`leadsync.cli` as a sub-app; the work is in :mod:`leadsync.fit_cmd`."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from leadsync.cli import (
    ConfigOption,
    InputOption,
    JsonOption,
    LabelOption,
    ObjectiveOption,
    clean_errors,
    err,
    fail,
    out,
)
from leadsync.csv_commands import DelimiterOption, EncodingOption

rules_app = typer.Typer(help="Rules from data: points fitted from outcomes.", no_args_is_help=True)


@rules_app.command("fit")
def rules_fit(
    input_path: InputOption = None,
    label: LabelOption = None,
    from_history: Annotated[
        bool, typer.Option("--from-history", help="Fit on the state store's leads and outcomes instead of a CSV.")
    ] = False,
    config: ConfigOption = None,
    max_rules: Annotated[int, typer.Option("--max-rules", help="At most this many rules with points.")] = 30,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Columns to leave out: repeat the option, or separate names with commas."),
    ] = None,
    allow_leaky: Annotated[
        list[str] | None,
        typer.Option("--allow-leaky", help="Keep a column that alone separates the outcome (repeat, or commas)."),
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    until: Annotated[
        datetime | None,
        typer.Option("--until", help="With --from-history: fit on the leads whose window opened before this date."),
    ] = None,
    stray: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
    against: Annotated[
        Path | None, typer.Option("--against", help="Rules (or a config) to compare with: AUC and grade changes.")
    ] = None,
    objective: ObjectiveOption = "f1",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The fitted config (default: stdout).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Points fitted from outcomes: a commented config of lookup tables, integer points, totals 0..100."""
    if from_history == (input_path is not None):  # before the imports: a usage mistake is told at once
        fail("give either --input CSV --label COL or --from-history", 2)
    from leadsync.fit_cmd import FitInputError, FitSettings, as_dict, run_fit, summary_lines
    from leadsync.fit_yaml import RenderedError
    from leadsync.scorefile import ScoreFileError, open_output
    from scoring.evaluation import parse_objective

    if stray and bool(exclude) != bool(allow_leaky):
        # `--exclude A B` (the COL...): the names after the only list option given belong to it
        if exclude:
            exclude = [*exclude, *stray]
        else:
            allow_leaky = [*(allow_leaky or ()), *stray]
    elif stray:
        fail(
            f"unexpected argument {stray[0]!r}: give several columns as --exclude A --exclude B, or "
            f"--exclude 'A,B' (the same for --allow-leaky)",
            2,
        )
    settings = FitSettings(
        label=label or "",
        max_rules=max_rules,
        exclude=tuple(exclude or ()),
        allow_leaky=tuple(allow_leaky or ()),
        objective=objective,
    )
    with clean_errors():
        try:
            parse_objective(objective)
            if input_path is None:
                from leadsync.fit_history import run_history_fit

                result = run_history_fit(
                    settings,
                    config,
                    against=against,
                    until=until.replace(tzinfo=until.tzinfo or UTC) if until else None,
                )
            else:
                if label is None:
                    fail("--input needs --label COL (the column saying who converted)", 2)
                result = run_fit(
                    input_path,
                    settings,
                    config,
                    against=against,
                    delimiter=delimiter,
                    encoding=encoding,
                    on_problem=lambda p: err.print(f"[yellow]skipped[/] {input_path}: {p}", highlight=False),
                )
        except FitInputError as exc:
            fail(str(exc), 2)
        except RenderedError as exc:
            fail(str(exc), 1)
        except (UnicodeDecodeError, csv.Error) as exc:
            fail(f"{input_path}: not a readable CSV file ({exc})", 2)
        except ScoreFileError as exc:
            fail(str(exc), 2)
    if output is not None:
        try:
            with open_output(output) as handle:
                handle.write(result.text)
        except ScoreFileError as exc:
            fail(str(exc), 2)
    if as_json:
        sys.stdout.write(json.dumps(as_dict(result, output)) + "\n")
        return
    if output is None:
        sys.stdout.write(result.text)
    console = out if output is not None else err
    for line in summary_lines(result, output):
        console.print(line, highlight=False, soft_wrap=True)
