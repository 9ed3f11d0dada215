"""``leadsync score``: score a CSV file with the configured rules, no CRM involved.

Rows are streamed in chunks (memory does not grow with the file); a malformed row is reported with its
line number and skipped while the rest are scored; the output appears complete or not at all.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mappings import LeadMapping
from scoring import CompiledRules, Lead

OUTPUT_COLUMNS = ("score", "fit", "engagement", "penalties", "grade", "qualified", "reasons")
CHUNK = 5_000


@dataclass
class RowProblem:
    line: int
    column: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: column '{self.column}': {self.problem}"


@dataclass
class ScoreFileResult:
    rows: int = 0
    scored: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    grades: dict[str, int] = field(default_factory=lambda: {"hot": 0, "warm": 0, "cold": 0})
    qualified: int = 0


def _rows(handle: IO[str]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(handle)
    for row in reader:
        yield reader.line_num, row


def score_csv(
    source: Path,
    rules: CompiledRules,
    mapping: LeadMapping,
    output: IO[str] | Path | None,
    *,
    now: datetime | None = None,
    on_problem: Callable[[RowProblem], None] | None = None,
) -> ScoreFileResult:
    """Score every row of ``source``; write input columns + score columns to ``output`` (a path is atomic)."""
    now = now or datetime.now(UTC)
    result = ScoreFileResult()
    with source.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
        if not header:
            raise ValueError(f"{source}: the file is empty (expected a header row)")
        handle.seek(0)
        if mapping.fields["email"].property not in header:
            raise ValueError(
                f"{source}: no column '{mapping.fields['email'].property}' for the email "
                f"(columns: {', '.join(header)}); map it under `csv: fields:` in the config"
            )
        columns = [*header, *(c for c in OUTPUT_COLUMNS if c not in header)]
        if isinstance(output, Path):
            with _atomic_output(output) as out:
                _score_rows(handle, out, columns, rules, mapping, now, result, on_problem)
        else:
            _score_rows(handle, output, columns, rules, mapping, now, result, on_problem)
    return result


@contextmanager
def _atomic_output(target: Path) -> Iterator[IO[str]]:
    """Write to a temporary file beside the target and move it into place only when complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _score_rows(
    handle: IO[str],
    out: IO[str] | None,
    columns: list[str],
    rules: CompiledRules,
    mapping: LeadMapping,
    now: datetime,
    result: ScoreFileResult,
    on_problem: Callable[[RowProblem], None] | None,
) -> None:
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore") if out is not None else None
    if writer is not None:
        writer.writeheader()
    chunk: list[tuple[dict[str, str], Lead]] = []

    def flush() -> None:
        scores = rules.score_many(((lead, [], None) for _, lead in chunk), now)
        for (row, _), score in zip(chunk, scores, strict=True):
            result.scored += 1
            result.grades[score.grade] = result.grades.get(score.grade, 0) + 1
            result.qualified += score.qualified
            if writer is not None:
                writer.writerow(
                    row
                    | {
                        "score": score.total,
                        "fit": score.fit,
                        "engagement": score.engagement,
                        "penalties": score.penalties,
                        "grade": score.grade,
                        "qualified": "true" if score.qualified else "false",
                        "reasons": score.reasons,
                    }
                )
        chunk.clear()

    for line, row in _rows(handle):
        result.rows += 1
        problems: list[RowProblem] = []
        if None in row:  # more cells than the header has columns
            problems.append(RowProblem(line, "(extra cells)", f"{len(row[None])} more cells than header columns"))  # type: ignore[index]
        lead = mapping.to_lead(
            row.get("id") or f"line-{line}",
            row,
            lambda _id, column, raw, problem, line=line, problems=problems: problems.append(
                RowProblem(line, column, f"{problem}, got {raw!r}")
            ),
        )
        if problems:
            for problem in problems:
                result.problems.append(problem)
                if on_problem is not None:
                    on_problem(problem)
            continue
        chunk.append((row, lead))
        if len(chunk) >= CHUNK:
            flush()
    if chunk:
        flush()
