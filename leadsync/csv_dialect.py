"""How a CSV export is read: its delimiter (detected or forced), its encoding, and its null tokens.

The delimiter is chosen by parsing the first lines with each candidate (``,`` ``;`` tab ``|``) through the
same ``csv`` reader that reads the file, and keeping the one whose header has more than one column and whose
rows most often have the header's cell count (ties: the order above). ``csv.Sniffer`` was not used: it
guesses from character frequencies, so a ``;`` inside quoted text or a decimal comma can win over the real
delimiter, and it raises instead of answering on a one-column file; parsing is what reading will do.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from leadsync.config import CSV_DELIMITERS, DEFAULT_NULL_VALUES, CsvFileConfig, check_delimiter, check_encoding

#: how much of the file the delimiter is detected from
SNIFF_BYTES = 64 * 1024
#: and at most this many of its lines
SNIFF_LINES = 50
_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}


class DialectError(ValueError):
    """The file cannot be read with the delimiter or encoding asked for: one message, exit 2."""


@dataclass(frozen=True)
class CsvDialect:
    """Everything needed to read one export: ``delimiter`` and ``encoding`` as resolved, ``nulls`` the cell
    texts (trimmed) that mean "no value"."""

    delimiter: str = ","
    encoding: str = "utf-8-sig"
    nulls: frozenset[str] = frozenset(DEFAULT_NULL_VALUES)
    detected: bool = False

    @property
    def delimiter_name(self) -> str:
        return _NAMES.get(self.delimiter, repr(self.delimiter))

    def is_null(self, cell: str) -> bool:
        return cell.strip() in self.nulls


def resolve(
    source: Path, options: CsvFileConfig, *, delimiter: str | None = None, encoding: str | None = None
) -> CsvDialect:
    """The dialect of ``source``: ``--delimiter`` / ``--encoding``, else the config's, else detected / utf-8.

    Raises DialectError for an unknown option value, undecodable text at the start of the file, or a forced
    delimiter that leaves a header of one column holding another delimiter.
    """
    try:
        chosen_delimiter = check_delimiter(delimiter) if delimiter is not None else options.delimiter
        chosen_encoding = check_encoding(encoding) if encoding is not None else options.encoding
    except ValueError as exc:
        raise DialectError(f"--{'delimiter' if delimiter is not None else 'encoding'}: {exc}") from None
    text_encoding = _with_bom(chosen_encoding or "utf-8")
    sample = _sample(source, text_encoding)
    lines = sample.splitlines(keepends=True)[:SNIFF_LINES]
    if chosen_delimiter is None:
        found = detect(lines)
        return CsvDialect(found or ",", text_encoding, options.nulls(), detected=found is not None)
    header = next(csv.reader(lines[:1], delimiter=chosen_delimiter), [])
    if len(header) == 1:
        other = next((d for d in CSV_DELIMITERS if d != chosen_delimiter and d in header[0]), None)
        if other is not None:
            flag = "tab" if other == "\t" else repr(other)
            raise DialectError(
                f"{source}: the header reads as one column with the delimiter {_NAMES[chosen_delimiter]}, but it "
                f"holds {_NAMES[other]}: the file looks delimited by {_NAMES[other]}; pass --delimiter "
                f"{flag} (or leave it out: it is detected)"
            )
    return CsvDialect(chosen_delimiter, text_encoding, options.nulls())


def detect(lines: list[str]) -> str | None:
    """The delimiter of these first lines of a file, or None when every candidate gives one column."""
    best: tuple[int, int] | None = None
    chosen = None
    for delimiter in CSV_DELIMITERS:
        rows = [row for row in csv.reader(lines, delimiter=delimiter) if row]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(len(row) == width for row in rows[1:]), width)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _with_bom(encoding: str) -> str:
    """utf-8 reads a leading BOM as one (Excel writes it), not as part of the first column's name."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _sample(source: Path, encoding: str) -> str:
    try:
        with source.open("rb") as handle:
            raw = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise DialectError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        return codecs.getincrementaldecoder(encoding)().decode(raw, final=False)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DialectError(not_text(source, line, encoding)) from None


def not_text(source: Path | str, line: int, encoding: str) -> str:
    """The message for bytes that are not text in ``encoding``, with the likely fix."""
    name = "utf-8" if encoding == "utf-8-sig" else encoding
    return (
        f"{source}: line {line}: not valid {name} text; pass --encoding cp1252 (Excel on Windows) or latin-1 "
        "(or set csv.encoding in the config)"
    )


#: the wording of a form's "nothing chosen" value (matched trimmed, case-insensitively)
_PLACEHOLDER_WORDS = re.compile(
    r"^[\s\W_]*(please\s+)?(select|choose|pick)(\s+(one|an?\s+option|value))?[\s\W_]*$"
    r"|^[\s\W_]*(unknown|not\s+(specified|provided|available|known)|unspecified|\(?blank\)?|none\s+selected)[\s\W_]*$"
    r"|^\s*(-+|\?+|\.+)\s*$",
    re.IGNORECASE,
)
#: a placeholder is held by at least this share of a column's filled cells, in at least PLACEHOLDER_COLUMNS columns
PLACEHOLDER_SHARE = 0.01
PLACEHOLDER_COLUMNS = 2


def likely_placeholders(
    header: Sequence[str], rows: Sequence[Sequence[str]], nulls: Iterable[str]
) -> dict[str, list[str]]:
    """Cell texts that look like a form's "nothing chosen" (``Select``, ``-- choose --``, ``Unknown``, ``-``)
    and are frequent in several columns, each with the columns it was found in.

    Why both conditions: a shared value alone is no evidence (``No`` fills every yes/no column) and the
    wording alone is not either (one ``Unknown`` in a free-text column); together they are what a form's
    unanswered drop-down leaves in an export. Only the first rows given are looked at.
    """
    known = {n.strip() for n in nulls}
    found: dict[str, list[str]] = {}
    for i, column in enumerate(header):
        counts: dict[str, int] = {}
        filled = 0
        for row in rows:
            cell = row[i].strip() if i < len(row) else ""
            if cell in known:
                continue
            filled += 1
            if _PLACEHOLDER_WORDS.match(cell):
                counts[cell] = counts.get(cell, 0) + 1
        for cell, n in counts.items():
            if filled and n >= max(10, PLACEHOLDER_SHARE * filled):
                found.setdefault(cell, []).append(column)
    return {cell: columns for cell, columns in sorted(found.items()) if len(columns) >= PLACEHOLDER_COLUMNS}
